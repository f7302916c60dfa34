"""TIDE's error breakdown, PR curves and the confusion matrix on hand-made cases whose answer is known."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iadet.errors import ConfigError, DataError
from iadet.evaluation.confusion import confusion_matrix
from iadet.evaluation.tide import KINDS, analyze_errors, errors_not_made_by
from iadet.evaluation.voc import EvaluationWarning, evaluate_voc

CLASSES = ("a", "b", "c", "d", "e")


def square(x: float, y: float = 0.0, size: float = 50.0) -> list[float]:
    """A 0-based inclusive box of ``size`` pixels a side at ``(x, y)``."""
    return [x, y, x + size - 1, y + size - 1]


def one_of_each() -> tuple[dict, dict]:
    """One box per class side by side; five detections, one of each kind, and the boxes of d and e missed.

    Scores in this order: a true positive of a; a detection labelled a on b's box (Cls); c's box
    shifted by 30 of its 50 pixels (IoU 0.25: Loc); a second detection on a's box (Dupe); d far from
    every box (Bkg). Nothing aims at e's box (Missed).
    """
    gt = {"im": {"boxes": np.array([square(100 * c) for c in range(5)]), "labels": np.arange(1, 6)}}
    det = {
        "im": {
            "boxes": np.array([square(0), square(100), square(230), square(1), square(1000, 1000)]),
            "labels": np.array([1, 1, 3, 1, 4]),
            "scores": np.array([0.9, 0.8, 0.7, 0.6, 0.5]),
        }
    }
    return gt, det


def test_each_detection_gets_its_kind_and_the_untouched_box_is_missed():
    analysis = analyze_errors(*one_of_each(), CLASSES)
    assert [KINDS[k] for k in analysis.det_kind] == ["tp", "cls", "loc", "dupe", "bkg"]
    # the Cls error aims at b's box, the Loc error at c's, the Dupe at a's (taken by the first)
    assert analysis.det_gt.tolist() == [0, 1, 2, 0, -1]
    assert analysis.det_iou[2] == pytest.approx(20 * 50 / (80 * 50))
    # d's box only has a Bkg error far away, e's nothing: both missed; b and c could be fixed
    assert analysis.gt_missed.tolist() == [False, False, False, True, True]
    counts = analysis.counts()
    assert {k: v["overall"] for k, v in counts.items()} == {
        "tp": 1, "ignored": 0, "cls": 1, "loc": 1, "both": 0, "dupe": 1, "bkg": 1, "missed": 2,
    }  # fmt: skip
    assert counts["cls"]["per_class"]["a"] == 1 and counts["missed"]["per_class"]["e"] == 1


def test_the_breakdown_matches_what_each_oracle_fix_should_give():
    breakdown = analyze_errors(*one_of_each(), CLASSES).breakdown()
    # AP: a 1.0, everything else 0 -> mean 0.2 over the five classes
    assert breakdown["ap"]["overall"] == pytest.approx(0.2)
    dap = {k: v["overall"] for k, v in breakdown["dap"].items()}
    # Cls: the detection becomes b's true positive (b: 0 -> 1); a loses a false positive at rank 2,
    # after its only true positive, so a's AP stays 1
    assert dap["cls"] == pytest.approx(0.2)
    assert breakdown["dap"]["cls"]["per_class"] == pytest.approx({"a": 0, "b": 1, "c": 0, "d": 0, "e": 0})
    assert dap["loc"] == pytest.approx(0.2)  # c: 0 -> 1
    assert breakdown["dap"]["loc"]["per_class"]["c"] == pytest.approx(1.0)
    # the duplicate ranks after a's true positive and the background error has no positive to
    # push down: removing them changes nothing
    assert dap["dupe"] == pytest.approx(0.0) and dap["bkg"] == pytest.approx(0.0)
    assert dap["both"] == 0.0
    # removing d's and e's boxes leaves e with neither boxes nor detections: the mean is over 4
    assert dap["missed"] == pytest.approx(0.25 - 0.2)
    # the same numbers as tidecv 1.0.1 prints on this case (Cls 20, Loc 20, Miss 5, FalseNeg 13.33)
    assert breakdown["special"]["false_negatives"]["overall"] == pytest.approx(0.2 / 1.5)
    assert breakdown["special"]["false_positives"]["overall"] == pytest.approx(0.0)
    assert breakdown["ap_all_fixed"]["overall"] == pytest.approx(1.0)
    json.dumps(breakdown)  # plain Python numbers all the way down


def test_fixing_every_error_gives_ap_one_and_the_breakdown_is_json():
    analysis = analyze_errors(*one_of_each(), CLASSES)
    assert analysis.ap_after_fixing(["cls", "loc", "both", "dupe", "bkg", "missed"])[0] == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="unknown error type"):
        analysis.ap_after_fixing(["typo"])
    out = json.loads(json.dumps(analysis.to_json()))
    assert set(out) == {"breakdown", "pr_curves"}


def test_dupe_ranked_above_a_positive_costs_ap():
    """A duplicate scored above another class-a true positive lowers a's AP; fixing Dupe restores it."""
    gt = {"im": {"boxes": np.array([square(0), square(200)]), "labels": np.array([1, 1])}}
    det = {
        "im": {
            "boxes": np.array([square(0), square(2), square(200)]),
            "labels": np.array([1, 1, 1]),
            "scores": np.array([0.9, 0.8, 0.7]),
        }
    }
    analysis = analyze_errors(gt, det, ("a",))
    assert [KINDS[k] for k in analysis.det_kind] == ["tp", "dupe", "tp"]
    breakdown = analysis.breakdown()
    # precision 1, 1/2, 2/3 at recall .5, .5, 1: area AP = .5 * 1 + .5 * 2/3
    assert breakdown["ap"]["overall"] == pytest.approx(0.5 + 1 / 3)
    assert breakdown["dap"]["dupe"]["overall"] == pytest.approx(1 - 0.5 - 1 / 3)
    assert breakdown["dap"]["bkg"]["overall"] == 0.0


def test_both_and_tide_tie_rules():
    """Wrong class at IoU 0.25 is Both; of two Loc errors on one free box only the higher scored is fixed."""
    gt = {"im": {"boxes": np.array([square(0), square(200)]), "labels": np.array([1, 2])}}
    det = {
        "im": {
            "boxes": np.array([square(30), square(20), square(230)]),
            "labels": np.array([1, 1, 1]),  # two Loc errors on a's box, a wrong-class poor box on b's
            "scores": np.array([0.9, 0.8, 0.7]),
        }
    }
    analysis = analyze_errors(gt, det, ("a", "b"))
    assert [KINDS[k] for k in analysis.det_kind] == ["loc", "loc", "both"]
    assert analysis.gt_missed.tolist() == [False, True]  # a's box can be fixed; b's is only touched by Both
    ap, per_class = analysis.ap_after_fixing(["loc"])
    # the 0.9 detection becomes a's true positive, the 0.8 one is removed, the Both error stays
    assert per_class["a"] == pytest.approx(1.0)
    assert ap == pytest.approx(0.5)


def test_iou_exactly_at_the_threshold_is_a_localisation_error():
    """The devkit needs IoU > 0.5; exactly 0.5 is a false positive, and TIDE's Loc covers it."""
    gt = {"im": {"boxes": np.array([[0.0, 0.0, 99.0, 99.0]]), "labels": np.array([1])}}
    det = {
        "im": {
            "boxes": np.array([[0.0, 0.0, 49.0, 99.0]]),
            "labels": np.array([1]),
            "scores": np.array([1.0]),
        }
    }
    analysis = analyze_errors(gt, det, ("a",))
    assert KINDS[analysis.det_kind[0]] == "loc" and analysis.det_iou[0] == 0.5


def test_difficult_boxes_are_ignored_not_missed():
    gt = {
        "im": {
            "boxes": np.array([square(0), square(200)]),
            "labels": np.array([1, 1]),
            "difficult": np.array([True, False]),
        }
    }
    det = {"im": {"boxes": np.array([square(1)]), "labels": np.array([1]), "scores": np.array([0.9])}}
    analysis = analyze_errors(gt, det, ("a",))
    assert KINDS[analysis.det_kind[0]] == "ignored"
    assert analysis.gt_missed.tolist() == [False, True]
    assert analysis.ap_after_fixing()[0] == 0.0


def test_images_without_boxes_or_detections():
    gt = {"empty": {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, int)}, "im": one_of_each()[0]["im"]}
    det = {"empty": {"boxes": np.array([square(0)]), "labels": np.array([2]), "scores": np.array([0.95])}}
    analysis = analyze_errors(gt, det, CLASSES)
    assert [KINDS[k] for k in analysis.det_kind] == ["bkg"]
    assert analysis.gt_missed.all()
    assert analysis.top_errors() == [0]
    with pytest.raises(DataError, match="no ground truth entry"):
        analyze_errors(gt, {"elsewhere": det["empty"]}, CLASSES)
    with pytest.raises(ConfigError, match="IoU thresholds"):
        analyze_errors(gt, det, CLASSES, fg_iou=0.5, bg_iou=0.6)


# --------------------------------------------------------------------------------------------
# Against the devkit metric, on random cases
# --------------------------------------------------------------------------------------------

coord = st.integers(0, 12)
box = st.tuples(coord, coord, st.integers(0, 8), st.integers(0, 8)).map(
    lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3])
)
image = st.tuples(
    st.lists(st.tuples(box, st.integers(1, 2), st.booleans()), max_size=4),
    st.lists(st.tuples(box, st.integers(1, 2), st.sampled_from([0.2, 0.5, 0.8])), max_size=6),
)


def build(images):
    gt, det = {}, {}
    for i, (objects, dets) in enumerate(images):
        gt[i] = {
            "boxes": np.array([o[0] for o in objects], float).reshape(-1, 4),
            "labels": np.array([o[1] for o in objects], int),
            "difficult": np.array([o[2] for o in objects], bool),
        }
        det[i] = {
            "boxes": np.array([d[0] for d in dets], float).reshape(-1, 4),
            "labels": np.array([d[1] for d in dets], int),
            "scores": np.array([d[2] for d in dets], float),
        }
    return gt, det


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(image, min_size=1, max_size=4))
def test_true_positives_ap_and_pr_curves_are_the_devkits(images):
    gt, det = build(images)
    with warnings.catch_warnings():  # the devkit's "class without positives" warning
        warnings.simplefilter("ignore", EvaluationWarning)
        reference = evaluate_voc(gt, det, ("x", "y"), metric="voc")
    analysis = analyze_errors(gt, det, ("x", "y"))
    for name, ap in analysis.ap_after_fixing()[1].items():
        assert ap == pytest.approx(reference.ap[name], abs=1e-12)
    for name, curve in analysis.pr_curves().items():
        # the devkit repeats a point for detections on difficult boxes; the kept points lie on its curve
        points = set(zip(reference.recall[name].round(12), reference.precision[name].round(12)))
        assert set(zip(np.round(curve["recall"], 12), np.round(curve["precision"], 12))) <= points
        assert curve["ap"] == pytest.approx(reference.ap[name], abs=1e-12)
    # every fix can only help, and fixing all of them leaves nothing to lose
    breakdown = analysis.breakdown()
    assert all(v["overall"] >= -1e-12 for v in breakdown["dap"].values())
    if (analysis.det_kind == KINDS.index("tp")).any() or analysis._fixer.any():  # something is left
        assert breakdown["ap_all_fixed"]["overall"] == pytest.approx(1.0)
    assert analysis.gt_missed.sum() <= (~analysis.gt_difficult).sum()


# --------------------------------------------------------------------------------------------
# Confusion matrix, and the errors one detector makes and another does not
# --------------------------------------------------------------------------------------------


def test_confusion_matrix_rows_are_ground_truth_columns_detections():
    gt, det = one_of_each()
    out = confusion_matrix(gt, det, CLASSES, score_threshold=0.55)
    assert out["labels"] == [*CLASSES, "background"]
    m = np.array(out["matrix"])
    assert m.shape == (6, 6)
    expected = np.zeros((6, 6), int)
    expected[0, 0] = 1  # a found
    expected[1, 0] = 1  # b's box detected as a
    expected[5, 2] = 1  # c's shifted box overlaps too little: a false positive on background
    expected[5, 0] = 1  # the duplicate on a's box
    expected[2, 5] = expected[3, 5] = expected[4, 5] = 1  # c, d, e missed (d's detection is below 0.55)
    np.testing.assert_array_equal(m, expected)
    # a detection on a difficult box counts nowhere, the difficult box is never missed
    gt["im"]["difficult"] = np.array([False, True, False, False, False])
    m = np.array(confusion_matrix(gt, det, CLASSES, score_threshold=0.55)["matrix"])
    assert m[1].sum() == 0 and m[:, 0].sum() == 2


def test_errors_not_made_by_the_other_detector():
    gt, det_a = one_of_each()
    det_b = {
        "im": {  # b's detector also makes the Loc error on c, finds b, and nothing else
            "boxes": np.array([square(235), square(100)]),
            "labels": np.array([3, 2]),
            "scores": np.array([0.4, 0.9]),
        }
    }
    a = analyze_errors(gt, det_a, CLASSES)
    b = analyze_errors(gt, det_b, CLASSES)
    only_a = errors_not_made_by(a, b)
    assert [e["kind"] for e in only_a] == ["cls", "dupe", "bkg"]  # by score; the shared Loc is left out
    assert only_a[0]["class"] == "a" and only_a[0]["gt_class"] == "b" and only_a[0]["score"] == 0.8
    assert [e["kind"] for e in errors_not_made_by(a, b, min_score=0.5)] == ["cls", "loc", "dupe", "bkg"]
    assert len(errors_not_made_by(a, b, count=2)) == 2
    assert errors_not_made_by(b, a) == []  # b's only error, the Loc on c, a makes too
    other = analyze_errors({"x": gt["im"]}, {"x": det_b["im"]}, CLASSES)
    with pytest.raises(DataError, match="same images"):
        errors_not_made_by(a, other)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(image, min_size=1, max_size=4))
def test_confusion_matrix_threshold_equals_dropping_the_detections_below_it(images):
    gt, det = build(images)
    kept = {k: {key: v[key][v["scores"] >= 0.5] for key in v} for k, v in det.items()}
    thresholded = confusion_matrix(gt, det, ("x", "y"), score_threshold=0.5)["matrix"]
    assert thresholded == confusion_matrix(gt, kept, ("x", "y"), score_threshold=0.0)["matrix"]
    m = np.array(thresholded)
    # each non-difficult box is in one cell of its row; each kept detection in at most one cell of its column
    counted = sum((~v["difficult"]).sum() for v in gt.values())
    assert m[:2].sum() == counted
    assert m[:, :2].sum() <= sum(len(v["scores"]) for v in kept.values())
