"""The in-memory form of a dataset: one :class:`ImageRecord` per image, whatever the format."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


@dataclass
class ImageRecord:
    """One annotated image.

    Attributes:
        image_id: the id used in split files, result files and predictions (VOC: file stem).
        path: the image file.
        width, height: the upright image size in pixels.
        boxes: ``(K, 4)`` float32 ``xmin, ymin, xmax, ymax`` in **0-based** pixel coordinates
            (VOC: the XML's 1-based values minus 1, as py-faster-rcnn loads them; COCO: ``x, y,
            x + w, y + h``).
        labels: ``(K,)`` int64 class indices in ``1..num_classes`` (0 is background).
        difficult: ``(K,)`` bool, VOC's ``difficult`` (COCO: ``iscrowd``); kept for evaluation,
            left out of training unless ``data.use_difficult``.
        extra: format-specific fields (COCO image id, mask source...).
    """

    image_id: str
    path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def aspect_ratio(self) -> float:
        return self.width / max(self.height, 1)


@dataclass
class DatasetSplit:
    """The records of one split, with the class names (background excluded)."""

    name: str
    root: Path
    classes: tuple[str, ...]
    records: list[ImageRecord]
    format: str = "voc"
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)

    def ground_truth(self) -> dict[str, dict[str, np.ndarray]]:
        """``{image_id: {"boxes", "labels", "difficult"}}`` for the evaluators (0-based boxes)."""
        return {
            r.image_id: {"boxes": r.boxes, "labels": r.labels, "difficult": r.difficult} for r in self.records
        }


def empty_annotations() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros((0, 4), np.float32), np.zeros((0,), np.int64), np.zeros((0,), bool)
