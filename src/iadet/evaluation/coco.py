"""COCO box metrics (AP, AP50, AP75, APs, APm, APl) through pycocotools.

Works on a COCO data set (the instances JSON, loaded) and on a VOC-layout one (the loader's
:class:`~iadet.evaluation.voc_arrays.GroundTruth` mapping, turned into an in-memory COCO ground truth):

* **Boxes.** VOC boxes are inclusive pixel indices: in the XML, ``xmin..xmax`` (1-based) covers
  ``xmax - xmin + 1`` pixels, which in COCO's continuous coordinates is the interval
  ``[xmin - 1, xmax)``. So a 1-based XML box becomes ``[xmin - 1, ymin - 1, xmax - xmin + 1,
  ymax - ymin + 1]``, i.e. the loader's 0-based box ``(x1, y1, x2, y2)`` becomes
  ``[x1, y1, x2 - x1 + 1, y2 - y1 + 1]``; detections get the same conversion. With it COCO's IoU
  of two boxes is the devkit's. ``area`` is ``w * h``.
* **Difficult objects** become ``iscrowd = 1``, pycocotools' only "ignore" mechanism (it
  overwrites an ``ignore`` key with ``iscrowd``): they are not positives, and a detection
  matched to one is neither a true nor a false positive, as in the devkit. Two differences
  remain, both pycocotools' rules for crowds: the overlap with a crowd box is intersection over
  the *detection's* area, and a crowd box may absorb any number of detections.
* Other differences from the VOC metric (so AP50 is not the VOC AP): a detection matches at
  IoU ``>=`` the threshold (the devkit: ``>``); a detection whose best box is taken falls back on
  the next best free one; at most 100 detections per image and class count; precision is
  sampled at 101 recall points.

pycocotools' prints are captured; :attr:`COCOResult.summary` keeps its summary table.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from iadet.errors import DataError
from iadet.evaluation.results import to_coco_detections
from iadet.evaluation.voc_arrays import Detections, GroundTruth, check_classes, ground_truth_arrays

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")


@dataclass
class COCOResult:
    """The six COCO box metrics in 0-1 (pycocotools' ``-1`` where undefined, e.g. no small
    objects), and per-class AP@[.5:.95] and AP50 keyed by category name."""

    stats: dict[str, float]
    ap: dict[str, float]
    ap50: dict[str, float]
    summary: str = field(default="", repr=False)

    def to_json(self) -> dict[str, Any]:
        """``{"mAP": AP, "ap": {class: AP}, "AP": ..., "AP50": ..., ...}``."""
        return {"mAP": self.stats["AP"], "ap": dict(self.ap), **self.stats}


def voc_to_coco(
    ground_truth: Mapping[str, GroundTruth],
    classes: Sequence[str],
    image_sizes: Mapping[str, tuple[int, int]] | None = None,
) -> tuple[dict[str, Any], dict[str, int]]:
    """An in-memory COCO ground truth from 0-based VOC-style ground truth.

    Args:
        ground_truth: image id -> :class:`~iadet.evaluation.voc_arrays.GroundTruth` (0-based inclusive boxes).
        classes: class names; label ``c`` becomes category id ``c``.
        image_sizes: image id -> ``(height, width)``, stored in the ``images`` entries if given
            (pycocotools does not need them for boxes).

    Returns:
        ``(dataset, image_ids)``: the COCO dict and image id -> COCO image id (``1..len``).
    """
    classes = check_classes(classes)
    images, annotations = [], []
    image_ids = {}
    for number, (image_id, target) in enumerate(ground_truth.items(), start=1):
        image_ids[image_id] = number
        entry: dict[str, Any] = {"id": number, "file_name": str(image_id)}
        if image_sizes is not None:
            if image_id not in image_sizes:
                raise DataError(f"no image size for image '{image_id}'")
            entry["height"], entry["width"] = (int(v) for v in image_sizes[image_id])
        images.append(entry)
        boxes, labels, difficult = ground_truth_arrays(image_id, target, len(classes))
        w = boxes[:, 2] - boxes[:, 0] + 1.0
        h = boxes[:, 3] - boxes[:, 1] + 1.0
        for k in range(len(labels)):
            annotations.append(
                {
                    "id": len(annotations) + 1,  # ids start at 1: pycocotools reads 0 as "unmatched"
                    "image_id": number,
                    "category_id": int(labels[k]),
                    "bbox": [float(boxes[k, 0]), float(boxes[k, 1]), float(w[k]), float(h[k])],
                    "area": float(w[k] * h[k]),
                    "iscrowd": int(difficult[k]),
                }
            )
    categories = [{"id": c, "name": name} for c, name in enumerate(classes, start=1)]
    return {"images": images, "annotations": annotations, "categories": categories}, image_ids


def evaluate_coco(
    ground_truth: Mapping[str, GroundTruth] | dict[str, Any],
    predictions: Mapping[Any, Detections] | Sequence[dict[str, Any]],
    *,
    classes: Sequence[str] | None = None,
    image_sizes: Mapping[str, tuple[int, int]] | None = None,
    label_to_category: Sequence[int] | Mapping[int, int] | None = None,
    image_ids: Mapping[Any, int] | None = None,
    box_mode: str | None = None,
) -> COCOResult:
    """COCO box metrics of ``predictions``.

    Two kinds of ground truth:

    * a COCO instances dict (``{"images", "annotations", "categories"}``): ``predictions`` is
      either a list of COCO results ``{"image_id", "category_id", "bbox", "score"}`` or a
      mapping image key -> :class:`~iadet.evaluation.voc_arrays.Detections`: keys map to COCO image
      ids through ``image_ids`` (default: ``int(key)``), labels to categories through
      ``label_to_category`` (default: the sorted category ids, label ``c`` -> ``sorted_ids[c - 1]``),
      boxes are ``"continuous"`` by default;
    * a mapping image id -> :class:`~iadet.evaluation.voc_arrays.GroundTruth` (a VOC-layout data set;
      ``classes`` required): ``predictions`` maps the same ids to ``Detections``, boxes
      ``"inclusive"`` by default (see the module docstring).
    """
    if _is_coco_dataset(ground_truth):
        dataset = ground_truth
        if not isinstance(predictions, Mapping):
            results = [dict(entry) for entry in predictions]  # loadRes writes into them
        else:
            if label_to_category is None:
                label_to_category = sorted(int(cat["id"]) for cat in dataset["categories"])
            results = to_coco_detections(
                predictions, label_to_category, box_mode=box_mode or "continuous", image_ids=image_ids
            )
    else:
        if classes is None:
            raise DataError("evaluate_coco on VOC-style ground truth needs the class names")
        if not isinstance(predictions, Mapping):
            raise DataError("with VOC-style ground truth, predictions must map image ids to detections")
        dataset, image_ids = voc_to_coco(ground_truth, classes, image_sizes)
        unknown = next((key for key in predictions if key not in image_ids), None)
        if unknown is not None:
            raise DataError(f"predictions for image '{unknown}', which has no ground truth entry")
        results = to_coco_detections(
            predictions, range(1, len(dataset["categories"]) + 1), box_mode=box_mode or "inclusive",
            image_ids=image_ids,
        )  # fmt: skip
    return _run_cocoeval(dataset, results)


def evaluate_split_coco(
    split: Any, records: Sequence[Any], predictions: Mapping[str, Detections]
) -> dict[str, Any]:
    """COCO metrics of ``predictions`` on some records of an iadet ``DatasetSplit``, as a JSON dict.

    COCO-layout splits are scored against their original annotations (so ``area`` is the
    segmentation area and crowds are crowds, as on the server), keyed by ``extra["coco_id"]``,
    labels mapped by ``split.extra["category_ids"]``, boxes continuous; VOC-layout splits go
    through :func:`voc_to_coco`.

    Returns:
        :meth:`COCOResult.to_json`: ``{"mAP": AP, "ap": {class: AP}, "AP", "AP50", ..., "APl"}``.
    """
    if split.format == "coco":
        label_to_category = {int(k): int(v) for k, v in split.extra["category_ids"].items()}
        categories = [
            {"id": label_to_category[label], "name": name}
            for label, name in enumerate(split.classes, start=1)
            if label in label_to_category
        ]
        known = {cat["id"] for cat in categories}
        images, annotations = [], []
        for record in records:
            images.append({"id": record.extra["coco_id"], "width": record.width, "height": record.height})
            for ann in record.extra.get("annotations", []):
                if ann["category_id"] in known:
                    x, y, w, h = ann["bbox"]
                    annotations.append(
                        {
                            **ann,
                            "area": ann.get("area", w * h),
                            "iscrowd": ann.get("iscrowd", 0),
                            "id": len(annotations) + 1,
                        }
                    )
        dataset = {"images": images, "annotations": annotations, "categories": categories}
        image_ids = {record.image_id: record.extra["coco_id"] for record in records}
        result = evaluate_coco(
            dataset,
            predictions,
            label_to_category=label_to_category,
            image_ids=image_ids,
            box_mode="continuous",
        )
    else:
        ground_truth = {
            r.image_id: {"boxes": r.boxes, "labels": r.labels, "difficult": r.difficult} for r in records
        }
        sizes = {r.image_id: (r.height, r.width) for r in records}
        result = evaluate_coco(ground_truth, predictions, classes=split.classes, image_sizes=sizes)
    return result.to_json()


def _is_coco_dataset(ground_truth: Any) -> bool:
    return isinstance(ground_truth, Mapping) and {"images", "annotations", "categories"} <= set(ground_truth)


def _run_cocoeval(dataset: dict[str, Any], results: list[dict[str, Any]]) -> COCOResult:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    known_images = {image["id"] for image in dataset["images"]}
    known_categories = {cat["id"] for cat in dataset["categories"]}
    for entry in results:
        if entry.get("image_id") not in known_images:
            raise DataError(
                f"detection for image id {entry.get('image_id')!r}, which is not in the ground truth"
            )
        if entry.get("category_id") not in known_categories:
            raise DataError(
                f"detection with category id {entry.get('category_id')!r}, which is not in the ground truth"
            )

    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(dataset)  # pycocotools writes into annotations
        coco_gt.createIndex()
        if results:
            coco_dt = coco_gt.loadRes(results)
        else:  # loadRes cannot take an empty list; an empty result set scores 0 where there is ground truth
            coco_dt = COCO()
            coco_dt.dataset = {
                "images": list(dataset["images"]),
                "categories": dataset["categories"],
                "annotations": [],
            }
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        summary_start = captured.tell()
        evaluator.summarize()
    summary = captured.getvalue()[summary_start:]

    stats = {name: float(value) for name, value in zip(STAT_NAMES, evaluator.stats[:6])}
    # precision: (iou thresholds, recall points, categories, area ranges, max dets); area "all", 100 dets
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    names = {cat["id"]: cat.get("name", str(cat["id"])) for cat in dataset["categories"]}
    ap, ap50 = {}, {}
    for k, category in enumerate(evaluator.params.catIds):
        ap[names[category]] = _mean_defined(precision[:, :, k])
        ap50[names[category]] = _mean_defined(precision[0, :, k])
    return COCOResult(stats=stats, ap=ap, ap50=ap50, summary=summary)


def _mean_defined(values: np.ndarray) -> float:
    """Mean of the entries pycocotools defined (it writes -1 for categories without ground truth)."""
    defined = values[values > -1]
    return float(np.mean(defined)) if defined.size else -1.0
