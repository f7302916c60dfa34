"""COCO metrics through pycocotools, and how they relate to the VOC metric on toy cases."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from iadet.errors import DataError
from iadet.evaluation.coco import STAT_NAMES, evaluate_coco, evaluate_split_coco, voc_to_coco
from iadet.evaluation.voc import evaluate_voc

CLASSES = ("dog", "cat")
# pycocotools samples precision at 101 recall points, np.linspace(0, 1, 101): 0.5 is one of them.
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def gt(boxes, labels=None, difficult=None):
    n = len(boxes)
    return {
        "boxes": np.array(boxes, float).reshape(-1, 4),
        "labels": np.array(labels or [1] * n),
        "difficult": np.array(difficult or [False] * n),
    }


def dets(boxes, scores, labels=None):
    return {
        "boxes": np.array(boxes, float).reshape(-1, 4),
        "labels": np.array(labels or [1] * len(boxes)),
        "scores": np.array(scores, float),
    }


def both(ground_truth, predictions, classes=CLASSES):
    return (
        evaluate_voc(ground_truth, predictions, classes, metric="voc07"),
        evaluate_voc(ground_truth, predictions, classes, metric="voc"),
        evaluate_coco(ground_truth, predictions, classes=classes),
    )


def test_voc_boxes_become_coco_boxes_one_pixel_wider():
    dataset, ids = voc_to_coco(
        {"a": gt([[0, 0, 9, 19]], [2], [True]), "b": gt([])}, CLASSES, {"a": (375, 500), "b": (1, 2)}
    )
    assert ids == {"a": 1, "b": 2}
    assert dataset["images"][0] == {"id": 1, "file_name": "a", "height": 375, "width": 500}
    ann = dataset["annotations"][0]
    assert ann["bbox"] == [0.0, 0.0, 10.0, 20.0] and ann["area"] == 200.0
    assert ann["iscrowd"] == 1 and ann["category_id"] == 2 and ann["id"] == 1
    assert dataset["categories"] == [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}]


def test_perfect_detector_scores_one_everywhere(capsys):
    ground_truth = {"a": gt([[0, 0, 9, 9], [20, 20, 59, 59]], [1, 2]), "b": gt([[5, 5, 40, 30]], [1])}
    predictions = {
        "a": dets([[0, 0, 9, 9], [20, 20, 59, 59]], [0.9, 0.8], [1, 2]),
        "b": dets([[5, 5, 40, 30]], [0.7], [1]),
    }
    voc07, voc, coco = both(ground_truth, predictions)
    assert voc07.map == pytest.approx(1.0) and voc.map == pytest.approx(1.0)
    for name in ("AP", "AP50", "AP75"):
        assert coco.stats[name] == pytest.approx(1.0)
    assert coco.ap == pytest.approx({"dog": 1.0, "cat": 1.0})
    assert capsys.readouterr().out == ""  # pycocotools' prints are captured...
    assert "Average Precision" in coco.summary  # ...and kept


def test_hit_miss_hit_interpolations_differ():
    # Two dogs; detections: hit (0.9), far miss (0.8), hit (0.7). Recall .5 at precision 1, then
    # 1 at 2/3. VOC area: .5 * 1 + .5 * 2/3. VOC07: t = 0..0.5 (six points) at 1, five at 2/3.
    # COCO: recall points 0..0.5 (51) at 1, 0.51..1 (50) at 2/3; exact boxes, so AP = AP50 = AP75.
    assert RECALL_POINTS[50] == 0.5
    ground_truth = {"a": gt([[0, 0, 9, 9]]), "b": gt([[20, 20, 39, 39]])}
    predictions = {
        "a": dets([[0, 0, 9, 9], [60, 60, 70, 70]], [0.9, 0.8]),
        "b": dets([[20, 20, 39, 39]], [0.7]),
    }
    voc07, voc, coco = both(ground_truth, predictions, ("dog",))
    assert voc.ap["dog"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert voc07.ap["dog"] == pytest.approx((6 + 5 * 2 / 3) / 11)
    expected = (51 + 50 * 2 / 3) / 101
    assert coco.stats["AP50"] == pytest.approx(expected) and coco.stats["AP"] == pytest.approx(expected)
    assert coco.ap50["dog"] == pytest.approx(expected)


def test_iou_exactly_one_half_matches_in_coco_but_not_in_voc():
    # (0,0,9,4) covers the top half of (0,0,9,9): IoU 0.5 in both conventions (50 / 100 pixels).
    ground_truth = {"a": gt([[0, 0, 9, 9]])}
    predictions = {"a": dets([[0, 0, 9, 4]], [0.9])}
    voc07, voc, coco = both(ground_truth, predictions, ("dog",))
    assert voc07.ap["dog"] == 0.0 and voc.ap["dog"] == 0.0  # the devkit needs IoU > 0.5
    assert coco.stats["AP50"] == pytest.approx(1.0)  # pycocotools takes IoU >= 0.5
    assert coco.stats["AP75"] == 0.0


def test_coco_falls_back_to_the_next_free_box_voc_does_not():
    # Dogs at columns 0..9 and 3..12; the second detection (1..10) overlaps the first dog by
    # 90/110 and the second by 80/120: VOC calls it a duplicate, COCO matches the second dog at
    # IoU 0.5 (not at 0.75).
    ground_truth = {"a": gt([[0, 0, 9, 9], [3, 0, 12, 9]])}
    predictions = {"a": dets([[0, 0, 9, 9], [1, 0, 10, 9]], [0.9, 0.8])}
    voc07, voc, coco = both(ground_truth, predictions, ("dog",))
    assert voc.ap["dog"] == pytest.approx(0.5) and voc07.ap["dog"] == pytest.approx(6 / 11)
    assert coco.stats["AP50"] == pytest.approx(1.0)
    assert coco.stats["AP75"] == pytest.approx(51 / 101)  # recall .5 at precision 1, then nothing


def test_difficult_objects_are_ignored_in_both():
    # A normal dog and a difficult one; the top detection sits on the difficult one.
    ground_truth = {"a": gt([[0, 0, 9, 9], [30, 30, 49, 49]], difficult=[False, True])}
    predictions = {"a": dets([[30, 30, 49, 49], [0, 0, 9, 9]], [0.9, 0.8])}
    voc07, voc, coco = both(ground_truth, predictions, ("dog",))
    assert voc.ap["dog"] == pytest.approx(1.0)
    assert coco.stats["AP"] == pytest.approx(1.0)  # 0.5 if the difficult dog were a false positive
    # Without the flag the second dog is a positive: both detections find both dogs (AP 1), the
    # lower one alone finds half of them (precision 1 up to recall 0.5: 51 of COCO's 101 points).
    plain = {"a": gt([[0, 0, 9, 9], [30, 30, 49, 49]])}
    assert evaluate_coco(plain, predictions, classes=("dog",)).stats["AP"] == pytest.approx(1.0)
    assert evaluate_coco(plain, {"a": dets([[0, 0, 9, 9]], [0.8])}, classes=("dog",)).stats[
        "AP"
    ] == pytest.approx(51 / 101)


def test_no_detections_scores_zero_and_undefined_ranges_are_minus_one():
    coco = evaluate_coco({"a": gt([[0, 0, 9, 9]])}, {}, classes=("dog",))
    assert coco.stats["AP"] == 0.0 and coco.stats["APs"] == 0.0  # a 10 x 10 box is "small"
    assert coco.stats["APm"] == -1.0 and coco.stats["APl"] == -1.0  # no medium or large objects
    assert list(coco.stats) == list(STAT_NAMES)
    assert coco.to_json()["mAP"] == 0.0 and coco.to_json()["ap"] == {"dog": 0.0}


def test_coco_dataset_with_results_list():
    dataset = {
        "images": [{"id": 42, "width": 100, "height": 100}],
        "annotations": [
            {"id": 7, "image_id": 42, "category_id": 18, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0}
        ],
        "categories": [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}],
    }
    hit = {"image_id": 42, "category_id": 18, "bbox": [10, 10, 20, 20], "score": 0.9}
    result = evaluate_coco(dataset, [hit])
    assert result.stats["AP"] == pytest.approx(1.0)
    assert result.ap == pytest.approx({"person": -1.0, "dog": 1.0})  # no person: undefined
    assert "segmentation" not in hit  # the caller's entries are not modified
    # The same detection as a mapping: labels follow the sorted category ids (1 -> 1, 2 -> 18),
    # boxes are continuous corners.
    mapping = {"42": dets([[10, 10, 30, 30]], [0.9], [2])}
    assert evaluate_coco(dataset, mapping).stats == result.stats
    with pytest.raises(DataError, match="image id 43"):
        evaluate_coco(dataset, [{**hit, "image_id": 43}])
    with pytest.raises(DataError, match="category id 5"):
        evaluate_coco(dataset, [{**hit, "category_id": 5}])


def test_voc_ground_truth_needs_classes_and_known_images():
    with pytest.raises(DataError, match="needs the class names"):
        evaluate_coco({"a": gt([[0, 0, 9, 9]])}, {})
    with pytest.raises(DataError, match="image 'z'"):
        evaluate_coco({"a": gt([[0, 0, 9, 9]])}, {"z": dets([], [])}, classes=("dog",))


def record(image_id, boxes, labels, difficult, **extra):
    return SimpleNamespace(
        image_id=image_id,
        width=100,
        height=80,
        boxes=np.array(boxes, np.float32).reshape(-1, 4),
        labels=np.array(labels, np.int64),
        difficult=np.array(difficult, bool),
        extra=extra,
    )


def test_evaluate_split_coco_on_a_voc_split():
    records = [record("a", [[0, 0, 9, 9]], [1], [False])]
    split = SimpleNamespace(format="voc", classes=("dog",), extra={})
    out = evaluate_split_coco(split, records, {"a": dets([[0, 0, 9, 9]], [0.9])})
    assert (
        out["mAP"] == pytest.approx(1.0) and out["AP50"] == pytest.approx(1.0) and set(out["ap"]) == {"dog"}
    )


def test_evaluate_split_coco_on_a_coco_split_uses_the_original_annotations():
    # The original annotation has a segmentation area (150) smaller than its box (400): "small".
    ann = {"id": 3, "image_id": 42, "category_id": 18, "bbox": [10, 10, 20, 20], "area": 150.0, "iscrowd": 0}
    records = [record("dog42", [[10, 10, 30, 30]], [1], [False], coco_id=42, annotations=[ann])]
    split = SimpleNamespace(format="coco", classes=("dog",), extra={"category_ids": {1: 18}})
    out = evaluate_split_coco(split, records, {"dog42": dets([[10, 10, 30, 30]], [0.9])})
    assert out["AP"] == pytest.approx(1.0) and out["APs"] == pytest.approx(1.0) and out["APm"] == -1.0
