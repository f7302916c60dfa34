"""report.md from a hand-made results.json: the per-class ΔAP against `none` (A-Fast-RCNN's Fig. 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from iadet.benchmark.report import per_class_delta_table, per_class_deltas, write_report
from iadet.benchmark.stats import summarize


def results(methods: dict[str, dict[str, list[float]]], splits=("test", "test_occluded")) -> dict:
    """``methods``: ``{method: {class: AP per seed}}``, the same on every split."""
    out = {"methods": {}, "seeds": [0, 1, 2], "splits": list(splits)}
    for m, per_class in methods.items():
        maps = [sum(v) / len(v) for v in zip(*per_class.values())]
        out["methods"][m] = {
            "splits": {s: summarize(maps).to_json() for s in splits},
            "per_class": {s: {c: summarize(v).to_json() for c, v in per_class.items()} for s in splits},
            "paired_vs_none": {},
        }
    return out


def test_per_class_deltas_are_paired_by_seed_and_drawn(tmp_path: Path) -> None:
    data = results(
        {
            "none": {"cat": [0.5, 0.6, 0.7], "dog": [0.4, 0.4, 0.4]},
            "ia": {"cat": [0.6, 0.7, 0.8], "dog": [0.3, 0.5, 0.4]},
            "asdn": {"cat": [0.5, 0.6, 0.7], "dog": [0.4, 0.5, 0.6]},
        }
    )
    deltas = per_class_deltas(data, "test")
    assert list(deltas) == ["ia", "asdn"]
    assert deltas["ia"]["cat"]["mean"] == pytest.approx(0.1) and deltas["ia"]["cat"]["std"] == pytest.approx(
        0.0
    )
    assert deltas["asdn"]["dog"]["mean"] == pytest.approx(0.1)
    table = per_class_delta_table(data, "test")
    assert (
        "| class | Δ ia | Δ asdn |" in table and "| cat | +10.0 * | +0.0 |" in table
    )  # a constant +0.1: the interval excludes 0
    report = write_report(data, tmp_path).read_text()
    assert "## Change of AP per class against `none`" in report
    assert "![delta_ap_per_class](delta_ap_per_class.png)" in report
    assert (tmp_path / "delta_ap_per_class.png").stat().st_size > 1000
    # what was there before is still there
    assert "## AP per class on `test` (%)" in report and "![ap_per_class](ap_per_class.png)" in report


def test_no_baseline_no_delta_section(tmp_path: Path) -> None:
    data = results({"ia": {"cat": [0.6, 0.7, 0.8]}}, splits=("test",))
    assert per_class_deltas(data, "test") == {}
    report = write_report(data, tmp_path).read_text()
    assert "Change of AP per class" not in report and not (tmp_path / "delta_ap_per_class.png").exists()
