"""Proposal files (our pickle/npz, Detectron's pickle, Fast R-CNN's .mat), their safety, and selective search."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from iadet.cli import main
from iadet.data.images import load_image
from iadet.data.proposals import Proposals, load_proposals, save_proposals, selective_search
from iadet.data.records import ImageRecord
from iadet.data.voc import open_voc
from iadet.errors import DataError

BOXES = {
    "000001": np.array([[1, 2, 30, 40], [5, 5, 10, 10]], np.float32),
    "000002": np.zeros((0, 4), np.float32),
}


def record(image_id: str = "a", width: int = 50, height: int = 40) -> ImageRecord:
    empty = np.zeros((0,), np.int64)
    return ImageRecord(
        image_id, Path("x.jpg"), width, height, np.zeros((0, 4), np.float32), empty, empty.astype(bool)
    )


@pytest.mark.parametrize("suffix", [".npz", ".pkl"])
def test_round_trip(tmp_path: Path, suffix: str):
    path = save_proposals(BOXES, tmp_path / f"p{suffix}")
    loaded = load_proposals(path)
    assert len(loaded) == 2
    for key, boxes in BOXES.items():
        np.testing.assert_array_equal(loaded[key], boxes)
        assert loaded[key].dtype == np.float32


def test_integer_ids_and_python2_pickles(tmp_path: Path):
    path = tmp_path / "coco.pkl"
    path.write_bytes(pickle.dumps({139: np.array([[0.0, 0, 5, 5]])}, protocol=2))
    assert "139" in load_proposals(path) and 139 in load_proposals(path)


def test_detectron_pickle_is_sorted_by_score(tmp_path: Path):
    data = {
        "ids": [139, 285],
        "boxes": [
            np.array([[0, 0, 5, 5], [1, 1, 9, 9], [2, 2, 4, 4]], np.float32),
            np.zeros((0, 4), np.float32),
        ],
        "scores": [np.array([0.1, 0.9, 0.5], np.float32), np.zeros((0,), np.float32)],
        "cfg": "ignored",
    }
    path = tmp_path / "rpn.pkl"
    path.write_bytes(pickle.dumps(data))
    loaded = load_proposals(path)
    np.testing.assert_array_equal(loaded["139"], [[1, 1, 9, 9], [2, 2, 4, 4], [0, 0, 5, 5]])
    assert loaded["285"].shape == (0, 4)


def test_fast_rcnn_mat_files_are_converted(tmp_path: Path):
    """Fast R-CNN's selective_search_data: 1-based (y1, x1, y2, x2) -> 0-based (x1, y1, x2, y2)."""
    images = np.empty((2, 1), dtype=object)
    images[0, 0], images[1, 0] = "000005", "000007"
    boxes = np.empty((1, 2), dtype=object)
    boxes[0, 0] = np.array([[11, 21, 31, 41]], np.float64)
    boxes[0, 1] = np.array([[1, 1, 5, 8], [2, 3, 4, 6]], np.float64)
    savemat(tmp_path / "voc_2007_test.mat", {"images": images, "boxes": boxes})
    loaded = load_proposals(tmp_path / "voc_2007_test.mat")
    np.testing.assert_array_equal(loaded["000005"], [[20, 10, 40, 30]])
    np.testing.assert_array_equal(loaded["000007"], [[0, 0, 7, 4], [2, 1, 5, 3]])


def test_a_pickle_cannot_run_code(tmp_path: Path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"000001": Evil()}))
    with pytest.raises(DataError, match="refusing to unpickle"):
        load_proposals(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "write,message",
    [
        (
            lambda p: p.write_bytes(pickle.dumps({"000009": np.zeros((3, 5))})),
            r"image '000009' must be a \(K, 4\)",
        ),
        (lambda p: p.write_bytes(pickle.dumps([1, 2])), "expected a dict"),
        (lambda p: p.write_bytes(b"not a pickle"), "pickle"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, write, message: str):
    path = tmp_path / "bad.pkl"
    write(path)
    with pytest.raises(DataError, match=message):
        load_proposals(path)


def test_unknown_suffix_and_missing_file(tmp_path: Path):
    with pytest.raises(DataError, match="not found"):
        load_proposals(tmp_path / "nope.npz")
    (tmp_path / "p.json").write_text("{}")
    with pytest.raises(DataError, match="unknown proposal file type '.json'"):
        load_proposals(tmp_path / "p.json")


def test_for_record_clips_fixes_and_dedupes():
    boxes = np.array(
        [
            [-5, -5, 60, 10],  # clipped to the 50 x 40 image
            [10, 10, 10, 10],  # one pixel: given width and height 1
            [10, 10, 10, 10],  # duplicate
            [30, 30, 20, 35],  # x2 < x1: dropped
            [1, 2, np.nan, 4],  # not finite: dropped
            [3, 3, 8, 8],
        ],
        np.float32,
    )
    out = Proposals({"a": boxes}).for_record(record("a"))
    np.testing.assert_array_equal(out, [[0, 0, 49, 10], [10, 10, 11, 11], [3, 3, 8, 8]])


def test_check_names_the_first_missing_id_and_counts_the_rest():
    proposals = Proposals({"a": np.zeros((0, 4))}, source="p.npz")
    proposals.check([record("a")], "trainval")
    with pytest.raises(DataError, match=r"p.npz: no proposals for image 'b' of split test \(and 1 more"):
        proposals.check([record("a"), record("b"), record("c")], "test")
    with pytest.raises(DataError, match="no proposals for image 'zz'"):
        proposals["zz"]


def test_selective_search_boxes_are_valid_and_deterministic(voc_root: Path):
    path = open_voc(voc_root, "trainval").records[0].path
    image = np.asarray(load_image(path))
    h, w = image.shape[:2]
    first = selective_search(image, max_proposals=30)
    other = selective_search(image[::-1].copy())  # advances OpenCV's random state
    again = selective_search(image, max_proposals=30)
    np.testing.assert_array_equal(first, again)
    assert first.dtype == np.float32 and first.shape[1] == 4 and 5 <= len(first) <= 30
    assert (first[:, 0] >= 0).all() and (first[:, 2] <= w - 1).all() and (first[:, 3] <= h - 1).all()
    assert (first[:, 2] - first[:, 0] >= 1).all() and (first[:, 3] - first[:, 1] >= 1).all()
    assert len(np.unique(first, axis=0)) == len(first)
    assert len(other) > 0


def test_proposals_command(voc_root: Path, tmp_path: Path, capsys):
    """Three tiny images, fast mode: every id covered, the same file from 1 and 2 worker processes."""
    root = voc_root
    ids = open_voc(root, "test").records[:3]
    (root / "ImageSets" / "Main" / "three.txt").write_text("\n".join(r.image_id for r in ids) + "\n")
    one, two = tmp_path / "one.npz", tmp_path / "two.pkl"
    base = ["proposals", "--method", "selective-search", "--data", str(root), "--split", "three"]
    assert main([*base, "--output", str(one)]) == 0
    assert main([*base, "--output", str(two), "--workers", "2", "--max-proposals", "1000"]) == 0
    assert "wrote selective-search proposals for 3 images" in capsys.readouterr().out
    a, b = load_proposals(one), load_proposals(two)
    assert sorted(a.boxes) == sorted(b.boxes) == sorted(r.image_id for r in ids)
    for r in ids:
        # the same boxes; their order follows C's rand(), which srand seeds per image but which another
        # thread of a long-lived process (the test runner's) may also draw from (selective_search's docstring)
        np.testing.assert_array_equal(np.unique(a[r.image_id], axis=0), np.unique(b[r.image_id], axis=0))
        assert len(a[r.image_id]) > 0
    assert main([*base, "--output", str(tmp_path / "p.txt")]) == 2
