"""report.md from a hand-made results.json: the per-class ΔAP against `none` (A-Fast-RCNN's Fig. 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from iadet.comparison.report import interval_cell, per_class_delta_table, write_report
from iadet.comparison.stats import paired_difference, summarize
from iadet.comparison.summaries import per_class_deltas


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
    # the baseline's AP beside the deltas; a constant +0.1: the interval excludes 0
    assert (
        "| class | none AP | Δ ia | Δ asdn |" in table and "| cat | 60.0 ± 10.0 | +10.0 * | +0.0 |" in table
    )
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


def with_metrics(ap: dict[str, list[float]], voc07: dict[str, list[float]], primary: str | None) -> dict:
    """Hand-made results with two metrics on `test`: COCO AP and VOC07 per seed, paired to `none`."""
    from iadet.comparison.stats import paired_difference

    keys = ("voc07", "voc", "AP", "AP50", "AP75")
    out = {"methods": {}, "seeds": [0, 1, 2, 3], "splits": ["test"]}
    if primary:
        out["primary"] = primary
    for m in ap:
        values = {"voc07": voc07[m], "voc": voc07[m], "AP": ap[m], "AP50": ap[m], "AP75": ap[m]}
        entry = {
            "splits": {"test": summarize(voc07[m]).to_json()},
            "per_class": {"test": {"cat": summarize(voc07[m]).to_json()}},
            "paired_vs_none": {},
            "metrics": {"test": {k: summarize(values[k]).to_json() for k in keys}},
        }
        if m != "none":
            base = {"voc07": voc07["none"], "voc": voc07["none"], "AP": ap["none"], "AP50": ap["none"],
                    "AP75": ap["none"]}  # fmt: skip
            entry["paired_vs_none"]["test"] = paired_difference(voc07[m], voc07["none"]).to_json()
            entry["paired_metrics_vs_none"] = {
                "test": {k: paired_difference(values[k], base[k]).to_json() for k in keys}
            }
        out["methods"][m] = entry
    return out


AP = {"none": [0.50, 0.52, 0.54, 0.56], "ia": [0.53, 0.54, 0.58, 0.59], "asdn": [0.50, 0.53, 0.53, 0.57]}
VOC07 = {"none": [0.80, 0.80, 0.80, 0.80], "ia": [0.70, 0.70, 0.70, 0.70], "asdn": [0.90, 0.90, 0.90, 0.90]}


def test_headline_tables_use_the_declared_primary_metric(tmp_path: Path) -> None:
    from iadet.comparison.report import paired_table, results_table

    coco = with_metrics(AP, VOC07, "AP")
    assert "| none | 53.0 ± 2.6 |" in results_table(coco) and "COCO AP@[.5:.95] (the primary metric)" in (
        results_table(coco)
    )
    assert "| ia | +3.0 [" in paired_table(coco)  # AP: +3, +2, +4, +3 points
    voc = with_metrics(AP, VOC07, None)  # results without "primary" are VOC07's, as before
    assert "| none | 80.0 ± 0.0 |" in results_table(
        voc
    ) and "| ia | -10.0 [-10.0, -10.0] * |" in paired_table(voc)
    report = write_report(coco, tmp_path).read_text()
    assert "the primary is AP" in report


def test_power_table_gives_half_width_and_holm_adjusted_p(tmp_path: Path) -> None:
    from iadet.comparison.report import power_table
    from iadet.comparison.stats import holm_adjusted, paired_difference

    table = power_table(with_metrics(AP, VOC07, "AP"))
    d_ia = paired_difference(AP["ia"], AP["none"])
    d_asdn = paired_difference(AP["asdn"], AP["none"])
    p_ia, p_asdn = holm_adjusted([d_ia.p_value, d_asdn.p_value])
    assert p_ia == pytest.approx(2 * min(d_ia.p_value, d_asdn.p_value))  # the smaller p is doubled
    half = 100 * (d_ia.ci_high - d_ia.ci_low) / 2
    assert f"| ia | {100 * d_ia.std:.1f} · ±{half:.1f} · {p_ia:.2f} |" in table
    assert f"| asdn | {100 * d_asdn.std:.1f} · " in table and f"{p_asdn:.2f} |" in table
    report = write_report(with_metrics(AP, VOC07, "AP"), tmp_path).read_text()
    assert (
        "## Seed spread and the smallest detectable effect" in report and "Holm-adjusted over the 2" in report
    )


def test_part_reliance_is_drawn_with_intervals_over_seeds(tmp_path: Path, monkeypatch) -> None:
    import iadet.comparison.report_figures as report_module

    data = results({"none": {"cat": [0.5, 0.6, 0.7]}, "ia": {"cat": [0.6, 0.7, 0.8]}}, splits=("test",))
    data["methods"]["none"]["parts"] = {
        "top_drop": summarize([0.50, 0.52, 0.54]).to_json(),
        "other_drop": summarize([0.10, 0.12, 0.14]).to_json(),
        "top_share": summarize([0.60, 0.61, 0.62]).to_json(),
    }
    data["methods"]["ia"]["parts"] = {
        "top_drop": summarize([0.4, 0.4, 0.4]).to_json()
    }  # no other_drop: skipped
    drawn = {}
    real = report_module.plot_part_reliance

    def spy(summaries, path, **kwargs):
        drawn.update(summaries)
        return real(summaries, path, **kwargs)

    monkeypatch.setattr(report_module, "plot_part_reliance", spy)
    report = write_report(data, tmp_path).read_text()
    assert list(drawn) == ["none"]
    # t(0.975, 2) = 4.303; std of 0.50, 0.52, 0.54 is 0.02
    assert drawn["none"]["top_drop"]["ci95"] == pytest.approx(4.303 * 0.02 / 3**0.5, rel=1e-3)
    assert "![part_reliance](part_reliance.png)" in report
    assert (tmp_path / "part_reliance.png").stat().st_size > 1000


def test_no_part_reliance_no_plot(tmp_path: Path) -> None:
    report = write_report(results({"none": {"cat": [0.5, 0.6, 0.7]}}), tmp_path).read_text()
    assert "part_reliance" not in report and not (tmp_path / "part_reliance.png").exists()


def test_interval_cell_scales_the_mean_and_its_interval() -> None:
    d = paired_difference([0.56, 0.57, 0.55], [0.55, 0.55, 0.55]).to_json()
    mean, low, high = 100 * d["mean"], 100 * d["ci_low"], 100 * d["ci_high"]
    assert interval_cell(d) == f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]"
    assert interval_cell(d, 1.0, 3) == f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"
    # one seed: no interval, the mean alone
    assert interval_cell(paired_difference([0.6], [0.5]).to_json()) == "+10.0"
