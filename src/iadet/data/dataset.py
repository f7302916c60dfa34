"""A torch Dataset over :class:`ImageRecord` objects, in torchvision's detection format.

``dataset[i]`` (or ``dataset[(i, flip)]``, or a :class:`~iadet.data.sampler.SampleKey` as the
training loop asks) returns
``(image, target)``: ``image`` a float ``(3, H, W)`` tensor in [0, 1] and ``target`` a dict
with ``boxes`` ``(K, 4)`` float32 ``x1, y1, x2, y2`` (0-based pixels), ``labels`` ``(K,)``
int64, ``image_id`` (the record's index), for Mask R-CNN ``masks`` ``(K, H, W)`` uint8, and for
Fast R-CNN ``proposals`` ``(P, 4)`` float32 (flipped with the image, like the boxes).
Augmentation is torchvision transforms v2 on tv_tensors (horizontal flip, as both papers);
the flip decision comes from the sampler, so data order and augmentation are a function of
the seed alone — which is what makes ``--resume`` exact. An image-space occlusion baseline
(:mod:`iadet.data.augmentations`, training only) runs after the flip, from the key's own seed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from iadet.data.augmentations.base import ImageAugmentation
from iadet.data.images import load_image
from iadet.data.masks import MaskLoader
from iadet.data.records import ImageRecord
from iadet.data.sampler import SampleKey

ProposalLoader = Callable[[ImageRecord], np.ndarray]


class DetectionDataset(Dataset):
    """Images and targets for training (difficult objects dropped) or evaluation (all kept)."""

    def __init__(
        self,
        records: list[ImageRecord],
        *,
        train: bool,
        use_difficult: bool = False,
        mask_loader: MaskLoader | None = None,
        proposals: ProposalLoader | None = None,
        augment: ImageAugmentation | None = None,
    ) -> None:
        self.records = records
        self.train = train
        self.use_difficult = use_difficult
        self.mask_loader = mask_loader
        self.proposals = proposals
        self.augment = augment if train else None
        self.to_tensor = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])
        self.flip = v2.RandomHorizontalFlip(p=1.0)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(
        self, key: int | tuple[int, bool] | SampleKey
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if isinstance(key, SampleKey):
            index, flip = key.index, key.flip
        else:
            index, flip = key if isinstance(key, tuple) else (key, False)
        record = self.records[index]
        image = load_image(record.path)
        keep = np.ones(len(record.labels), bool)
        if self.train and not self.use_difficult:
            keep &= ~record.difficult
        boxes = record.boxes[keep].astype(np.float32).copy()
        if self.train and len(boxes):
            # a 1-pixel VOC box is 0 wide once 0-based; torchvision needs x2 > x1 to train on it
            boxes[:, 2] = np.maximum(boxes[:, 2], boxes[:, 0] + 1.0)
            boxes[:, 3] = np.maximum(boxes[:, 3], boxes[:, 1] + 1.0)
        target: dict[str, torch.Tensor] = {
            "boxes": tv_tensors.BoundingBoxes(
                torch.from_numpy(boxes), format="XYXY", canvas_size=(record.height, record.width)
            ),
            "labels": torch.from_numpy(record.labels[keep].copy()),
            "image_id": torch.tensor(index),
        }
        if self.mask_loader is not None:
            target["masks"] = tv_tensors.Mask(torch.from_numpy(self.mask_loader(record, keep)))
        if self.proposals is not None:
            target["proposals"] = tv_tensors.BoundingBoxes(
                torch.from_numpy(self.proposals(record)),
                format="XYXY",
                canvas_size=(record.height, record.width),
            )
        tensor = self.to_tensor(image)
        if flip:
            tensor, target = self.flip(tensor, target)
        for name in ("boxes", "masks", "proposals"):
            if name in target:
                target[name] = target[name].as_subclass(torch.Tensor)
        tensor = tensor.as_subclass(torch.Tensor)
        if self.augment is not None:
            seed, progress = (key.seed, key.progress) if isinstance(key, SampleKey) else (index, 0.0)
            generator = torch.Generator().manual_seed(seed)
            tensor = self.augment(tensor, target["boxes"], generator, progress)
        return tensor, target


def ignore_signals_in_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: workers ignore SIGINT/SIGTERM, which the main process handles.

    A scheduler's pre-emption (SLURM's ``scancel``) or Ctrl-C signals the whole process group;
    the main process then finishes its iteration, writes a checkpoint and shuts the workers down.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def collate(batch: list) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Lists of images and targets, as torchvision detectors take them."""
    images, targets = zip(*batch) if batch else ((), ())
    return list(images), list(targets)
