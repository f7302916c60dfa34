"""A confusion matrix of detections: which class each ground-truth box is detected as.

It shares TIDE's inputs and matching conventions (:mod:`iadet.evaluation.tide`): the same stacked
arrays, the same IoU, ``difficult`` boxes ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from iadet.errors import ConfigError
from iadet.evaluation.tide import by_image, pairwise_iou, stack_inputs
from iadet.evaluation.voc import descending_order
from iadet.evaluation.voc_arrays import Detections, GroundTruth


def confusion_matrix(
    ground_truth: Mapping[Any, GroundTruth],
    predictions: Mapping[Any, Detections],
    classes: Sequence[str],
    *,
    iou: float = 0.5,
    score_threshold: float = 0.3,
) -> dict[str, Any]:
    """Which class each ground-truth box is detected as, at IoU ``iou`` and score ``score_threshold``.

    Per image, the detections scored at least ``score_threshold`` are visited by descending score;
    each takes the free non-difficult box of its own class it overlaps most at IoU ``> iou``
    (cell ``[class, class]``), else the free box of any class it overlaps most (cell
    ``[box class, detected class]``), else, when it overlaps a ``difficult`` box that much, it is
    ignored, else it is a false positive on background (cell ``[background, detected class]``;
    duplicates land here). Boxes left free are missed (cell ``[box class, background]``).

    Returns:
        ``{"labels": [*classes, "background"], "matrix": (C + 1) x (C + 1) list of ints (rows: ground
        truth, columns: detection; the background/background cell is 0), "iou", "score_threshold"}``.
    """
    if not 0.0 <= iou < 1.0:
        raise ConfigError(f"IoU threshold {iou} is outside [0, 1)")
    classes, image_ids, gt, det = stack_inputs(ground_truth, predictions, classes)
    gt_boxes, gt_labels, gt_difficult, gt_image = gt
    det_boxes, det_labels, det_scores, det_image = det
    c = len(classes)
    matrix = np.zeros((c + 1, c + 1), dtype=np.int64)
    confident = np.flatnonzero(det_scores >= score_threshold)
    order = confident[descending_order(det_scores[confident])]
    gt_start = np.concatenate(([0], np.cumsum(np.bincount(gt_image, minlength=len(image_ids)))))
    for i, dets in enumerate(by_image(det_image, order, len(image_ids))):
        g = np.arange(gt_start[i], gt_start[i + 1])
        labels = gt_labels[g] - 1
        counted = ~gt_difficult[g]
        free = counted.copy()
        iou_matrix = pairwise_iou(det_boxes[dets], gt_boxes[g]) if len(g) else np.zeros((len(dets), 0))
        for row, label in zip(iou_matrix, det_labels[dets] - 1):
            over = row > iou
            for candidates in (free & over & (labels == label), free & over):
                if candidates.any():
                    j = int(np.argmax(np.where(candidates, row, -1.0)))
                    free[j] = False
                    matrix[labels[j], label] += 1
                    break
            else:
                if not (over & ~counted).any():
                    matrix[c, label] += 1
        np.add.at(matrix[:, c], labels[free], 1)
    return {
        "labels": [*classes, "background"],
        "matrix": matrix.tolist(),
        "iou": float(iou),
        "score_threshold": float(score_threshold),
    }
