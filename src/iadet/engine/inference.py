"""Running a detector over a split, and scoring the result.

Predictions are ``{image_id: {"boxes": (N, 4) float32, "labels": (N,) int64, "scores": (N,)
float32}}`` in 0-based pixel coordinates of the original image (torchvision's eval output,
which undoes the resize). Under DDP every rank predicts its share and rank 0 gathers all.
A Fast R-CNN (``model.needs_proposals``) gets each image's precomputed proposals
(``proposals``: a :class:`~iadet.data.proposals.Proposals` or a file, ``data.proposals``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from iadet.data.dataset import DetectionDataset, collate, ignore_signals_in_worker
from iadet.data.proposals import Proposals, load_proposals
from iadet.data.records import DatasetSplit, ImageRecord
from iadet.engine import distributed as dist
from iadet.errors import ConfigError

Predictions = dict[str, dict[str, np.ndarray]]
ImageTransform = Callable[[np.ndarray, ImageRecord, int], np.ndarray]
"""``(image (H, W, 3) uint8, record, index) -> image``: applied in the data-loader workers (corruptions)."""


class _TransformedDataset(torch.utils.data.Dataset):
    """Applies ``transform(image_uint8_hwc, record, index) -> image`` before tensor conversion."""

    def __init__(self, base: DetectionDataset, transform) -> None:
        self.base = base
        self.transform = transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        from iadet.data.images import load_image

        record = self.base.records[index]
        image = np.asarray(load_image(record.path))
        image = self.transform(image, record, index)
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
        return tensor, {"image_id": torch.tensor(index)}


@torch.inference_mode()
def predict(
    model: nn.Module,
    split: DatasetSplit,
    device: torch.device,
    *,
    batch_size: int = 4,
    num_workers: int = 2,
    max_images: int | None = None,
    progress: bool = False,
    image_transform: ImageTransform | None = None,
    desc: str = "predict",
    proposals: Proposals | str | None = None,
) -> Predictions:
    """Detections for every image of ``split`` (rank 0 gets all of them; other ranks ``{}``).

    A Fast R-CNN takes ``proposals`` (a file or loaded :class:`Proposals`), e.g. ``config.data.proposals``.
    """
    records = split.records[:max_images] if max_images else split.records
    if getattr(model, "needs_proposals", False):
        if proposals is None:
            raise ConfigError("model.detector=fast_rcnn needs precomputed proposals: set data.proposals=FILE")
        proposals = load_proposals(proposals) if not isinstance(proposals, Proposals) else proposals
        proposals.check(records, split.name)
    else:
        proposals = None
    dataset: Any = DetectionDataset(records, train=False)
    if image_transform is not None:
        dataset = _TransformedDataset(dataset, image_transform)
    indices = list(range(len(records)))[dist.rank() :: dist.world_size()]
    batches = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    loader = DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=num_workers,
        collate_fn=collate,
        generator=torch.Generator(),
        worker_init_fn=ignore_signals_in_worker,
    )
    was_training = model.training
    model.eval()
    local: Predictions = {}
    bar = tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False, dynamic_ncols=True)
    for images, targets in bar:
        # a plain copy: the loader does not pin memory, and non_blocking from pageable memory only
        # looks asynchronous (nothing a CPU test can observe either way)
        images = [im.to(device) for im in images]
        if proposals is not None:
            boxes = [proposals.for_record(records[int(t["image_id"])]) for t in targets]
            outputs = model(images, proposals=[torch.from_numpy(b).to(device) for b in boxes])
        else:
            outputs = model(images)
        for target, out in zip(targets, outputs):
            record = records[int(target["image_id"])]
            local[record.image_id] = {
                "boxes": out["boxes"].float().cpu().numpy(),
                "labels": out["labels"].cpu().numpy().astype(np.int64),
                "scores": out["scores"].float().cpu().numpy(),
            }
    model.train(was_training)
    gathered = dist.all_gather_object(local)
    if not dist.is_main():
        return {}
    merged: Predictions = {}
    for part in gathered:
        merged.update(part)
    return merged


def score(
    predictions: Predictions, split: DatasetSplit, metric: str = "voc07", iou: float = 0.5
) -> dict[str, Any]:
    """``{"metric", "mAP", "ap": {class: AP}, ...}`` for ``predictions`` on ``split`` (APs in 0-1)."""
    records = [r for r in split.records if r.image_id in predictions]
    if metric in ("voc07", "voc"):
        from iadet.evaluation.voc import evaluate_voc

        gt = {k: v for k, v in split.ground_truth().items() if k in predictions}
        result = evaluate_voc(gt, predictions, split.classes, metric=metric, iou=iou)
        return {
            "metric": metric,
            "mAP": float(result.map),
            "ap": {k: float(v) for k, v in result.ap.items()},
            "npos": {k: int(v) for k, v in result.npos.items()},
            "detections": {k: int(v) for k, v in result.num_detections.items()},
        }
    if metric == "coco":
        from iadet.evaluation.coco import evaluate_split_coco

        return {"metric": "coco", **evaluate_split_coco(split, records, predictions)}
    raise ValueError(f"unknown metric {metric}")


def evaluate(
    model: nn.Module,
    split: DatasetSplit,
    device: torch.device | str,
    *,
    metric: str | None = None,
    iou: float = 0.5,
    image_transform: ImageTransform | None = None,
    max_images: int | None = None,
    batch_size: int = 4,
    num_workers: int = 2,
    progress: bool = False,
    desc: str = "eval",
    proposals: Proposals | str | None = None,
) -> dict[str, Any]:
    """``score(predict(model, split, ...), split, metric, iou)``: ``{"metric", "mAP", "ap", ...}`` of one split,
    with every image optionally transformed first (the corruption benchmark). ``metric`` defaults to
    :func:`default_metric`."""
    predictions = predict(
        model,
        split,
        torch.device(device),
        batch_size=batch_size,
        num_workers=num_workers,
        max_images=max_images,
        progress=progress,
        image_transform=image_transform,
        desc=desc,
        proposals=proposals,
    )
    return score(predictions, split, metric or default_metric(split), iou)


def default_metric(split: DatasetSplit) -> str:
    """VOC07 11-point mAP@0.5 for VOC-layout data, COCO AP@[.5:.95] for COCO."""
    return "coco" if split.format == "coco" else "voc07"


def evaluate_split(
    model: nn.Module,
    config: Any,
    split_name: str,
    device: torch.device,
    *,
    metric: str | None = None,
    iou: float | None = None,
    max_images: int | None = None,
    progress: bool = False,
    proposals: Proposals | str | None = None,
) -> tuple[DatasetSplit, Predictions, dict[str, Any] | None]:
    """Open ``split_name`` as ``config.data`` describes it, predict, and score.

    Returns ``(split, predictions, summary)``; ``summary`` is what ``eval.json`` holds:
    ``{"metric", "mAP", "ap", ..., "split", "method", "backbone", "train_set", "images"}``
    (None on DDP ranks other than 0). A Fast R-CNN takes ``proposals``, by default ``config.data.proposals``.
    """
    from iadet.data.catalog import open_from_config

    split = open_from_config(config.data, split_name)
    predictions = predict(
        model,
        split,
        device,
        batch_size=config.eval.batch_size,
        num_workers=config.data.num_workers,
        max_images=max_images if max_images is not None else config.eval.max_images,
        progress=progress,
        desc=f"eval {split_name}",
        proposals=proposals if proposals is not None else config.data.proposals,
    )
    if not dist.is_main():
        return split, predictions, None
    result = score(
        predictions, split, metric or config.eval.metric, iou if iou is not None else config.eval.iou
    )
    summary = {
        **result,
        "split": split_name,
        "method": config.method.name,
        "backbone": config.model.backbone,
        "train_set": config.data.train_split,
        "images": len(predictions),
    }
    return split, predictions, summary
