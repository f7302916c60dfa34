"""Tests of iadet.robustness.plots: each plot writes a PNG of figsize x dpi pixels from hand-made results."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from iadet.robustness import plots
from iadet.robustness.metrics import performance_under_corruption


def result(
    p: float, drop: float, names=("gaussian_noise", "fog", "pixelate", "spatter"), severities=(1, 2, 3, 4, 5)
):
    table = {n: {s: max(0.0, p - drop * s * (k + 1) / 4) for s in severities} for k, n in enumerate(names)}
    return {**performance_under_corruption(p, table, allow_partial=True), "metric": "voc07"}


def png_size(path: Path) -> tuple[int, int]:
    assert path.is_file() and path.stat().st_size > 1000
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_plot_severity_one_panel_per_group(tmp_path: Path) -> None:
    path = plots.plot_severity(result(0.8, 0.05), tmp_path / "a" / "severity.png", title="none")
    # noise, weather, digital and extra are present: four panels of 4 x 3.6 inches at 100 dpi
    assert png_size(path) == (1600, 360)
    path = plots.plot_severity(result(0.8, 0.05, names=("fog",)), tmp_path / "fog.png")
    assert png_size(path) == (400, 360)


def test_plot_severity_with_partial_severities_and_zero_p(tmp_path: Path) -> None:
    partial = result(0.0, 0.0, names=("fog", "snow"), severities=(2, 5))
    assert partial["rPC"] is None
    assert png_size(plots.plot_severity(partial, tmp_path / "p.png")) == (400, 360)


def test_plot_severity_comparison_grid(tmp_path: Path) -> None:
    results = {"none": result(0.8, 0.05), "ia": result(0.82, 0.03)}
    path = plots.plot_severity_comparison(results, tmp_path / "cmp.png", columns=4)
    # 4 corruptions + the mean = 5 panels -> 2 rows of 4 panels of 3.2 x 2.6 inches
    assert png_size(path) == (1280, 520)
    # a corruption only one of the detectors ran still gets its panel
    results["ia"] = result(0.82, 0.03, names=("fog",))
    assert png_size(plots.plot_severity_comparison(results, tmp_path / "cmp2.png", columns=5)) == (1600, 260)


def test_plot_corruption_summary_and_occlusion(tmp_path: Path) -> None:
    results = {"none": result(0.8, 0.05), "ia": result(0.82, 0.03), "asdn": result(0.81, 0.04)}
    assert png_size(plots.plot_corruption_summary(results, tmp_path / "summary.png")) == (700, 360)
    curves = {
        "none": {
            "fractions": [0, 0.2, 0.4],
            "mAP": [0.8, 0.6, 0.3],
            "coverage": [0.0, 0.19, 0.41],
            "metric": "voc07",
        },
        "ia": {"fractions": [0, 0.2, 0.4], "mAP": [0.82, 0.7, 0.45], "coverage": None, "metric": "voc07"},
    }
    assert png_size(plots.plot_occlusion(curves, tmp_path / "occ.png")) == (600, 400)


@pytest.mark.parametrize("metric", ["voc07", "voc", "coco", None])
def test_metric_labels(metric) -> None:
    label = plots._metric_label({"metric": metric})
    assert ("COCO" in label) == (metric == "coco") and label.endswith("(%)")


def test_mean_curve_skips_severities_not_run() -> None:
    r = {"P": 0.8, "corruptions": {"fog": {"1": 0.6, "5": 0.2}, "snow": {"1": 0.4, "3": 0.3}}}
    x, y = plots._mean_curve(r)
    assert x == [0, 1, 3, 5]
    assert y == pytest.approx([80.0, 50.0, 30.0, 20.0])
