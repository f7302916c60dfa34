"""iadet's vectorised evaluation against the benchmark's plain port of the devkit loop, on random cases.

Boxes live on a coarse integer grid so that equal IoUs, IoUs exactly at the threshold, duplicate
boxes and duplicate detections are common; scores come from a handful of values so ties are too.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iadet.evaluation.voc import EvaluationWarning, evaluate_voc

CLASSES = ("x", "y")

coord = st.integers(1, 12)
box = st.tuples(coord, coord, st.integers(0, 8), st.integers(0, 8)).map(
    lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3])
)
obj = st.tuples(box, st.integers(1, len(CLASSES)), st.booleans())
image = st.tuples(
    st.lists(obj, max_size=5),  # ground truth
    st.lists(
        st.tuples(box, st.integers(1, len(CLASSES)), st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9])), max_size=8
    ),
)
dataset = st.lists(image, min_size=1, max_size=5)


def build(images, copy_gt_every=0):
    """In-memory 0-based data plus the devkit's structures (1-based) for the reference."""
    ground_truth, predictions, recs = {}, {}, {}
    per_class = {name: ([], [], []) for name in CLASSES}
    for i, (objects, dets) in enumerate(images):
        image_id = f"im{i}"
        boxes = np.array([o[0] for o in objects], float).reshape(-1, 4)
        ground_truth[image_id] = {
            "boxes": boxes - 1.0,
            "labels": np.array([o[1] for o in objects], np.int64),
            "difficult": np.array([o[2] for o in objects], bool),
        }
        recs[image_id] = [{"name": CLASSES[o[1] - 1], "difficult": o[2], "bbox": list(o[0])} for o in objects]
        # Some detections copy a ground-truth box exactly, so that true positives are common.
        dets = list(dets) + [
            (o[0], o[1], 0.5) for k, o in enumerate(objects) if copy_gt_every and k % copy_gt_every == 0
        ]
        det_boxes = np.array([d[0] for d in dets], float).reshape(-1, 4)
        predictions[image_id] = {
            "boxes": det_boxes - 1.0,
            "labels": np.array([d[1] for d in dets], np.int64),
            "scores": np.array([d[2] for d in dets], float),
        }
        for d in dets:
            ids, scores, bbs = per_class[CLASSES[d[1] - 1]]
            ids.append(image_id)
            scores.append(d[2])
            bbs.append(d[0])
    return ground_truth, predictions, recs, per_class


def check_against_reference(reference, images, metric, copy_gt_every, sort_kind="stable"):
    ground_truth, predictions, recs, per_class = build(images, copy_gt_every)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EvaluationWarning)
        result = evaluate_voc(ground_truth, predictions, CLASSES, metric=metric)
    for name in CLASSES:
        ids, scores, bbs = per_class[name]
        ap, npos, tp, fp = reference.reference_voc_eval(
            recs, list(recs), name, ids, np.array(scores), np.array(bbs, float).reshape(-1, 4),
            use_07_metric=metric == "voc07", sort_kind=sort_kind,
        )  # fmt: skip
        assert result.ap[name] == ap  # exactly, not approximately
        assert result.npos[name] == npos
        assert result.precision[name].tolist() == (tp / np.maximum(tp + fp, np.finfo(float).eps)).tolist()
        if npos:
            assert result.recall[name].tolist() == (tp / npos).tolist()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(images=dataset, metric=st.sampled_from(["voc07", "voc"]), copy_gt_every=st.integers(0, 2))
def test_equal_to_the_devkit_loop_with_ties(reference, images, metric, copy_gt_every):
    check_against_reference(reference, images, metric, copy_gt_every)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(images=dataset, metric=st.sampled_from(["voc07", "voc"]), seed=st.integers(0, 2**32 - 1))
def test_equal_to_py_faster_rcnn_sort_when_scores_differ(reference, images, metric, seed):
    # With distinct scores the devkit's unstable quicksort gives the one possible order.
    rng = np.random.default_rng(seed)
    images = [(objects, dets + [(o[0], o[1], 0.0) for o in objects]) for objects, dets in images]
    images = [(objects, [(d[0], d[1], float(rng.random())) for d in dets]) for objects, dets in images]
    check_against_reference(reference, images, metric, copy_gt_every=0, sort_kind="quicksort")


@pytest.mark.parametrize("seed", range(3))
def test_equal_on_a_larger_synthetic_set(reference, seed):
    # The benchmark's generator: 200 images, 5 classes, 30 detections each, jittered boxes.
    classes = [f"c{c}" for c in range(1, 6)]
    ground_truth, predictions, recs, per_class = reference.synthetic_dataset(200, 5, 30, seed)
    for metric in ("voc07", "voc"):
        result = evaluate_voc(ground_truth, predictions, classes, metric=metric)
        for c, name in enumerate(classes):
            ap, npos, _, _ = reference.reference_voc_eval(
                recs, list(recs), name, *per_class[c], use_07_metric=metric == "voc07"
            )
            assert result.ap[name] == ap and result.npos[name] == npos
        assert 0.05 < result.map < 0.95  # a non-trivial case: neither all hits nor all misses
