"""The in-memory inputs of the VOC metric: 0-based ground truth and detections, checked and stacked.

:func:`iadet.evaluation.voc.evaluate_voc` takes mappings image id -> :class:`GroundTruth` and image id ->
:class:`Detections` (NumPy arrays, CPU or GPU tensors, lists). The usual case goes straight through; anything
unusual goes through the careful checks, whose errors name the image and the key: boxes not ``(K, 4)``, lengths
that differ, labels outside ``1..C``, non-finite detections, a class list that is empty, blank or repeated.
The stacked arrays are in the devkit's 1-based coordinates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

import numpy as np

from iadet.errors import DataError


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
