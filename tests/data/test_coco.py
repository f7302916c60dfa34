import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iadet.data.catalog import detect_format, open_split
from iadet.errors import DataError


def make_coco(root: Path, data: dict | None = None) -> Path:
    (root / "annotations").mkdir(parents=True)
    (root / "val").mkdir()
    for name in ("a.jpg", "b.jpg"):
        Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(root / "val" / name)
    data = data or {
        "images": [
            {"id": 7, "file_name": "a.jpg", "width": 50, "height": 40},
            {"id": 9, "file_name": "b.jpg", "width": 50, "height": 40},
        ],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 3, "bbox": [1, 2, 10, 20], "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 5, "bbox": [5, 5, 10, 10], "iscrowd": 1},
        ],
        "categories": [{"id": 5, "name": "dog"}, {"id": 3, "name": "cat"}],
    }
    (root / "annotations" / "instances_val.json").write_text(json.dumps(data))
    return root


def test_coco_loads_with_crowd_as_difficult_and_sorted_categories(tmp_path: Path):
    root = make_coco(tmp_path / "coco")
    assert detect_format(root) == "coco"
    ds = open_split(root, "val")
    assert ds.classes == ("cat", "dog")  # category id order
    record = next(r for r in ds.records if r.image_id == "7")
    np.testing.assert_allclose(record.boxes, [[1, 2, 11, 22], [5, 5, 15, 15]])
    np.testing.assert_array_equal(record.labels, [1, 2])
    np.testing.assert_array_equal(record.difficult, [False, True])
    assert any(r.image_id == "9" and len(r.labels) == 0 for r in ds.records)  # no objects is fine


def test_coco_missing_keys_and_unknown_category(tmp_path: Path):
    root = make_coco(tmp_path / "c1", {"images": [], "annotations": []})
    with pytest.raises(DataError, match="instances_val.json: missing key 'categories'"):
        open_split(root, "val")
    bad = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 50, "height": 40}],
        "annotations": [{"id": 4, "image_id": 1, "category_id": 99, "bbox": [0, 0, 3, 3]}],
        "categories": [{"id": 1, "name": "cat"}],
    }
    root = make_coco(tmp_path / "c2", bad)
    with pytest.raises(DataError, match="annotation 4 has category id 99 that does not exist"):
        open_split(root, "val")


def test_coco_file_names_cannot_escape(tmp_path: Path):
    bad = {
        "images": [{"id": 1, "file_name": "../../etc/passwd", "width": 50, "height": 40}],
        "annotations": [],
        "categories": [{"id": 1, "name": "cat"}],
    }
    root = make_coco(tmp_path / "c3", bad)
    with pytest.raises(DataError, match=r"file_name '../../etc/passwd' is not a plain file name \(refused\)"):
        open_split(root, "val")


def test_coco_broken_json(tmp_path: Path):
    root = make_coco(tmp_path / "c4")
    (root / "annotations" / "instances_val.json").write_text('{"images": [')
    with pytest.raises(DataError, match=r"invalid JSON \(line 1"):
        open_split(root, "val")
