"""Where a detector loses AP: TIDE's error breakdown and precision-recall curves (the confusion matrix is
:mod:`iadet.evaluation.confusion`).

**TIDE** (Bolya et al., ECCV 2020, "TIDE: A General Toolbox for Identifying Object Detection
Errors"). Every detection that is not a true positive gets exactly one error type, tested in
TIDE's order against the non-``difficult`` ground truth of its image, with the foreground
threshold ``t_f = 0.5`` and the background threshold ``t_b = 0.1``:

* ``loc``  (Loc):  its class is right, ``t_b <= IoU <= t_f`` with the ground-truth box of its
  class it overlaps most;
* ``cls``  (Cls):  ``IoU > t_f`` with a ground-truth box of another class;
* ``dupe`` (Dupe): its class is right, ``IoU > t_f`` with a box a higher-scored detection took;
* ``bkg``  (Bkg):  ``IoU < t_b`` with every ground-truth box (also: the image has none);
* ``both`` (Both): anything else (wrong class and ``t_b <= IoU <= t_f``, ...);

and ``missed`` (Miss) is a ground-truth box no detection took and no Cls or Loc error could take.

The ``dAP`` of an error type is the AP after an oracle fixes every error of that type, minus
the AP: TIDE's fixes, from its reference implementation (``tidecv`` 1.0.1). A Cls error becomes
a true positive of the ground truth's class and a Loc error one of its own class, when the box
it aims at is still free and it is the highest-scored Cls or Loc error aiming at it; otherwise
it is removed. Dupe, Bkg and Both errors are removed. A missed box is removed from the
positives. Each type is fixed on its own, starting from the original detections (TIDE's default,
not its "progressive" mode), so the dAPs need not add up to ``1 - AP``; fixing every type at
once gives AP 1 (:meth:`ErrorAnalysis.ap_after_fixing`). TIDE's two "special" errors are
reported too: ``false_positives`` (every false positive removed) and ``false_negatives`` (every
box no detection took removed from the positives).

**What differs from tidecv, on purpose.** The true positives are the PASCAL devkit's
(:mod:`iadet.evaluation.voc`): a detection aims at the box of its class it overlaps most, and is
a true positive when that IoU is *strictly* above ``t_f``, the box is not taken and not
``difficult``; detections on ``difficult`` boxes are neither true nor false positives (TIDE:
COCO's ``>=``, a fall-back to the next free box, crowd regions). So the AP the breakdown starts
from is the devkit's AP, the number ``iadet eval --metric voc`` reports, and "foreground" in the
tests above is ``> t_f`` too (an IoU of exactly 0.5 is a Loc error, not a true positive). AP is the
devkit's area AP (:func:`~iadet.evaluation.voc.voc_ap`, ``metric="voc"``; ``voc07`` on request),
not COCO's 101-point sum; there is no cap of 100 detections per image; ``difficult`` boxes are
neither errors' targets nor missed. The mean over classes is TIDE's: over the classes that have
positives or detections, which is the devkit's mAP whenever every class has ground truth.

**Inputs** are the evaluation's own (:class:`~iadet.evaluation.voc_arrays.GroundTruth` and
:class:`~iadet.evaluation.voc_arrays.Detections` mappings keyed by image id, 0-based boxes, labels in
``1..C``); NumPy arrays, CPU tensors and lists are accepted. Every output has a ``to_json`` or
is a plain dict of Python numbers and lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from iadet.errors import ConfigError, DataError
from iadet.evaluation.voc import descending_order, devkit_iou, voc_ap
from iadet.evaluation.voc_arrays import (
    Detections,
    GroundTruth,
    check_classes,
    stack_detections,
    stack_ground_truth,
)

__all__ = [
    "ERROR_TYPES",
    "FP_KINDS",
    "KINDS",
    "SHORT_NAMES",
    "ErrorAnalysis",
    "analyze_errors",
    "errors_not_made_by",
]

KINDS = ("tp", "ignored", "cls", "loc", "both", "dupe", "bkg")
"""What a detection is: a true positive, ignored (on a ``difficult`` box), or one of the
false-positive error types."""
FP_KINDS = KINDS[2:]
"""The error types of false positives."""
ERROR_TYPES = (*FP_KINDS, "missed")
"""TIDE's six main error types, in its order of tests (Missed concerns ground-truth boxes)."""
SPECIAL_TYPES = ("false_positives", "false_negatives")
SHORT_NAMES = {
    "cls": "Cls",
    "loc": "Loc",
    "both": "Both",
    "dupe": "Dupe",
    "bkg": "Bkg",
    "missed": "Miss",
    "false_positives": "FalsePos",
    "false_negatives": "FalseNeg",
}
"""TIDE's names of the error types."""

_TP, _IGNORED, _CLS, _LOC, _BOTH, _DUPE, _BKG = range(len(KINDS))
_EPS = np.finfo(np.float64).eps


def pairwise_iou(det: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``(D, G)`` devkit IoU of 1-based boxes ``det (D, 4)`` and ``gt (G, 4)`` (nan/inf as 0)."""
    d, g = len(det), len(gt)
    iou = devkit_iou(np.repeat(det, g, axis=0), np.tile(gt, (d, 1))).reshape(d, g)
    return np.nan_to_num(iou, nan=0.0, posinf=0.0, neginf=0.0)


@dataclass
class ErrorAnalysis:
    """Every detection's kind and every ground-truth box's fate; the error breakdown from them.

    Arrays over the ``N`` detections, in input order (images in the order of the ground truth,
    then each image's boxes): ``det_boxes (N, 4)`` 0-based, ``det_labels (N,)`` in ``1..C``,
    ``det_scores (N,)``, ``det_image (N,)`` (index into ``image_ids``), ``det_kind (N,)`` (index
    into :data:`KINDS`), ``det_gt (N,)`` (index into the ground-truth arrays: the box a true
    positive took, the box a Cls/Loc/Dupe error aims at, the box a Both error overlaps most;
    -1 for Bkg) and ``det_iou (N,)`` (the IoU with ``det_gt``, 0 when -1).

    Arrays over the ``K`` ground-truth boxes, in image then annotation order: ``gt_boxes (K, 4)``
    0-based, ``gt_labels (K,)``, ``gt_difficult (K,)``, ``gt_image (K,)``, ``gt_missed (K,)``.
    """

    classes: tuple[str, ...]
    image_ids: list[Any]
    det_boxes: np.ndarray
    det_labels: np.ndarray
    det_scores: np.ndarray
    det_image: np.ndarray
    det_kind: np.ndarray
    det_gt: np.ndarray
    det_iou: np.ndarray
    gt_boxes: np.ndarray
    gt_labels: np.ndarray
    gt_difficult: np.ndarray
    gt_image: np.ndarray
    gt_missed: np.ndarray
    fg_iou: float = 0.5
    bg_iou: float = 0.1
    metric: str = "voc"
    _fixer: np.ndarray = field(default=None, repr=False)  # (N,) bool: the Cls/Loc error its box's fix keeps
    _rank: np.ndarray = field(default=None, repr=False)  # (N,) position in descending score order

    # ------------------------------------------------------------------------------------------
    # AP with and without errors
    # ------------------------------------------------------------------------------------------

    def _points(self, fix: Iterable[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The AP data after fixing ``fix``: ``(keep (N,), labels (N,), tp (N,), npos (C,))``."""
        fix = set(fix)
        unknown = fix - set(ERROR_TYPES) - set(SPECIAL_TYPES)
        if unknown:
            raise ConfigError(
                f"unknown error type(s) {sorted(unknown)} (choose from {', '.join(ERROR_TYPES + SPECIAL_TYPES)})"
            )
        kind = self.det_kind
        keep = kind != _IGNORED
        labels = self.det_labels.copy()
        tp = kind == _TP
        for name, code in (("cls", _CLS), ("loc", _LOC)):
            if name in fix:
                mine = kind == code
                fixed = mine & self._fixer
                tp = tp | fixed
                if code == _CLS:
                    labels[fixed] = self.gt_labels[self.det_gt[fixed]]
                keep &= ~(mine & ~self._fixer)
        for name, code in (("both", _BOTH), ("dupe", _DUPE), ("bkg", _BKG)):
            if name in fix:
                keep &= kind != code
        if "false_positives" in fix:
            keep &= tp
        counted = ~self.gt_difficult
        if "missed" in fix:
            counted &= ~self.gt_missed
        if "false_negatives" in fix:
            taken = np.zeros(len(self.gt_labels), dtype=bool)
            taken[self.det_gt[kind == _TP]] = True
            counted &= taken
        npos = np.bincount(self.gt_labels[counted], minlength=len(self.classes) + 1)[1:]
        return keep, labels, tp, npos

    def _curves(self, fix: Iterable[str] = ()) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, int, bool]]:
        """Per class ``(scores, precision, recall, npos, empty)`` in descending score order."""
        keep, labels, tp, npos = self._points(fix)
        kept = np.flatnonzero(keep)
        kept = kept[np.lexsort((self._rank[kept], labels[kept]))]  # by class, then score order
        bounds = np.searchsorted(labels[kept], np.arange(1, len(self.classes) + 2))
        out = []
        for c in range(len(self.classes)):
            mine = kept[bounds[c] : bounds[c + 1]]
            tp_sum = np.cumsum(tp[mine], dtype=np.float64)
            fp_sum = np.cumsum(~tp[mine], dtype=np.float64)
            precision = tp_sum / np.maximum(tp_sum + fp_sum, _EPS)
            recall = tp_sum / float(npos[c]) if npos[c] > 0 else np.zeros_like(tp_sum)
            out.append(
                (self.det_scores[mine], precision, recall, int(npos[c]), npos[c] == 0 and not len(mine))
            )
        return out

    def ap_after_fixing(self, fix: Iterable[str] = ()) -> tuple[float, dict[str, float]]:
        """``(mean AP, {class: AP})`` (0-1) after an oracle fixes the error types ``fix``.

        ``fix``: names from :data:`ERROR_TYPES` and ``"false_positives"``, ``"false_negatives"``;
        empty for the AP as it is. A class without positives has AP 0; the mean leaves out the
        classes without positives and without detections (TIDE's rule).
        """
        per_class, counted = {}, []
        for name, (_, precision, recall, npos, empty) in zip(self.classes, self._curves(fix)):
            per_class[name] = voc_ap(recall, precision, self.metric) if npos > 0 else 0.0
            if not empty:
                counted.append(per_class[name])
        return (float(np.mean(counted)) if counted else 0.0), per_class

    # ------------------------------------------------------------------------------------------
    # Outputs
    # ------------------------------------------------------------------------------------------

    def counts(self) -> dict[str, dict[str, Any]]:
        """``{kind: {"overall": n, "per_class": {class: n}}}`` for ``tp``, ``ignored``, the false-positive
        kinds (by the detection's class) and ``missed`` (by the box's class)."""
        c = len(self.classes)
        out = {}
        for code, kind in enumerate(KINDS):
            per = np.bincount(self.det_labels[self.det_kind == code], minlength=c + 1)[1:]
            out[kind] = {"overall": int(per.sum()), "per_class": dict(zip(self.classes, map(int, per)))}
        per = np.bincount(self.gt_labels[self.gt_missed], minlength=c + 1)[1:]
        out["missed"] = {"overall": int(per.sum()), "per_class": dict(zip(self.classes, map(int, per)))}
        return out

    def breakdown(self) -> dict[str, Any]:
        """The dAP of each error type, overall and per class (0-1, AP units), as a JSON-able dict::

        {"metric", "fg_iou", "bg_iou",
         "ap": {"overall", "per_class"}, "ap_all_fixed": {"overall", "per_class"},
         "dap": {type: {"overall", "per_class"}} for the six main types,
         "special": {"false_positives": ..., "false_negatives": ...},
         "counts": {kind: {"overall", "per_class"}}}
        """
        ap, per_class = self.ap_after_fixing()
        out: dict[str, Any] = {
            "metric": self.metric,
            "fg_iou": self.fg_iou,
            "bg_iou": self.bg_iou,
            "ap": {"overall": ap, "per_class": per_class},
        }
        for group, types in (("dap", ERROR_TYPES), ("special", SPECIAL_TYPES)):
            out[group] = {}
            for kind in types:
                fixed, fixed_per_class = self.ap_after_fixing([kind])
                out[group][kind] = {
                    "overall": fixed - ap,
                    "per_class": {name: fixed_per_class[name] - per_class[name] for name in self.classes},
                }
        all_ap, all_per_class = self.ap_after_fixing(ERROR_TYPES)
        out["ap_all_fixed"] = {"overall": all_ap, "per_class": all_per_class}
        out["counts"] = self.counts()
        return out

    def pr_curves(self) -> dict[str, dict[str, Any]]:
        """Per class ``{"ap", "npos", "recall", "precision", "score"}``, the devkit's curve as plain lists.

        One point per detection in descending score order would be as long as the detection list;
        only the points where the curve turns are kept (where recall starts or stops being
        constant, and the ends), which draw the same polyline. ``score`` is each point's
        detection score: a point's precision and recall are those of the detections scored at least
        that. Detections on ``difficult`` boxes are left out (the devkit repeats the previous point).
        """
        _, per_class = self.ap_after_fixing()
        out = {}
        for name, (scores, precision, recall, npos, _) in zip(self.classes, self._curves()):
            n = len(recall)
            keep = np.ones(n, dtype=bool)
            if n > 2:
                inner = recall[1:-1]
                keep[1:-1] = (inner != recall[:-2]) | (inner != recall[2:])
            out[name] = {
                "ap": per_class[name],
                "npos": npos,
                "recall": recall[keep].tolist(),
                "precision": precision[keep].tolist(),
                "score": scores[keep].astype(np.float64).tolist(),
            }
        return out

    def detection(self, k: int) -> dict[str, Any]:
        """Detection ``k`` as a JSON-able dict: image, box, class, score, kind and the box it concerns."""
        j = int(self.det_gt[k])
        return {
            "image_id": self.image_ids[int(self.det_image[k])],
            "box": self.det_boxes[k].tolist(),
            "label": int(self.det_labels[k]),
            "class": self.classes[int(self.det_labels[k]) - 1],
            "score": float(self.det_scores[k]),
            "kind": KINDS[int(self.det_kind[k])],
            "gt_box": self.gt_boxes[j].tolist() if j >= 0 else None,
            "gt_class": self.classes[int(self.gt_labels[j]) - 1] if j >= 0 else None,
            "iou": float(self.det_iou[k]),
        }

    def top_errors(self, count: int | None = None) -> list[int]:
        """Indices of the false positives, by descending score (ties in input order), the first ``count``."""
        order = np.empty(len(self._rank), dtype=np.int64)
        order[self._rank] = np.arange(len(self._rank))
        errors = order[self.det_kind[order] >= _CLS]
        return errors[:count].tolist() if count is not None else errors.tolist()

    def to_json(self) -> dict[str, Any]:
        """``{"breakdown": ..., "pr_curves": ...}`` (:meth:`breakdown`, :meth:`pr_curves`)."""
        return {"breakdown": self.breakdown(), "pr_curves": self.pr_curves()}


def _check_thresholds(fg_iou: float, bg_iou: float) -> None:
    if not (0.0 < bg_iou <= fg_iou < 1.0):
        raise ConfigError(f"IoU thresholds must satisfy 0 < background {bg_iou} <= foreground {fg_iou} < 1")


def stack_inputs(
    ground_truth: Mapping[Any, GroundTruth], predictions: Mapping[Any, Detections], classes: Sequence[str]
) -> tuple[tuple[str, ...], list[Any], tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    classes = check_classes(classes)
    if not ground_truth:
        raise DataError("no ground truth: there are no images to evaluate")
    image_ids = list(ground_truth)
    gt = stack_ground_truth(ground_truth, len(classes))
    det = stack_detections(predictions, {image_id: i for i, image_id in enumerate(image_ids)}, len(classes))
    return classes, image_ids, gt, det


def by_image(image: np.ndarray, order: np.ndarray, num_images: int) -> list[np.ndarray]:
    """For each image, the indices ``order`` holds for it, in ``order``'s order."""
    grouped = order[np.argsort(image[order], kind="stable")]
    return np.split(grouped, np.cumsum(np.bincount(image[order], minlength=num_images))[:-1])


def analyze_errors(
    ground_truth: Mapping[Any, GroundTruth],
    predictions: Mapping[Any, Detections],
    classes: Sequence[str],
    *,
    fg_iou: float = 0.5,
    bg_iou: float = 0.1,
    metric: str = "voc",
) -> ErrorAnalysis:
    """TIDE's classification of every detection and ground-truth box (see the module docstring).

    Args:
        ground_truth: image id -> :class:`~iadet.evaluation.voc_arrays.GroundTruth` (``boxes (K, 4)``
            0-based, ``labels (K,)`` in ``1..C``, ``difficult (K,)`` optional). Every image is analysed.
        predictions: image id -> :class:`~iadet.evaluation.voc_arrays.Detections` (``boxes (N, 4)``,
            ``labels (N,)``, ``scores (N,)``); images may be missing (no detections), not added.
        classes: the ``C`` class names, label ``c`` being ``classes[c - 1]``.
        fg_iou: TIDE's ``t_f``: true positives and Cls/Dupe errors need IoU strictly above it.
        bg_iou: TIDE's ``t_b``: below it with every box, a false positive is a Bkg error.
        metric: the AP of the breakdown: ``"voc"`` (area, the default) or ``"voc07"`` (11-point).
    """
    _check_thresholds(fg_iou, bg_iou)
    if metric not in ("voc", "voc07"):
        raise ConfigError(f"unknown metric {metric!r} for the error breakdown (choose voc or voc07)")
    classes, image_ids, gt, det = stack_inputs(ground_truth, predictions, classes)
    gt_boxes, gt_labels, gt_difficult, gt_image = gt
    det_boxes, det_labels, det_scores, det_image = det
    n, k = len(det_scores), len(gt_labels)

    order = descending_order(det_scores)  # ties in input order, as the devkit's stable sort
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    kind = np.full(n, _BKG, dtype=np.int64)
    target = np.full(n, -1, dtype=np.int64)
    overlap = np.zeros(n)
    fixer = np.zeros(n, dtype=bool)
    used = np.zeros(k, dtype=bool)
    usable = np.zeros(k, dtype=bool)

    gt_start = np.concatenate(([0], np.cumsum(np.bincount(gt_image, minlength=len(image_ids)))))
    for i, dets in enumerate(by_image(det_image, order, len(image_ids))):
        g = np.arange(gt_start[i], gt_start[i + 1])
        if not len(dets) or not len(g):
            continue  # no detections, or all of them background errors (the defaults)
        iou = pairwise_iou(det_boxes[dets], gt_boxes[g])
        rows = np.arange(len(dets))
        same = det_labels[dets][:, None] == gt_labels[g][None, :]

        # The devkit's assignment: each detection aims at the box of its class it overlaps most.
        aim = np.where(same, iou, -np.inf).argmax(axis=1)
        aim_iou = np.where(same, iou, -np.inf)[rows, aim]
        hit = aim_iou > fg_iou
        difficult = gt_difficult[g]
        ignored = hit & difficult[aim]
        candidates = np.flatnonzero(hit & ~ignored)
        _, first = np.unique(aim[candidates], return_index=True)  # the first in score order takes it
        tp = np.zeros(len(dets), dtype=bool)
        tp[candidates[first]] = True
        taken = np.zeros(len(g), dtype=bool)
        taken[aim[tp]] = True
        used[g[taken]] = True

        # TIDE's tests for the false positives, against the image's non-difficult boxes.
        counted = ~difficult
        base = np.where(counted[None, :], iou, 0.0)
        own = base * same
        other = base * ~same
        dup = own * taken[None, :]
        loc_j, cls_j, dup_j, any_j = (m.argmax(axis=1) for m in (own, other, dup, base))
        loc_v, cls_v, dup_v, any_v = (
            m[rows, j] for m, j in ((own, loc_j), (other, cls_j), (dup, dup_j), (base, any_j))
        )
        fp = ~tp & ~ignored
        is_loc = fp & (loc_v >= bg_iou) & (loc_v <= fg_iou)
        is_cls = fp & ~is_loc & (cls_v > fg_iou)
        is_dup = fp & ~is_loc & ~is_cls & (dup_v > fg_iou)
        is_bkg = fp & ~is_loc & ~is_cls & ~is_dup & (any_v < bg_iou)
        is_both = fp & ~is_loc & ~is_cls & ~is_dup & ~is_bkg
        if not counted.any():  # only difficult boxes: every false positive is on background
            is_bkg = fp
            is_loc = is_cls = is_dup = is_both = np.zeros_like(fp)

        local_kind = np.full(len(dets), _BKG)
        local_target = np.full(len(dets), -1)
        local_iou = np.zeros(len(dets))
        for mask, code, j, v in (
            (tp, _TP, aim, aim_iou),
            (ignored, _IGNORED, aim, aim_iou),
            (is_loc, _LOC, loc_j, loc_v),
            (is_cls, _CLS, cls_j, cls_v),
            (is_dup, _DUPE, dup_j, dup_v),
            (is_both, _BOTH, any_j, any_v),
        ):
            local_kind[mask] = code
            local_target[mask] = j[mask]
            local_iou[mask] = v[mask]
        kind[dets] = local_kind
        target[dets] = np.where(local_target >= 0, g[np.maximum(local_target, 0)], -1)
        overlap[dets] = local_iou

        # Oracle fixes: of the Cls and Loc errors aimed at a free box, the highest scored (the first
        # in score order) becomes its true positive; the box is then not "missed".
        fixable = np.flatnonzero((is_cls | is_loc) & ~taken[np.maximum(local_target, 0)])
        _, first = np.unique(local_target[fixable], return_index=True)
        fixer[dets[fixable[first]]] = True
        usable[g[local_target[fixable]]] = True

    missed = ~gt_difficult & ~used & ~usable
    return ErrorAnalysis(
        classes=classes,
        image_ids=image_ids,
        det_boxes=det_boxes - 1.0,
        det_labels=det_labels,
        det_scores=det_scores,
        det_image=det_image,
        det_kind=kind,
        det_gt=target,
        det_iou=overlap,
        gt_boxes=gt_boxes - 1.0,
        gt_labels=gt_labels,
        gt_difficult=gt_difficult,
        gt_image=gt_image,
        gt_missed=missed,
        fg_iou=fg_iou,
        bg_iou=bg_iou,
        metric=metric,
        _fixer=fixer,
        _rank=rank,
    )


def errors_not_made_by(
    a: ErrorAnalysis,
    b: ErrorAnalysis,
    *,
    iou: float = 0.5,
    min_score: float = 0.0,
    count: int | None = None,
) -> list[dict[str, Any]]:
    """``a``'s false positives that ``b`` does not make, by descending score (A-Fast-RCNN's Fig. 6).

    ``b`` makes the same mistake when one of its false positives of the same class in the same
    image, scored at least ``min_score``, overlaps it at IoU ``> iou``. Both analyses must be of
    the same ground truth. Returns at most ``count`` entries of :meth:`ErrorAnalysis.detection`.
    """
    if a.image_ids != b.image_ids or not np.array_equal(a.gt_boxes, b.gt_boxes):
        raise DataError("the two error analyses are not of the same images and ground truth")
    b_errors = (b.det_kind >= _CLS) & (b.det_scores >= min_score)
    out = []
    for k in a.top_errors():
        mine = np.flatnonzero(b_errors & (b.det_image == a.det_image[k]) & (b.det_labels == a.det_labels[k]))
        if len(mine) and (pairwise_iou(a.det_boxes[k : k + 1] + 1.0, b.det_boxes[mine] + 1.0) > iou).any():
            continue
        out.append(a.detection(k))
        if count is not None and len(out) >= count:
            break
    return out
