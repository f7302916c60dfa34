"""The devkit's files: image sets, ``Annotations/*.xml`` and ``comp4_det_test_<class>.txt`` result files.

:func:`evaluate_voc_files` is what ``iadet voc-eval`` runs: the same core as the in-memory metric
(:func:`iadet.evaluation.voc.evaluate_devkit`) on the files as the devkit reads them, 1-based. Every reading error
is one line naming the file and the line.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iadet.data.files import inside, read_id_lines, read_text
from iadet.data.records import VOC_CLASSES
from iadet.data.voc import read_voc_xml
from iadet.errors import DataError
from iadet.evaluation.voc import EvaluationWarning, VOCResult, check_metric, evaluate_devkit
from iadet.evaluation.voc_arrays import check_classes

_DET_LINE = "image_id score xmin ymin xmax ymax"

# --------------------------------------------------------------------------------------------
# Devkit files: image set, Annotations/*.xml, comp4_det_test_<class>.txt
# --------------------------------------------------------------------------------------------


@dataclass
class VOCAnnotation:
    """The objects of one annotation XML, in file order, in its 1-based coordinates."""

    names: list[str]
    boxes: np.ndarray  # (K, 4) float64 xmin, ymin, xmax, ymax
    difficult: np.ndarray  # (K,) bool


def read_image_set(path: str | Path) -> list[str]:
    """Image ids of an ``ImageSets/Main/<split>.txt`` file: the first word of each non-blank line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image set file not found: {path}")
    ids: list[str] = []
    first_line: dict[str, int] = {}
    # UTF-8 (BOM or not), one plain id per line: the same rule as training's split files
    for lineno, image_id in read_id_lines(path, "image set"):
        if image_id in first_line:
            raise DataError(
                f"{path}:{lineno}: image '{image_id}' is listed twice (first on line {first_line[image_id]})"
            )
        first_line[image_id] = lineno
        ids.append(image_id)
    if not ids:
        raise DataError(f"image set {path} lists no images")
    return ids


def read_voc_annotation(path: str | Path) -> VOCAnnotation:
    """Parse one VOC annotation XML (safely, with defusedxml).

    Each ``<object>`` needs ``<name>`` and ``<bndbox>`` with numeric ``xmin ymin xmax ymax``
    (floats allowed); ``<difficult>`` may be missing (0).
    """
    _, objects = read_voc_xml(Path(path))
    names = [o.name for o in objects]
    boxes = [list(o.box) for o in objects]
    difficult = [o.difficult for o in objects]
    return VOCAnnotation(
        names=names,
        boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        difficult=np.asarray(difficult, dtype=bool),
    )


def read_voc_detections(
    path: str | Path, image_index: Mapping[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read a devkit detection file.

    Args:
        path: file of lines ``image_id score xmin ymin xmax ymax`` (blank lines are skipped).
        image_index: image id -> index; an id not in it is an error.

    Returns:
        ``image (N,) int64, scores (N,) float64, boxes (N, 4) float64``, in file order,
        boxes in the file's (1-based) coordinates.
    """
    path = Path(path)
    try:
        lines = read_text(path, "detection file").splitlines()
    except DataError as exc:
        raise DataError(f"cannot read detection file {exc}") from None
    rows, linenos = [], []
    for lineno, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 6:
            raise DataError(f"{path}:{lineno}: expected '{_DET_LINE}', got {_shorten(line)!r}")
        rows.append(fields)
        linenos.append(lineno)
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros((0, 4))

    try:
        values = np.array([row[1:] for row in rows], dtype=np.float64)
    except ValueError:
        values = None
    if values is None or not np.isfinite(values).all():
        for row, lineno in zip(rows, linenos):  # find the culprit, for the message
            try:
                finite = all(np.isfinite(float(v)) for v in row[1:])
            except ValueError:
                finite = False
            if not finite:
                raise DataError(
                    f"{path}:{lineno}: score and box must be finite numbers ('{_DET_LINE}'), "
                    f"got {_shorten(' '.join(row))!r}"
                )
    try:
        image = np.array([image_index[row[0]] for row in rows], dtype=np.int64)
    except KeyError:
        lineno, row = next((n, r) for n, r in zip(linenos, rows) if r[0] not in image_index)
        raise DataError(f"{path}:{lineno}: image '{_shorten(row[0])}' is not in the image set") from None
    return image, values[:, 0].copy(), values[:, 1:].copy()


def evaluate_voc_files(
    annotations: str | Path,
    image_set: str | Path,
    detections: str,
    classes: Sequence[str] = VOC_CLASSES,
    *,
    metric: str = "voc07",
    iou: float = 0.5,
) -> VOCResult:
    """Evaluate devkit result files, as ``iadet voc-eval`` does.

    Args:
        annotations: directory of ``<image id>.xml`` files.
        image_set: file listing the image ids to evaluate, one per line.
        detections: path pattern with ``{}`` standing for the class name, e.g.
            ``results/comp4_det_test_{}.txt``; each line ``image_id score xmin ymin xmax ymax``
            in 1-based coordinates. A missing file means no detections (AP 0, with a warning).
        classes: class names (default: the 20 VOC classes).
    """
    classes = check_classes(classes)
    check_metric(metric, iou)
    if "{}" not in detections:
        raise DataError(f"the detections pattern {detections!r} has no '{{}}' for the class name")
    ids = read_image_set(image_set)
    index = {image_id: i for i, image_id in enumerate(ids)}
    label_of = {name: c for c, name in enumerate(classes, start=1)}
    annotations = Path(annotations)

    gt_parts = []
    for i, image_id in enumerate(ids):
        path = annotations / f"{image_id}.xml"
        if not path.is_file():
            raise DataError(f"no annotation for image '{image_id}' of {image_set}: {path} does not exist")
        ann = read_voc_annotation(inside(path, annotations, "annotation"))
        keep = np.array([name in label_of for name in ann.names], dtype=bool)
        labels = np.array([label_of[name] for name in ann.names if name in label_of], dtype=np.int64)
        gt_parts.append((ann.boxes[keep], labels, ann.difficult[keep], np.full(len(labels), i)))
    gt = tuple(np.concatenate(part) for part in zip(*gt_parts))

    def per_class():
        for name in classes:
            path = Path(detections.replace("{}", name))
            if not path.is_file():
                warnings.warn(
                    f"no detection file for class '{name}' ({path}); its AP is 0",
                    EvaluationWarning,
                    stacklevel=3,
                )
                yield np.zeros((0, 4)), np.zeros(0, dtype=np.int64), np.zeros(0)
                continue
            image, scores, boxes = read_voc_detections(path, index)
            yield boxes, image, scores

    return evaluate_devkit(classes, gt, per_class(), metric=metric, iou=iou)


def _shorten(text: str, limit: int = 80) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."
