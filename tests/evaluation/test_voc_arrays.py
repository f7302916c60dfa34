"""The in-memory inputs of the VOC metric (iadet.evaluation.voc_arrays): tensors, lists and arrays are taken,
0-based boxes are shifted exactly, and every bad input is one line naming the image and the key."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from iadet.errors import DataError
from iadet.evaluation.voc import EvaluationWarning, evaluate_voc
from iadet.evaluation.voc_arrays import check_classes, detection_arrays, stack_ground_truth


def test_evaluate_voc_takes_tensors_and_missing_difficult():
    gt = {"a": {"boxes": torch.tensor([[0.0, 0, 9, 9]]), "labels": torch.tensor([1])}}
    pred = {
        "a": {
            "boxes": torch.tensor([[0.0, 0, 9, 9]]),
            "labels": torch.tensor([1]),
            "scores": torch.tensor([0.5]),
        }
    }
    assert evaluate_voc(gt, pred, ["x"]).ap["x"] == pytest.approx(1.0)


def test_float32_boxes_are_shifted_in_float64():
    # 0-based float32 boxes of integer XML values come back exactly: 0.5 IoU stays 0.5.
    gt = {"a": {"boxes": np.array([[0, 0, 9, 9]], np.float32), "labels": [1]}}
    pred = {"a": {"boxes": np.array([[0, 0, 9, 4]], np.float32), "labels": [1], "scores": [0.9]}}
    assert evaluate_voc(gt, pred, ["x"]).ap["x"] == 0.0


@pytest.mark.parametrize(
    ("gt", "pred", "classes", "message"),
    [
        ({"a": {"boxes": [[0, 0, 1, 1]], "labels": [0]}}, {}, ["x"], "image 'a': ground truth label 0"),
        ({"a": {"boxes": [[0, 0, 1, 1]], "labels": [1]}}, {"b": {"boxes": [], "labels": [], "scores": []}}, ["x"],
         "image 'b'"),
        ({"a": {"boxes": [[0, 0, 1, 1]], "labels": [1]}}, {"a": {"boxes": [[0, 0, 1, 1]], "labels": [2], "scores": [1]}},
         ["x"], "predictions label 2 is outside 1..1"),
        ({"a": {"boxes": [[0, 0, 1, 1]], "labels": [1, 1]}}, {}, ["x"], "differ in length"),
        ({"a": {"boxes": [0, 0, 1], "labels": [1]}}, {}, ["x"], "boxes have shape (3,)"),
        ({"a": {"boxes": [[0, 0, 1, 1]], "labels": [1]}}, {"a": {"boxes": [[0, 0, 1, 1]], "labels": [1]}}, ["x"],
         "need 'boxes', 'labels' and 'scores'"),
        ({"a": {"boxes": [[0, 0, 1, 1]], "labels": [1]}},
         {"a": {"boxes": [[0, 0, 1, 1]], "labels": [1], "scores": [float("nan")]}}, ["x"], "not finite"),
        ({"a": {"boxes": [[0, 0, 1, 1]], "labels": [1]}},
         {"a": {"boxes": [[0, 0, 1, float("inf")]], "labels": [1], "scores": [1]}}, ["x"], "not finite"),
        ({"a": {"boxes": [[0, 0, 1, 1]], "labels": [1]}}, {}, [], "empty"),
        ({"a": {"boxes": [[0, 0, 1, 1]], "labels": [1]}}, {}, ["x", "x"], "'x' appears twice"),
        ({}, {}, ["x"], "no images"),
    ],
)  # fmt: skip
def test_evaluate_voc_rejects_bad_input_in_one_line(gt, pred, classes, message):
    with pytest.raises(DataError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore", EvaluationWarning)
        evaluate_voc(gt, pred, classes)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_stacked_ground_truth_is_one_based_in_image_order():
    gt = {"b": {"boxes": [[0, 0, 9, 9]], "labels": [2]}, "a": {"boxes": np.zeros((0, 4)), "labels": []},
          "c": {"boxes": torch.tensor([[1.0, 2, 3, 4], [5, 6, 7, 8]]), "labels": torch.tensor([1, 1]),
                "difficult": [False, True]}}  # fmt: skip
    boxes, labels, difficult, image = stack_ground_truth(gt, 2)
    assert boxes.tolist() == [[1, 1, 10, 10], [2, 3, 4, 5], [6, 7, 8, 9]]
    assert labels.tolist() == [2, 1, 1] and difficult.tolist() == [False, False, True]
    assert image.tolist() == [0, 2, 2]


def test_one_image_checks_name_the_image_and_key():
    with pytest.raises(DataError, match=r"image 'x'.*scores"):
        detection_arrays("x", {"boxes": [[0, 0, 1, 1]], "labels": [1], "scores": [[1, 2]]}, 1)
    assert check_classes(["a", "b"]) == ("a", "b")
    with pytest.raises(DataError, match="not the string"):
        check_classes("ab")
