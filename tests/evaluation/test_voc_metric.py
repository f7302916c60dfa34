"""The devkit's rules, one hand-computed case each (1-based boxes unless said otherwise)."""

from __future__ import annotations

import numpy as np
import pytest

from iadet.errors import ConfigError
from iadet.evaluation.voc import (
    EvaluationWarning,
    devkit_iou,
    evaluate_class,
    evaluate_voc,
    match_detections,
    voc_ap,
)

A = (1, 1, 10, 10)  # 10 x 10 pixels in the devkit's inclusive convention


def one_class(gt, dets, difficult=None, metric="voc07", iou=0.5):
    """``gt``: [(image, box)], ``dets``: [(image, score, box)], boxes 1-based."""
    gt_image = np.array([g[0] for g in gt], dtype=np.int64)
    gt_boxes = np.array([g[1] for g in gt], dtype=np.float64).reshape(-1, 4)
    difficult = np.zeros(len(gt), bool) if difficult is None else np.array(difficult, bool)
    det_image = np.array([d[0] for d in dets], dtype=np.int64)
    det_scores = np.array([d[1] for d in dets], dtype=np.float64)
    det_boxes = np.array([d[2] for d in dets], dtype=np.float64).reshape(-1, 4)
    return evaluate_class(
        gt_boxes, gt_image, difficult, det_boxes, det_image, det_scores, metric=metric, iou=iou
    )


# --- IoU ------------------------------------------------------------------------------------


def test_iou_counts_pixels_inclusively():
    # Same box: 1. Half overlap: columns 6..10 of 1..10 and 6..15 -> 5 x 10 = 50 / (100 + 100 - 50).
    # Diagonal neighbours sharing one pixel: 1 / (4 + 4 - 1) (0 in continuous coordinates).
    a = np.array([A, A, (1, 1, 2, 2)], dtype=float)
    b = np.array([A, (6, 1, 15, 10), (2, 2, 3, 3)], dtype=float)
    assert devkit_iou(a, b).tolist() == [1.0, 50 / 150, 1 / 7]


@pytest.mark.parametrize(("iou", "expected_ap"), [(0.5, 0.0), (0.49, 1.0)])
def test_iou_exactly_at_the_threshold_is_not_a_match(iou, expected_ap):
    # Rows 1..5 of the 10 x 10 box: 50 / 100 = 0.5 exactly; a match needs IoU > threshold.
    result = one_class([(0, A)], [(0, 0.9, (1, 1, 10, 5))], iou=iou)
    assert result.ap == pytest.approx(expected_ap, abs=1e-12)


# --- the 11-point metric's floating thresholds --------------------------------------------------

# np.arange(0., 1.1, 0.1) is 0, 0.1, 0.2, 0.30000000000000004, 0.4, 0.5, 0.6000000000000001,
# 0.7000000000000001, 0.8, 0.9, 1.0; recall k/10 reaches the thresholds not above it. So recall
# 0.3, 0.6 and 0.7 miss "their" threshold, 0.1, 0.2, 0.4, 0.5, 0.8, 0.9 and 1.0 reach it.
THRESHOLDS_REACHED = {1: 2, 2: 3, 3: 3, 4: 5, 5: 6, 6: 6, 7: 7, 8: 9, 9: 10, 10: 11}


def test_the_thresholds_are_numpy_floats():
    t = np.arange(0.0, 1.1, 0.1)
    assert t[3] == 0.30000000000000004 and t[6] == 0.6000000000000001 and t[7] == 0.7000000000000001
    assert 3 / 10 < t[3] and 6 / 10 < t[6] and 7 / 10 < t[7] and 4 / 10 == t[4] and 8 / 10 == t[8]


@pytest.mark.parametrize("hits", sorted(THRESHOLDS_REACHED))
def test_voc07_with_ten_positives_and_k_true_positives(hits):
    # 10 objects in 10 images, the top `hits` detections hit: precision 1 up to recall hits/10.
    gt = [(i, A) for i in range(10)]
    dets = [(i, 1.0 - i / 100, A) for i in range(hits)]
    result = one_class(gt, dets)
    assert result.recall[-1] == hits / 10
    assert result.ap == pytest.approx(THRESHOLDS_REACHED[hits] / 11, rel=1e-12)
    area = one_class(gt, dets, metric="voc")
    assert area.ap == pytest.approx(hits / 10, rel=1e-12)


def test_recall_point_three_gets_three_points_not_four():
    result = one_class([(i, A) for i in range(10)], [(i, 1.0 - i / 100, A) for i in range(3)])
    assert result.ap != pytest.approx(4 / 11)
    assert result.ap == pytest.approx(3 / 11)


def test_voc_ap_on_a_hand_made_curve():
    # recall .5 at precision 1, then .5 at 1/2, then 1 at 2/3.
    recall = np.array([0.5, 0.5, 1.0])
    precision = np.array([1.0, 0.5, 2 / 3])
    assert voc_ap(recall, precision, "voc") == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert voc_ap(recall, precision, "voc07") == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)
    with pytest.raises(ConfigError):
        voc_ap(recall, precision, "coco")


# --- matching -----------------------------------------------------------------------------


def test_duplicate_detection_is_a_false_positive():
    # Two objects; the second detection repeats the first: tp 1 0 1, fp 0 1 0.
    g2 = (21, 21, 30, 30)
    result = one_class([(0, A), (0, g2)], [(0, 0.9, A), (0, 0.8, A), (0, 0.7, g2)], metric="voc")
    assert result.recall.tolist() == [0.5, 0.5, 1.0]
    assert result.precision.tolist() == [1.0, 0.5, 2 / 3]
    assert result.ap == pytest.approx(5 / 6)


def test_no_fallback_to_the_second_best_box():
    # g1 = columns 1..10, g2 = 4..13. The second detection (2..11) overlaps g1 by 90/110 and g2
    # by 80/120 > 0.5, but g1 is its best and is taken: a false positive, g2 stays unmatched.
    g2 = (4, 1, 13, 10)
    result = one_class([(0, A), (0, g2)], [(0, 0.9, A), (0, 0.8, (2, 1, 11, 10))], metric="voc")
    assert result.recall.tolist() == [0.5, 0.5]
    assert result.ap == pytest.approx(0.5)


def test_equal_iou_goes_to_the_first_box_in_annotation_order():
    # Two identical objects; two identical detections both aim at the first: one TP, one FP.
    tp, fp = match_detections(
        np.array([A, A], float),
        np.zeros(2, int),
        np.array([A, A], float),
        np.zeros(2, int),
        np.zeros(2, bool),
    )
    assert tp.tolist() == [True, False] and fp.tolist() == [False, True]


def test_detection_whose_best_match_is_difficult_counts_neither_way():
    # a (normal) = columns 1..10, b (difficult) = 2..11. The first detection sits on b
    # (IoU 1; 90/110 with a): ignored, even though a would match. The second hits a.
    b = (2, 1, 11, 10)
    only = one_class([(0, A), (0, b)], [(0, 0.9, b)], difficult=[False, True])
    assert only.npos == 1
    assert only.precision.tolist() == [0.0] and only.recall.tolist() == [0.0]  # tp = fp = 0: 0 / eps
    both = one_class([(0, A), (0, b)], [(0, 0.9, b), (0, 0.8, A)], difficult=[False, True], metric="voc")
    assert both.recall.tolist() == [0.0, 1.0] and both.precision.tolist() == [0.0, 1.0]
    assert both.ap == pytest.approx(1.0)  # 0.5 if the first detection were a false positive


def test_difficult_object_is_not_a_positive_and_can_be_hit_many_times():
    tp, fp = match_detections(
        np.array([A, A, A], float), np.zeros(3, int), np.array([A], float), np.zeros(1, int), np.ones(1, bool)
    )
    assert not tp.any() and not fp.any()


def test_detection_in_an_image_without_ground_truth_is_a_false_positive():
    # Image 1 has no object of the class; its detection ranks first: recall 0 then 1 at precision 1/2.
    result = one_class([(0, A)], [(1, 0.9, A), (0, 0.8, A)])
    assert result.precision.tolist() == [0.0, 0.5]
    assert result.ap == pytest.approx(0.5)


def test_detections_are_ranked_by_descending_score_not_input_order():
    hit, miss = (0, 0.2, A), (0, 0.9, (50, 50, 60, 60))
    assert one_class([(0, A)], [hit, miss]).ap == pytest.approx(0.5)


@pytest.mark.parametrize(("first", "expected_ap"), [("hit", 1.0), ("miss", 0.5)])
def test_ties_in_score_keep_input_order(first, expected_ap):
    hit, miss = (0, 0.5, A), (0, 0.5, (50, 50, 60, 60))
    dets = [hit, miss] if first == "hit" else [miss, hit]
    assert one_class([(0, A)], dets).ap == pytest.approx(expected_ap)


def test_degenerate_boxes_give_nan_iou_and_a_false_positive_like_the_devkit():
    # xmax = xmin - 1: zero width, zero area; against a zero-area box, 0 / 0.
    flat = (5, 5, 4, 4)
    tp, fp = match_detections(
        np.array([flat], float),
        np.zeros(1, int),
        np.array([flat], float),
        np.zeros(1, int),
        np.zeros(1, bool),
    )
    assert fp.tolist() == [True] and tp.tolist() == [False]


# --- classes without detections or positives ------------------------------------------------


def test_class_without_detections_has_ap_zero():
    result = one_class([(0, A)], [])
    assert result.ap == 0.0 and result.npos == 1 and len(result.precision) == 0


def test_class_without_positives_has_ap_zero_and_warns():
    gt = {"a": {"boxes": [[0, 0, 9, 9]], "labels": [1], "difficult": [True]}}
    pred = {"a": {"boxes": [[0, 0, 9, 9]], "labels": [1], "scores": [0.9]}}
    with pytest.warns(EvaluationWarning, match="'x' has no non-difficult"):
        result = evaluate_voc(gt, pred, ["x"], metric="voc")
    assert result.ap == {"x": 0.0} and result.npos == {"x": 0}
    assert np.isfinite(result.recall["x"]).all()


# --- the in-memory API --------------------------------------------------------------------


def test_in_memory_boxes_are_zero_based():
    # 0-based (0, 0, 9, 9) is the devkit's (1, 1, 10, 10); (0, 0, 9, 4) overlaps it by exactly 0.5.
    gt = {"a": {"boxes": np.array([[0, 0, 9, 9]]), "labels": np.array([1]), "difficult": np.array([False])}}
    exact = {"a": {"boxes": np.array([[0.0, 0, 9, 9]]), "labels": np.array([1]), "scores": np.array([0.9])}}
    half = {"a": {"boxes": np.array([[0.0, 0, 9, 4]]), "labels": np.array([1]), "scores": np.array([0.9])}}
    assert evaluate_voc(gt, exact, ["x"]).ap["x"] == pytest.approx(1.0)
    assert evaluate_voc(gt, half, ["x"]).ap["x"] == 0.0
    assert evaluate_voc(gt, half, ["x"], iou=0.4).ap["x"] == pytest.approx(1.0)


def test_evaluate_voc_per_class_and_mean():
    # class x: perfect; class y: one object, no detection; class z: detection in an image with none.
    gt = {
        "a": {"boxes": [[0, 0, 9, 9], [20, 20, 29, 29]], "labels": [1, 2]},
        "b": {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, np.int64)},  # no objects at all
        "c": {"boxes": [[0, 0, 9, 9]], "labels": [3]},
    }
    pred = {
        "a": {"boxes": [[0, 0, 9, 9]], "labels": [1], "scores": [0.9]},
        "b": {"boxes": [[0, 0, 9, 9]], "labels": [3], "scores": [0.8]},
    }
    result = evaluate_voc(gt, pred, ["x", "y", "z"], metric="voc")
    assert result.ap["x"] == pytest.approx(1.0) and result.ap["y"] == 0.0 and result.ap["z"] == 0.0
    assert result.npos == {"x": 1, "y": 1, "z": 1}
    assert result.num_detections == {"x": 1, "y": 0, "z": 1}
    assert result.map == pytest.approx(1 / 3)
    assert result.to_json() == {"mAP": result.map, "ap": result.ap}
    assert all(type(v) is float for v in result.to_json()["ap"].values())


@pytest.mark.parametrize(("metric", "iou"), [("coco", 0.5), ("voc07", 1.0), ("voc", -0.1)])
def test_bad_metric_or_iou_is_a_config_error(metric, iou):
    gt = {"a": {"boxes": [[0, 0, 1, 1]], "labels": [1]}}
    with pytest.raises(ConfigError):
        evaluate_voc(gt, {}, ["x"], metric=metric, iou=iou)
