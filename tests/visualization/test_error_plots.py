"""Tests of iadet.visualization.error_plots: each plot writes a PNG of figsize x dpi pixels, the sheet has its grid's size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iadet.evaluation.confusion import confusion_matrix
from iadet.evaluation.tide import analyze_errors, errors_not_made_by
from iadet.visualization import error_plots as plots
from iadet.visualization.heatmaps import Grid

CLASSES = ("a", "b", "c")


def square(x: float, y: float = 0.0, size: float = 40.0) -> list[float]:
    return [x, y, x + size - 1, y + size - 1]


@pytest.fixture(scope="module")
def data():
    gt = {
        "im0": {
            "boxes": np.array([square(10, 10), square(100, 10), square(10, 100)]),
            "labels": np.array([1, 2, 3]),
        },
        "im1": {"boxes": np.array([square(60, 60)]), "labels": np.array([1])},
    }
    det_a = {
        "im0": {
            "boxes": np.array([square(10, 10), square(100, 10), square(25, 100), square(150, 150)]),
            "labels": np.array([1, 1, 3, 2]),  # tp, cls, loc, bkg
            "scores": np.array([0.9, 0.8, 0.7, 0.6]),
        },
        "im1": {"boxes": np.array([square(62, 60), square(60, 60)]), "labels": [1, 1], "scores": [0.95, 0.5]},
    }
    det_b = {
        "im0": {"boxes": np.array([square(100, 10)]), "labels": np.array([2]), "scores": np.array([0.9])}
    }
    a = analyze_errors(gt, det_a, CLASSES)
    b = analyze_errors(gt, det_b, CLASSES)
    rng = np.random.default_rng(0)
    images = {k: (rng.random((200, 220, 3)) * 255).astype(np.uint8) for k in gt}
    return gt, det_a, a, b, images


def png_size(path: Path) -> tuple[int, int]:
    assert path.is_file() and path.stat().st_size > 1000
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_error_breakdown_bars_one_or_two_detectors(data, tmp_path: Path) -> None:
    _, _, a, b, _ = data
    assert png_size(plots.plot_error_breakdown(a.breakdown(), tmp_path / "one.png", title="A")) == (800, 360)
    two = {"A": a.breakdown(), "B": b.breakdown()}
    assert png_size(plots.plot_error_breakdown(two, tmp_path / "sub" / "two.png")) == (800, 360)


def test_pr_curves_one_panel_per_class(data, tmp_path: Path) -> None:
    _, _, a, b, _ = data
    # three classes in a row of three panels of 2.4 x 2.2 inches (+0.2 for the labels)
    assert png_size(plots.plot_pr_curves(a.pr_curves(), tmp_path / "pr.png")) == (720, 240)
    both = {"A": a.pr_curves(), "B": b.pr_curves()}
    assert png_size(plots.plot_pr_curves(both, tmp_path / "pr2.png", columns=2)) == (480, 460)


def test_confusion_matrix_heat_map(data, tmp_path: Path) -> None:
    gt, det_a, *_ = data
    confusion = confusion_matrix(gt, det_a, CLASSES, score_threshold=0.3)
    # 4 labels: 1.6 + 0.5 * 4 = 3.6 inches tall, 1.2 more for the colour bar
    assert png_size(plots.plot_confusion_matrix(confusion, tmp_path / "cm.png")) == (480, 360)


def test_contact_sheet_of_the_errors_one_detector_makes_and_the_other_does_not(data, tmp_path: Path) -> None:
    _, _, a, b, images = data
    only_a = errors_not_made_by(a, b)
    # by score: A's Cls on b's box (B finds it), its Loc on c's box, its Bkg, its duplicate on im1
    assert [e["kind"] for e in only_a] == ["cls", "loc", "bkg", "dupe"]
    loaded = []

    def load(image_id):
        loaded.append(image_id)
        return images[image_id]

    sheet = plots.error_sheet(only_a, load, columns=3, tile=64, title="A wrong, B right")
    assert sheet.size == Grid(2, 3, 64).size
    assert sorted(loaded) == ["im0", "im1"]  # each image read once
    # the Loc tile holds the red detection box and, beside it, the green ground-truth box
    x, y = Grid(2, 3, 64).origin(0, 1)
    tile = np.asarray(sheet)[y : y + 64, x : x + 64].reshape(-1, 3)
    assert ((tile == plots.DETECTION).all(axis=1)).any() and ((tile == plots.GROUND_TRUTH).all(axis=1)).any()
    assert plots.error_caption(only_a[0]) == "Cls a->b .80"
    assert plots.error_sheet([], load).size == Grid(1, 6, 128).size
