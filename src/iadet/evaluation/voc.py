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
from typing import Any

import numpy as np

from iadet.errors import ConfigError, DataError
from iadet.evaluation.voc_arrays import (
    Detections,
    GroundTruth,
    check_classes,
    stack_detections,
    stack_ground_truth,
)

METRICS = ("voc07", "voc")

_EPS = np.finfo(np.float64).eps
# The devkit's 11 recall thresholds, as np.arange produces them: 0.30000000000000004, not 0.3.
_VOC07_THRESHOLDS = np.arange(0.0, 1.1, 0.1)


class EvaluationWarning(UserWarning):
    """Something the metric handles by convention (a class without positives, a missing file)."""


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
    check_metric(metric, iou)
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
    check_metric(metric, iou)
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
    check_metric(metric, iou)
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


def check_metric(metric: str, iou: float) -> None:
    if metric not in METRICS:
        raise ConfigError(f"unknown VOC metric {metric!r} (choose from {', '.join(METRICS)})")
    if not 0.0 <= iou < 1.0:
        raise ConfigError(f"IoU threshold {iou} is outside [0, 1)")
