"""Part reliance on a hand-made object whose detector relies on known parts with known weights."""

from __future__ import annotations

import numpy as np
import pytest

from iadet.data.synth.scene import SceneObject
from iadet.robustness.part_reliance import ObjectReliance, image_reliance, summarize

COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
WEIGHTS = [0.5, 0.2, 0.1, 0.1]  # the detector's reliance on each part, in slot order


def _object() -> tuple[np.ndarray, SceneObject]:
    image = np.full((40, 40, 3), 30, np.uint8)
    body = np.zeros((40, 40), bool)
    body[5:35, 5:35] = True
    image[body] = (100, 100, 100)
    parts = []
    for slot, color in enumerate(COLORS):
        row, col = divmod(slot, 2)
        mask = np.zeros((40, 40), bool)
        mask[8 + 14 * row : 18 + 14 * row, 8 + 14 * col : 18 + 14 * col] = True
        image[mask] = color
        parts.append(mask)
    return image, SceneObject(0, body, body.copy(), False, tuple(parts), image.copy())


def _probabilities(images, boxes, labels):
    """p = 0.1 + sum of the weights of the part colours still present."""
    out = []
    for image, b in zip(images, boxes):
        present = [float((image == c).all(axis=2).any()) for c in COLORS]
        out.append(np.full(len(b), 0.1 + float(np.dot(WEIGHTS, present))))
    return out


def test_drops_are_the_weights_of_the_hidden_parts():
    image, obj = _object()
    rows = image_reliance(image, [obj], [True], [3], np.array([[5.0, 5, 34, 34]]), _probabilities, "x")
    (row,) = rows
    assert row.probability == pytest.approx(1.0)
    assert row.drops == pytest.approx(WEIGHTS)
    assert row.top == pytest.approx(0.5) and row.others == pytest.approx(0.4 / 3)
    assert row.top_share == pytest.approx(0.5 / 0.9)
    assert (image == COLORS[0]).all(axis=2).any()  # the input image is left as it was


def test_objects_with_a_hidden_part_or_difficult_are_not_measured():
    image, obj = _object()
    obj.visible[8:18, 8:18] = False  # part 0 hidden by something in front
    assert image_reliance(image, [obj], [True], [3], np.array([[5.0, 5, 34, 34]]), _probabilities) == []
    image, obj = _object()
    assert image_reliance(image, [obj], [False], [3], np.array([[5.0, 5, 34, 34]]), _probabilities) == []


def test_summary_of_a_spread_and_a_concentrated_detector():
    spread = [ObjectReliance("a", 1, 0.9, [0.2, 0.2, 0.2, 0.2]) for _ in range(10)]
    concentrated = [ObjectReliance("a", 1, 0.9, [0.6, 0.0, 0.1, -0.1]) for _ in range(10)]
    s, c = summarize(spread), summarize(concentrated)
    assert s["top_share"]["mean"] == pytest.approx(0.25) and c["top_share"]["mean"] == pytest.approx(6 / 7)
    assert s["top_over_others"] == pytest.approx(1.0) and c["top_drop"]["mean"] == pytest.approx(0.6)
    assert c["drop_per_slot"] == pytest.approx([0.6, 0.0, 0.1, -0.1])
    assert summarize([]) == {"objects": 0}


def test_the_plot_is_written(tmp_path):
    from iadet.robustness.plots import plot_part_reliance

    rows = [
        ObjectReliance("a", 1, 0.9, [0.6, 0.0, 0.1, -0.1]),
        ObjectReliance("b", 1, 0.8, [0.2, 0.3, 0.1, 0.0]),
    ]
    path = plot_part_reliance({"none": summarize(rows), "ia": summarize(rows[::-1])}, tmp_path / "p.png")
    assert path.stat().st_size > 1000


def test_the_table_plot_and_json_are_written(tmp_path):
    from iadet.robustness.part_reliance import write_part_reliance

    rows = [ObjectReliance("a", 1, 0.9, [0.6, 0.0, 0.1, -0.1])]
    data = write_part_reliance({"none": (rows, summarize(rows)), "ia": ([], summarize([]))}, tmp_path, "test")
    assert data["detectors"]["none"]["objects"][0]["drops"] == [0.6, 0.0, 0.1, -0.1]
    table = (tmp_path / "part_reliance.md").read_text()
    assert "| none | 1 |" in table and "| ia | 0 |" in table
    assert (tmp_path / "part_reliance.png").is_file() and (tmp_path / "part_reliance.json").is_file()
