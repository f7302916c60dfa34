"""Server result files: exact layout and format, and round trips through the evaluators."""

from __future__ import annotations

import json

import numpy as np
import pytest

from iadet.errors import DataError
from iadet.evaluation.coco import evaluate_coco
from iadet.evaluation.results import to_coco_detections, write_coco_results, write_voc_results
from iadet.evaluation.voc import evaluate_voc

CLASSES = ("dog", "cat")


def test_voc_results_layout_and_lines(tmp_path):
    predictions = {
        "000001": {
            "boxes": np.array([[0.0, 1.5, 9.0, 19.25]]),
            "labels": np.array([2]),
            "scores": np.array([0.5]),
        },
        "000002": {
            "boxes": np.array([[4, 4, 8, 8], [1, 2, 3, 4]], np.float32),
            "labels": np.array([2, 1]),
            "scores": np.array([0.1234567, 1.0]),
        },
    }
    paths = write_voc_results(predictions, CLASSES, tmp_path)
    main = tmp_path / "results" / "VOC2012" / "Main"
    assert paths == {"dog": main / "comp4_det_test_dog.txt", "cat": main / "comp4_det_test_cat.txt"}
    # 1-based boxes (+1) with 1 decimal, scores with 6; images in mapping order.
    assert paths["cat"].read_text() == "000001 0.500000 1.0 2.5 10.0 20.2\n000002 0.123457 5.0 5.0 9.0 9.0\n"
    assert paths["dog"].read_text() == "000002 1.000000 2.0 3.0 4.0 5.0\n"


def test_every_class_gets_a_file(tmp_path):
    paths = write_voc_results({}, ("a", "b", "c"), tmp_path, year="2007", split="val", competition="comp3")
    assert [p.name for p in paths.values()] == [
        "comp3_det_val_a.txt",
        "comp3_det_val_b.txt",
        "comp3_det_val_c.txt",
    ]
    assert all(
        p.parent == tmp_path / "results" / "VOC2007" / "Main" and p.read_text() == "" for p in paths.values()
    )


def test_write_voc_results_rejects_unknown_labels(tmp_path):
    with pytest.raises(DataError, match="image 'a': predictions label 3 is outside 1..2"):
        write_voc_results({"a": {"boxes": [[0, 0, 1, 1]], "labels": [3], "scores": [1]}}, CLASSES, tmp_path)


def random_case(seed: int, num_images: int = 12):
    """Boxes on a half-pixel grid and scores with 3 decimals: both survive the text format."""
    rng = np.random.default_rng(seed)
    ground_truth, predictions = {}, {}
    for i in range(num_images):
        k = int(rng.integers(0, 4))
        xy = rng.integers(0, 60, size=(k, 2))
        boxes = np.concatenate([xy, xy + rng.integers(4, 30, size=(k, 2))], axis=1).astype(float)
        labels = rng.integers(1, 3, size=k)
        ground_truth[f"{i:04d}"] = {"boxes": boxes, "labels": labels, "difficult": rng.random(k) < 0.2}
        n = int(rng.integers(0, 8))
        src = rng.integers(0, max(k, 1), size=n)
        jitter = rng.integers(-4, 5, size=(n, 4)) / 2
        dets = boxes[src] + jitter if k else rng.integers(0, 60, size=(n, 4)).astype(float)
        dets[:, 2:] = np.maximum(dets[:, 2:], dets[:, :2])
        predictions[f"{i:04d}"] = {
            "boxes": dets,
            "labels": np.where(rng.random(n) < 0.8, labels[src] if k else 1, 3 - (labels[src] if k else 1)),
            "scores": rng.integers(0, 1000, size=n) / 1000,  # ties on purpose
        }
    return ground_truth, predictions


def write_annotations(root, ground_truth):
    (root / "Annotations").mkdir(parents=True)
    for image_id, target in ground_truth.items():
        objects = "".join(
            f"<object><name>{CLASSES[label - 1]}</name><difficult>{int(d)}</difficult><bndbox>"
            f"<xmin>{b[0] + 1:g}</xmin><ymin>{b[1] + 1:g}</ymin><xmax>{b[2] + 1:g}</xmax><ymax>{b[3] + 1:g}</ymax>"
            "</bndbox></object>"
            for b, label, d in zip(target["boxes"], target["labels"], target["difficult"])
        )
        (root / "Annotations" / f"{image_id}.xml").write_text(f"<annotation>{objects}</annotation>")
    (root / "test.txt").write_text("\n".join(ground_truth) + "\n")


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("metric", ["voc07", "voc"])
@pytest.mark.filterwarnings("ignore::iadet.evaluation.voc.EvaluationWarning")
def test_voc_round_trip_through_files_and_voc_eval(tmp_path, run_voc_eval, seed, metric):
    ground_truth, predictions = random_case(seed)
    write_annotations(tmp_path, ground_truth)
    paths = write_voc_results(predictions, CLASSES, tmp_path / "out")
    pattern = str(paths["dog"]).replace("dog", "{}")
    code, _, _, payload = run_voc_eval(
        tmp_path, "--classes", "dog,cat", "--metric", metric, detections=pattern
    )
    assert code == 0
    in_memory = evaluate_voc(ground_truth, predictions, CLASSES, metric=metric)
    assert payload == in_memory.to_json()  # identical, ties included
    assert any(0 < ap < 1 for ap in payload["ap"].values())


def test_coco_detections_box_modes():
    predictions = {"7": {"boxes": [[10.0, 20.0, 19.0, 39.0]], "labels": [2], "scores": [0.25]}}
    inclusive = to_coco_detections(predictions, [5, 9], box_mode="inclusive")
    assert inclusive == [{"image_id": 7, "category_id": 9, "bbox": [10.0, 20.0, 10.0, 20.0], "score": 0.25}]
    continuous = to_coco_detections(predictions, {2: 18})  # the default: continuous corners
    assert continuous[0]["bbox"] == [10.0, 20.0, 9.0, 19.0] and continuous[0]["category_id"] == 18
    renamed = to_coco_detections(predictions, [5, 9], image_ids={"7": 139})
    assert renamed[0]["image_id"] == 139


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"label_to_category": [5]}, "label 2 has no COCO category"),
        ({"label_to_category": [5, 9], "box_mode": "xywh"}, "unknown box mode"),
        ({"label_to_category": [5, 9], "image_ids": {}}, "image '7'"),
    ],
)
def test_coco_detections_errors(kwargs, message):
    predictions = {"7": {"boxes": [[10.0, 20.0, 19.0, 39.0]], "labels": [2], "scores": [0.25]}}
    with pytest.raises(DataError, match=message):
        to_coco_detections(predictions, **kwargs)


def test_coco_ids_must_be_integers_without_a_mapping():
    with pytest.raises(DataError, match="COCO image ids are integers"):
        to_coco_detections({"abc": {"boxes": [], "labels": [], "scores": []}}, [1])


def test_coco_round_trip_through_json(tmp_path):
    ground_truth, predictions = random_case(0)
    result = evaluate_coco(ground_truth, predictions, classes=CLASSES)
    # The same detections as a test-dev file, against the same ground truth as a COCO dict.
    from iadet.evaluation.coco import voc_to_coco

    dataset, image_ids = voc_to_coco(ground_truth, CLASSES)
    path = write_coco_results(
        predictions, [1, 2], tmp_path / "dets.json", box_mode="inclusive", image_ids=image_ids
    )
    entries = json.loads(path.read_text())
    assert len(entries) == sum(len(p["scores"]) for p in predictions.values())
    assert set(entries[0]) == {"image_id", "category_id", "bbox", "score"}
    from_file = evaluate_coco(dataset, entries)
    assert from_file.stats == result.stats and from_file.ap == result.ap
    assert 0 < result.stats["AP50"] < 1
