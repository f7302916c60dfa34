"""PASCAL VOC detection metrics, computed exactly as the devkit computes them.

The rules are those of py-faster-rcnn's ``voc_eval.py`` (the Python port of the official
``VOCevaldet.m``), applied per class:

* boxes are 1-based inclusive pixel boxes ``(xmin, ymin, xmax, ymax)``: widths and heights
  are ``xmax - xmin + 1`` and ``ymax - ymin + 1``;
* detections are visited by descending score; each is compared with the ground truth of its
  image and class and assigned to the single box of highest IoU (the first one in annotation
  order on equal IoU); it is a true positive when that IoU is *strictly greater* than the
  threshold, the box is not ``difficult`` and no earlier detection took it; a false positive
  when the IoU is not above the threshold (or the image has no box of its class) or the box
  was taken; and neither when the box is ``difficult``. There is no fallback to the
  second-best box;
* ``difficult`` boxes are not counted in the positives; precision is
  ``tp / max(tp + fp, eps)`` with ``eps = np.finfo(np.float64).eps``;
* ``voc07`` averages, over ``t in np.arange(0., 1.1, 0.1)`` (those exact floats, e.g.
  ``0.30000000000000004``), the largest precision at recall ``>= t``; ``voc`` (VOC2010 and
  later) is the area under the monotone precision envelope.

Choices where the devkit is silent or breaks:

* **Ties in score** change AP (which of two tied detections comes first decides whether the
  curve passes through precision 1 or 1/2). py-faster-rcnn sorts with ``np.argsort(-score)``,
  an unstable quicksort whose order among ties depends on the NumPy build; the MATLAB devkit's
  ``sort`` is stable. We sort stably: tied detections keep their input order (the order of
  the lines in the detection file, or of images and then boxes in memory).
* **A class without detections** (an empty or missing file) has AP 0; py-faster-rcnn crashes.
* **A class without positives** (``npos == 0``) has AP 0 and recall 0; the devkit divides by
  zero (AP 0 under ``voc07``, ``nan`` under ``voc``). An :class:`EvaluationWarning` names it.
* **A detection for an image outside the evaluated set** is an error; py-faster-rcnn raises
  ``KeyError``, the MATLAB devkit "unrecognized image".

One rule differs between the two devkits: py-faster-rcnn matches at IoU ``>`` the threshold,
``VOCevaldet.m`` at ``>=``. We follow py-faster-rcnn (the numbers papers built on it report);
the two disagree only on an IoU of exactly 0.5, which integer boxes can produce.

The greedy matching looks sequential but is not: a detection's target box depends only on the
boxes, never on which boxes are already taken, so the assignment is "the first detection, in
score order, aimed at a box wins it". :func:`match_detections` computes it for all detections
at once.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from iadet.data.files import inside, read_id_lines, read_text
from iadet.data.records import VOC_CLASSES
from iadet.data.voc import read_voc_xml
from iadet.errors import ConfigError, DataError

METRICS = ("voc07", "voc")

_DET_LINE = "image_id score xmin ymin xmax ymax"
_EPS = np.finfo(np.float64).eps
# The devkit's 11 recall thresholds, as np.arange produces them: 0.30000000000000004, not 0.3.
_VOC07_THRESHOLDS = np.arange(0.0, 1.1, 0.1)


class EvaluationWarning(UserWarning):
    """Something the metric handles by convention (a class without positives, a missing file)."""


class GroundTruth(TypedDict, total=False):
    """Ground truth of one image, 0-based as the data loader yields it.

    ``boxes``: ``(K, 4)`` float ``xmin, ymin, xmax, ymax`` (the XML values minus one);
    ``labels``: ``(K,)`` int64 in ``1..len(classes)`` (0 is background);
    ``difficult``: ``(K,)`` bool, optional (all False when absent).
    NumPy arrays, CPU tensors and lists are accepted.
    """

    boxes: Any
    labels: Any
    difficult: Any


class Detections(TypedDict):
    """A detector's output for one image, in the same 0-based coordinates as :class:`GroundTruth`.

    ``boxes``: ``(N, 4)`` float; ``labels``: ``(N,)`` int64 in ``1..len(classes)``;
    ``scores``: ``(N,)`` float.
    """

    boxes: Any
    labels: Any
    scores: Any


@dataclass
class ClassResult:
    """Evaluation of one class. ``precision`` and ``recall`` are ``(N,)``, one point per detection
    in descending score order (detections on ``difficult`` boxes repeat the previous point)."""

    ap: float
    npos: int
    precision: np.ndarray
    recall: np.ndarray


@dataclass
class VOCResult:
    """Per-class APs (in 0-1) and their mean; ``precision``/``recall`` as in :class:`ClassResult`."""

    map: float
    ap: dict[str, float]
    npos: dict[str, int]
    num_detections: dict[str, int]
    precision: dict[str, np.ndarray] = field(repr=False)
    recall: dict[str, np.ndarray] = field(repr=False)
    metric: str = "voc07"
    iou: float = 0.5

    def to_json(self) -> dict[str, Any]:
        """``{"mAP": float, "ap": {class: float}}``, plain Python floats."""
        return {"mAP": float(self.map), "ap": {name: float(ap) for name, ap in self.ap.items()}}


# --------------------------------------------------------------------------------------------
# The metric, on devkit (1-based) boxes
# --------------------------------------------------------------------------------------------


def devkit_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU of ``boxes_a[i]`` (detections) with ``boxes_b[i]`` (ground truth), ``(P, 4)`` 1-based
    inclusive boxes; returns ``(P,)``.

    The arithmetic is the devkit's, operation for operation, so results agree to the last bit.
    """
    a, b = boxes_a, boxes_b
    iw = np.maximum(np.minimum(b[:, 2], a[:, 2]) - np.maximum(b[:, 0], a[:, 0]) + 1.0, 0.0)
    ih = np.maximum(np.minimum(b[:, 3], a[:, 3]) - np.maximum(b[:, 1], a[:, 1]) + 1.0, 0.0)
    inters = iw * ih
    union = (
        (a[:, 2] - a[:, 0] + 1.0) * (a[:, 3] - a[:, 1] + 1.0)
        + (b[:, 2] - b[:, 0] + 1.0) * (b[:, 3] - b[:, 1] + 1.0)
        - inters
    )
    with np.errstate(divide="ignore", invalid="ignore"):  # degenerate boxes: as the devkit, nan/inf
        return inters / union


def match_detections(
    det_boxes: np.ndarray,
    det_image: np.ndarray,
    gt_boxes: np.ndarray,
    gt_image: np.ndarray,
    gt_difficult: np.ndarray,
    iou: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Devkit assignment of detections, already sorted by descending score, to ground truth.

    Args:
        det_boxes: ``(N, 4)`` 1-based boxes, in descending score order.
        det_image: ``(N,)`` int image index of each detection.
        gt_boxes: ``(K, 4)`` 1-based boxes of the same class; within an image, in annotation order.
        gt_image: ``(K,)`` int image index of each box.
        gt_difficult: ``(K,)`` bool.
        iou: a match needs IoU strictly greater than this.

    Returns:
        ``tp, fp``: ``(N,)`` bool. A detection on a difficult box is neither.
    """
    n = len(det_boxes)
    num_images = int(max(det_image.max(initial=-1), gt_image.max(initial=-1))) + 1
    # Every (detection, box of its image) pair, grouped by detection, boxes in annotation order.
    gt_order = np.argsort(gt_image, kind="stable")
    gt_count = np.bincount(gt_image, minlength=num_images)
    gt_start = np.cumsum(gt_count) - gt_count
    pairs_per_det = gt_count[det_image]
    pair_start = np.cumsum(pairs_per_det) - pairs_per_det
    pair_det = np.repeat(np.arange(n), pairs_per_det)
    pair_rank = np.arange(len(pair_det)) - pair_start[pair_det]
    pair_gt = gt_order[gt_start[det_image[pair_det]] + pair_rank]
    overlaps = devkit_iou(np.take(det_boxes, pair_det, axis=0), np.take(gt_boxes, pair_gt, axis=0))

    # Best box of each detection: max IoU (nan if any is nan, like np.max), first argmax.
    best_iou = np.full(n, -np.inf)
    has_gt = pairs_per_det > 0
    if overlaps.size:
        best_iou[has_gt] = np.maximum.reduceat(overlaps, pair_start[has_gt])
    at_max = np.flatnonzero(overlaps == best_iou[pair_det])
    first = np.ones(len(at_max), dtype=bool)
    first[1:] = pair_det[at_max[1:]] != pair_det[at_max[:-1]]
    best_gt = np.full(n, -1)
    best_gt[pair_det[at_max[first]]] = pair_gt[at_max[first]]

    matched = best_iou > iou  # False for nan and for detections in images without boxes
    hits_difficult = np.zeros(n, dtype=bool)
    hits_difficult[matched] = gt_difficult[best_gt[matched]]
    candidates = np.flatnonzero(matched & ~hits_difficult)
    # The first candidate aimed at a box takes it; later ones are duplicates.
    _, first_hit = np.unique(best_gt[candidates], return_index=True)
    tp = np.zeros(n, dtype=bool)
    tp[candidates[first_hit]] = True
    fp = ~(tp | hits_difficult)
    return tp, fp


def voc_ap(recall: np.ndarray, precision: np.ndarray, metric: str = "voc07") -> float:
    """Average precision from ``(N,)`` recall and precision in score order (devkit ``voc_ap``)."""
    if metric == "voc07":
        ap = 0.0
        for t in _VOC07_THRESHOLDS:
            above = recall >= t
            p = np.max(precision[above]) if above.any() else 0.0
            ap = ap + p / 11.0  # summed in this order, as the devkit does, for bitwise equality
        return float(ap)
    if metric == "voc":
        mrec = np.concatenate(([0.0], recall, [1.0]))
        mpre = np.concatenate(([0.0], precision, [0.0]))
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]
        i = np.flatnonzero(mrec[1:] != mrec[:-1])
        return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))
    raise ConfigError(f"unknown VOC metric {metric!r} (choose from {', '.join(METRICS)})")


def descending_order(scores: np.ndarray) -> np.ndarray:
    """Indices sorting ``scores`` ``(N,)`` by descending value, ties in input order (a stable sort).

    NumPy's default sort is several times faster than its stable sort on floats and gives the
    same order when all scores differ, so the stable sort only runs when some are equal.
    """
    order = np.argsort(-scores)
    ranked = scores[order]
    if not np.all(ranked[1:] < ranked[:-1]):  # ties (or nan)
        order = np.argsort(-scores, kind="stable")
    return order


def evaluate_class(
    gt_boxes: np.ndarray,
    gt_image: np.ndarray,
    gt_difficult: np.ndarray,
    det_boxes: np.ndarray,
    det_image: np.ndarray,
    det_scores: np.ndarray,
    *,
    metric: str = "voc07",
    iou: float = 0.5,
) -> ClassResult:
    """The devkit's ``voc_eval`` for one class, on 1-based boxes (what the result files hold).

    Args:
        gt_boxes: ``(K, 4)`` float 1-based inclusive ``xmin, ymin, xmax, ymax`` of this class.
        gt_image: ``(K,)`` int image index of each box (non-negative).
        gt_difficult: ``(K,)`` bool.
        det_boxes: ``(N, 4)`` float 1-based detections of this class, in any order.
        det_image: ``(N,)`` int image index of each detection (same indices as ``gt_image``).
        det_scores: ``(N,)`` float confidence; ties keep their input order.
        metric: ``"voc07"`` (11-point) or ``"voc"`` (area).
        iou: a match needs IoU strictly greater than this.
    """
    _check_metric(metric, iou)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    gt_image = np.asarray(gt_image, dtype=np.int64).reshape(-1)
    gt_difficult = np.asarray(gt_difficult, dtype=bool).reshape(-1)
    det_boxes = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    det_image = np.asarray(det_image, dtype=np.int64).reshape(-1)
    det_scores = np.asarray(det_scores, dtype=np.float64).reshape(-1)
    npos = int(np.count_nonzero(~gt_difficult))

    order = descending_order(det_scores)
    tp, fp = match_detections(
        np.take(det_boxes, order, axis=0), det_image[order], gt_boxes, gt_image, gt_difficult, iou
    )
    tp_sum = np.cumsum(tp, dtype=np.float64)
    fp_sum = np.cumsum(fp, dtype=np.float64)
    precision = tp_sum / np.maximum(tp_sum + fp_sum, _EPS)
    if npos == 0:  # the devkit divides by zero here; see the module docstring
        return ClassResult(ap=0.0, npos=0, precision=precision, recall=np.zeros_like(tp_sum))
    recall = tp_sum / float(npos)
    return ClassResult(ap=voc_ap(recall, precision, metric), npos=npos, precision=precision, recall=recall)


def evaluate_devkit(
    classes: Sequence[str],
    ground_truth: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    detections: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    metric: str = "voc07",
    iou: float = 0.5,
) -> VOCResult:
    """Evaluate every class on 1-based data; the shared core of the file and in-memory paths.

    Args:
        classes: class names; label ``c`` (1-based) is ``classes[c - 1]``.
        ground_truth: ``(boxes (K, 4), labels (K,), difficult (K,), image (K,))``, all classes and
            images, boxes of an image in annotation order.
        detections: per class, in the order of ``classes``, ``(boxes (N, 4), image (N,), scores (N,))``.
    """
    _check_metric(metric, iou)
    gt_boxes, gt_labels, gt_difficult, gt_image = ground_truth
    results: dict[str, ClassResult] = {}
    num_detections: dict[str, int] = {}
    for label, (name, (det_boxes, det_image, det_scores)) in enumerate(zip(classes, detections), start=1):
        mine = gt_labels == label
        results[name] = evaluate_class(
            gt_boxes[mine], gt_image[mine], gt_difficult[mine], det_boxes, det_image, det_scores,
            metric=metric, iou=iou,
        )  # fmt: skip
        num_detections[name] = len(det_scores)
        if results[name].npos == 0:
            warnings.warn(
                f"class '{name}' has no non-difficult ground truth (npos = 0); its AP is reported as 0",
                EvaluationWarning,
                stacklevel=2,
            )
    aps = {name: r.ap for name, r in results.items()}
    return VOCResult(
        map=float(np.mean(list(aps.values()))),
        ap=aps,
        npos={name: r.npos for name, r in results.items()},
        num_detections=num_detections,
        precision={name: r.precision for name, r in results.items()},
        recall={name: r.recall for name, r in results.items()},
        metric=metric,
        iou=iou,
    )


# --------------------------------------------------------------------------------------------
# In memory: the data loader's 0-based boxes
# --------------------------------------------------------------------------------------------


def evaluate_voc(
    ground_truth: Mapping[str, GroundTruth],
    predictions: Mapping[str, Detections],
    classes: Sequence[str],
    *,
    metric: str = "voc07",
    iou: float = 0.5,
) -> VOCResult:
    """Devkit VOC metric on in-memory, 0-based ground truth and predictions.

    Boxes are shifted by +1 (back to the XML's 1-based coordinates) and evaluated by the same
    core as ``iadet voc-eval``, so both give the same numbers (exactly, for boxes and scores that
    survive the round trip through text). Every image of ``ground_truth`` is evaluated, including
    those without boxes; ``predictions`` may omit images but not add any.

    Args:
        ground_truth: image id -> :class:`GroundTruth` (0-based boxes, labels in ``1..C``).
        predictions: image id -> :class:`Detections` (0-based boxes, labels in ``1..C``, scores).
        classes: the ``C`` class names, label ``c`` being ``classes[c - 1]``.
        metric: ``"voc07"`` (11-point, VOC2007 test) or ``"voc"`` (area, VOC2010+).
        iou: a match needs IoU strictly greater than this.
    """
    classes = check_classes(classes)
    _check_metric(metric, iou)
    if not ground_truth:
        raise DataError("no ground truth: there are no images to evaluate")
    gt = stack_ground_truth(ground_truth, len(classes))
    det_boxes, det_labels, det_scores, det_image = stack_detections(
        predictions, {image_id: i for i, image_id in enumerate(ground_truth)}, len(classes)
    )
    # Each class's detections, in input order (which breaks ties in score).
    counts = np.bincount(det_labels, minlength=len(classes) + 1)[1:]
    ends = np.cumsum(counts)
    by_class = np.argsort(det_labels.astype(np.uint16) if len(classes) < 2**16 else det_labels, kind="stable")

    def per_class():
        for start, end in zip(ends - counts, ends):
            mine = by_class[start:end]
            yield np.take(det_boxes, mine, axis=0), det_image[mine], det_scores[mine]

    return evaluate_devkit(classes, gt, per_class(), metric=metric, iou=iou)


def stack_ground_truth(
    ground_truth: Mapping[Any, GroundTruth], num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate 0-based ground truth into devkit arrays.

    Returns:
        ``boxes (K, 4)`` 1-based (``+ 1``), ``labels (K,)``, ``difficult (K,)``, ``image (K,)``
        (the position of the image in ``ground_truth``), all images in order.
    """
    parts = []
    for image_id, target in ground_truth.items():
        try:  # the common case, quickly; anything unusual goes through the careful checks
            boxes = _numpy(target["boxes"], np.float64)
            labels = _numpy(target["labels"], np.int64)
            difficult = target.get("difficult")
            difficult = np.zeros(len(labels), bool) if difficult is None else _numpy(difficult, bool)
            usual = (
                boxes.ndim == 2 and boxes.shape[1] == 4 and labels.shape == difficult.shape == (len(boxes),)
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            usual = False
        if not usual:
            boxes, labels, difficult = ground_truth_arrays(image_id, target, num_classes)
        parts.append((boxes, labels, difficult))
    boxes, labels, difficult = (np.concatenate(part) for part in zip(*parts))
    image = np.repeat(np.arange(len(parts)), [len(part[1]) for part in parts])
    _check_flat_labels(labels, image, list(ground_truth), num_classes, "ground truth")
    return boxes.reshape(-1, 4) + 1.0, labels, difficult, image


def stack_detections(
    predictions: Mapping[Any, Detections], index: Mapping[Any, int], num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate 0-based predictions into devkit arrays.

    Args:
        predictions: image id -> :class:`Detections`.
        index: image id -> image index; predictions for an id not in it are an error.

    Returns:
        ``boxes (N, 4)`` 1-based (``+ 1``), ``labels (N,)``, ``scores (N,)``, ``image (N,)``, in
        the order of ``predictions`` and then of each image's boxes.
    """
    parts, images = [], []
    for image_id, output in predictions.items():
        if image_id not in index:
            raise DataError(f"predictions for image '{image_id}', which has no ground truth entry")
        try:
            boxes = _numpy(output["boxes"], np.float64)
            labels = _numpy(output["labels"], np.int64)
            scores = _numpy(output["scores"], np.float64)
            usual = boxes.ndim == 2 and boxes.shape[1] == 4 and labels.shape == scores.shape == (len(boxes),)
        except (KeyError, TypeError, ValueError, AttributeError):
            usual = False
        if not usual:
            boxes, labels, scores = detection_arrays(image_id, output, num_classes)
        parts.append((boxes, labels, scores))
        images.append(index[image_id])
    if not parts:
        return np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
    boxes, labels, scores = (np.concatenate(part) for part in zip(*parts))
    position = np.repeat(np.arange(len(parts)), [len(part[1]) for part in parts])
    keys = list(predictions)
    _check_flat_labels(labels, position, keys, num_classes, "predictions")
    if not (np.isfinite(scores).all() and np.isfinite(boxes).all()):
        k = np.flatnonzero(~(np.isfinite(scores) & np.isfinite(boxes).all(axis=1)))[0]
        raise DataError(
            f"image '{keys[position[k]]}': detection {scores[k]} {boxes[k].tolist()} is not finite"
        )
    return boxes.reshape(-1, 4) + 1.0, labels, scores, np.asarray(images, dtype=np.int64)[position]


def check_classes(classes: Sequence[str]) -> tuple[str, ...]:
    """Return ``classes`` as a tuple; raise :class:`DataError` if empty, blank or duplicated."""
    if isinstance(classes, str):
        raise DataError(f"classes must be a sequence of names, not the string {classes!r}")
    classes = tuple(classes)
    if not classes:
        raise DataError("the class list is empty")
    seen = set()
    for name in classes:
        if not isinstance(name, str) or not name or name != name.strip():
            raise DataError(f"invalid class name {name!r} in the class list")
        if name in seen:
            raise DataError(f"class '{name}' appears twice in the class list")
        seen.add(name)
    return classes


def ground_truth_arrays(
    image_id: Any, target: GroundTruth, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(boxes (K, 4) float64, labels (K,) int64, difficult (K,) bool)`` of one image, checked."""
    try:
        boxes, labels, difficult = target.get("boxes", ()), target.get("labels", ()), target.get("difficult")
    except AttributeError:
        raise DataError(
            f"image '{image_id}': ground truth must be a dict of 'boxes', 'labels', 'difficult'"
        ) from None
    boxes = _boxes(boxes, image_id)
    labels = _array(labels, np.int64, image_id, "labels").reshape(-1)
    if difficult is None:
        difficult = np.zeros(len(labels), dtype=bool)
    else:
        difficult = _array(difficult, bool, image_id, "difficult").reshape(-1)
    _check_lengths(image_id, "ground truth", boxes=boxes, labels=labels, difficult=difficult)
    _check_labels(image_id, "ground truth", labels, num_classes)
    return boxes, labels, difficult


def detection_arrays(
    image_id: Any, output: Detections, num_classes: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(boxes (N, 4) float64, labels (N,) int64, scores (N,) float64)`` of one image, checked.

    Labels must lie in ``1..num_classes`` (not checked when ``num_classes`` is None).
    """
    try:
        boxes, labels, scores = output["boxes"], output["labels"], output["scores"]
    except (KeyError, TypeError):
        raise DataError(f"image '{image_id}': predictions need 'boxes', 'labels' and 'scores'") from None
    boxes = _boxes(boxes, image_id)
    labels = _array(labels, np.int64, image_id, "labels").reshape(-1)
    scores = _array(scores, np.float64, image_id, "scores").reshape(-1)
    _check_lengths(image_id, "predictions", boxes=boxes, labels=labels, scores=scores)
    if num_classes is not None:
        _check_labels(image_id, "predictions", labels, num_classes)
    return boxes, labels, scores


def _check_metric(metric: str, iou: float) -> None:
    if metric not in METRICS:
        raise ConfigError(f"unknown VOC metric {metric!r} (choose from {', '.join(METRICS)})")
    if not 0.0 <= iou < 1.0:
        raise ConfigError(f"IoU threshold {iou} is outside [0, 1)")


def _numpy(value: Any, dtype: type) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, possibly on the GPU
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def _array(value: Any, dtype: type, image_id: Any, key: str) -> np.ndarray:
    try:
        return _numpy(value, dtype)
    except (TypeError, ValueError) as exc:
        raise DataError(f"image '{image_id}': '{key}' is not a numeric array ({exc})") from None


def _boxes(value: Any, image_id: Any) -> np.ndarray:
    boxes = _array(value, np.float64, image_id, "boxes")
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise DataError(f"image '{image_id}': boxes have shape {tuple(boxes.shape)}, expected (N, 4)")
    return boxes


def _check_lengths(image_id: Any, what: str, **arrays: np.ndarray) -> None:
    lengths = {key: len(a) for key, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        sizes = ", ".join(f"{key} {n}" for key, n in lengths.items())
        raise DataError(f"image '{image_id}': {what} arrays differ in length ({sizes})")


def _check_labels(image_id: Any, what: str, labels: np.ndarray, num_classes: int) -> None:
    bad = labels[(labels < 1) | (labels > num_classes)]
    if bad.size:
        raise DataError(f"image '{image_id}': {what} label {int(bad[0])} is outside 1..{num_classes}")


def _check_flat_labels(
    labels: np.ndarray, position: np.ndarray, keys: list, num_classes: int, what: str
) -> None:
    bad = np.flatnonzero((labels < 1) | (labels > num_classes))
    if bad.size:
        _check_labels(keys[position[bad[0]]], what, labels[bad[:1]], num_classes)


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
    _check_metric(metric, iou)
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
