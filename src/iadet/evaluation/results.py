"""Result files for the evaluation servers (the devkit's reader is in :mod:`iadet.evaluation.voc_files`).

* PASCAL VOC: ``DIR/results/VOC2012/Main/comp4_det_test_<class>.txt``, one line per detection,
  ``image_id score xmin ymin xmax ymax``, in the XML's 1-based coordinates (the loader's 0-based
  boxes plus one), score with 6 decimals and boxes with 1, as the devkit's writers do. Every
  class gets a file, empty when it has no detection: the server wants all of them.
* COCO test-dev: a JSON list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``.

Boxes in memory are ``(N, 4)`` ``xmin, ymin, xmax, ymax``. Two conventions exist and the COCO
conversion needs to know which one it gets (``box_mode``):

* ``"continuous"`` (the default, COCO-layout data): corners in continuous coordinates, as
  iadet's COCO loader makes them (``x, y, x + w, y + h``); COCO's box is
  ``[xmin, ymin, xmax - xmin, ymax - ymin]``.
* ``"inclusive"`` (VOC-layout data): 0-based *pixel indices* of the first and last pixel, as the
  VOC loader makes them (the XML minus one); the box covers ``xmax - xmin + 1`` pixels, so COCO's
  box is ``[xmin, ymin, xmax - xmin + 1, ymax - ymin + 1]``, and COCO's IoU equals the devkit's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iadet.errors import DataError
from iadet.evaluation.voc_arrays import Detections, check_classes, detection_arrays

BOX_MODES = ("inclusive", "continuous")


def voc_results_dir(out_dir: str | Path, year: str = "2012") -> Path:
    """``out_dir/results/VOC<year>/Main``, the layout the VOC evaluation server expects."""
    return Path(out_dir) / "results" / f"VOC{year}" / "Main"


def write_voc_results(
    predictions: Mapping[str, Detections],
    classes: Sequence[str],
    out_dir: str | Path,
    *,
    year: str = "2012",
    split: str = "test",
    competition: str = "comp4",
) -> dict[str, Path]:
    """Write ``out_dir/results/VOC<year>/Main/<competition>_det_<split>_<class>.txt`` for every class.

    Args:
        predictions: image id -> :class:`~iadet.evaluation.voc_arrays.Detections`, 0-based boxes,
            labels in ``1..len(classes)``. Lines follow the mapping's order, then the boxes' order.
        classes: class names, label ``c`` being ``classes[c - 1]``.
        out_dir: the directory that receives ``results/``.

    Returns:
        class name -> path of its file.
    """
    classes = check_classes(classes)
    lines: list[list[str]] = [[] for _ in classes]
    for image_id, output in predictions.items():
        boxes, labels, scores = detection_arrays(image_id, output, len(classes))
        boxes = boxes + 1.0
        for (x1, y1, x2, y2), label, score in zip(boxes.tolist(), labels.tolist(), scores.tolist()):
            lines[label - 1].append(f"{image_id} {score:.6f} {x1:.1f} {y1:.1f} {x2:.1f} {y2:.1f}\n")
    directory = voc_results_dir(out_dir, year)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, class_lines in zip(classes, lines):
        paths[name] = directory / f"{competition}_det_{split}_{name}.txt"
        paths[name].write_text("".join(class_lines), encoding="utf-8")
    return paths


def to_coco_detections(
    predictions: Mapping[Any, Detections],
    label_to_category: Sequence[int] | Mapping[int, int],
    *,
    box_mode: str = "continuous",
    image_ids: Mapping[Any, int] | None = None,
) -> list[dict[str, Any]]:
    """COCO result entries ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``.

    Args:
        predictions: image key -> :class:`~iadet.evaluation.voc_arrays.Detections`.
        label_to_category: label -> COCO category id; a sequence maps label ``c`` to
            ``label_to_category[c - 1]`` (labels are 1-based).
        box_mode: ``"inclusive"`` or ``"continuous"``, see the module docstring.
        image_ids: image key -> COCO image id; by default the key itself, as an int.
    """
    if box_mode not in BOX_MODES:
        raise DataError(f"unknown box mode {box_mode!r} (choose from {', '.join(BOX_MODES)})")
    if isinstance(label_to_category, Mapping):
        category_of = {int(k): int(v) for k, v in label_to_category.items()}
    else:
        category_of = {c: int(cat) for c, cat in enumerate(label_to_category, start=1)}
    extent = 1.0 if box_mode == "inclusive" else 0.0
    entries = []
    for key, output in predictions.items():
        image_id = _coco_image_id(key, image_ids)
        boxes, labels, scores = detection_arrays(key, output, None)
        unknown = [label for label in labels.tolist() if label not in category_of]
        if unknown:
            raise DataError(f"image '{key}': label {unknown[0]} has no COCO category")
        xywh = np.stack(
            [
                boxes[:, 0],
                boxes[:, 1],
                boxes[:, 2] - boxes[:, 0] + extent,
                boxes[:, 3] - boxes[:, 1] + extent,
            ],
            axis=1,
        )
        for bbox, label, score in zip(xywh.tolist(), labels.tolist(), scores.tolist()):
            entries.append(
                {"image_id": image_id, "category_id": category_of[label], "bbox": bbox, "score": score}
            )
    return entries


def write_coco_results(
    predictions: Mapping[Any, Detections],
    label_to_category: Sequence[int] | Mapping[int, int],
    path: str | Path,
    *,
    box_mode: str = "continuous",
    image_ids: Mapping[Any, int] | None = None,
) -> Path:
    """Write the COCO test-dev detections JSON (see :func:`to_coco_detections`); returns ``path``."""
    entries = to_coco_detections(predictions, label_to_category, box_mode=box_mode, image_ids=image_ids)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path


def _coco_image_id(key: Any, image_ids: Mapping[Any, int] | None) -> int:
    if image_ids is not None:
        try:
            return image_ids[key]
        except KeyError:
            raise DataError(f"predictions for image '{key}', which is not in the ground truth") from None
    try:
        return int(key)
    except (TypeError, ValueError):
        raise DataError(f"COCO image ids are integers; got image key {key!r}") from None
