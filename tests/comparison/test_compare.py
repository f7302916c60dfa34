"""`iadet compare` on a tiny setting: results.json shape, report, reuse of finished runs."""

import json
from pathlib import Path

import pytest

from iadet.cli import main

from conftest import tiny_overrides

pytestmark = pytest.mark.slow


def _args(root: Path, out: Path) -> list[str]:
    args = ["compare", "--methods", "none,ia", "--seeds", "2", "--output", str(out), "--quiet"]
    for o in tiny_overrides(root, 3):
        args += ["--set", o]
    return args


def test_compare_writes_results_report_and_reuses_runs(shared_voc: Path, tmp_path: Path, capsys):
    out = tmp_path / "cmp"
    assert main(_args(shared_voc, out)) == 0
    printed = capsys.readouterr().out
    assert "| none |" in printed and "| ia |" in printed and "Δ test" in printed

    results = json.loads((out / "results.json").read_text())
    assert set(results["methods"]) == {"none", "ia"}
    for method in ("none", "ia"):
        split = results["methods"][method]["splits"]["test"]
        assert set(split) == {"mean", "std", "runs"} and len(split["runs"]) == 2
        assert all(0.0 <= v <= 1.0 for v in split["runs"])
        assert split["mean"] == pytest.approx(sum(split["runs"]) / 2)
    paired = results["methods"]["ia"]["paired_vs_none"]["test"]
    ia_runs, none_runs = (results["methods"][m]["splits"]["test"]["runs"] for m in ("ia", "none"))
    assert paired["mean"] == pytest.approx(sum(a - b for a, b in zip(ia_runs, none_runs)) / 2)
    assert paired["ci_low"] <= paired["mean"] <= paired["ci_high"]
    assert results["config"]["model"]["backbone"] == "tiny" and results["primary"] == "voc07"
    metrics = results["methods"]["ia"]["metrics"]["test"]  # every metric, from the same predictions
    assert set(metrics) == {"voc07", "voc", "AP", "AP50", "AP75"}
    assert metrics["voc07"]["runs"] == ia_runs
    for a, a50, a75 in zip(metrics["AP"]["runs"], metrics["AP50"]["runs"], metrics["AP75"]["runs"]):
        assert 0.0 <= a75 <= a50 <= 1.0 and a <= a50
    assert set(results["methods"]["ia"]["paired_metrics_vs_none"]["test"]) == set(metrics)
    errors = results["methods"]["none"]["errors"]["test"]
    assert set(errors) == {"cls", "loc", "both", "dupe", "bkg", "missed"}
    # each error type's dAP (on the devkit's AP) is at most the AP still missing
    missing = 1.0 - results["methods"]["none"]["metrics"]["test"]["voc"]["mean"]
    assert all(-1e-9 <= e["mean"] <= missing + 1e-9 for e in errors.values())
    assert sum(e["mean"] for e in errors.values()) > 0  # a tiny detector makes errors
    report = (out / "report.md").read_text()
    assert "| none |" in report and "95% CI" in report
    assert "Every metric on `test`" in report and "Where AP is lost on `test`" in report
    assert report.startswith("# Comparison\n\n![forest](forest.png)")  # the headline picture first
    for png in ("forest.png", "map_by_split.png", "ap_per_class.png", "errors_by_type.png"):
        assert (out / png).stat().st_size > 1000

    final = out / "runs" / "ia" / "seed1" / "model_final.pth"
    stamp = final.stat().st_mtime_ns
    assert main(_args(shared_voc, out)) == 0  # everything reused
    assert final.stat().st_mtime_ns == stamp
    again = json.loads((out / "results.json").read_text())
    assert again["methods"]["ia"]["splits"] == results["methods"]["ia"]["splits"]


def test_compare_refuses_a_run_with_another_config(shared_voc: Path, tmp_path: Path, capsys):
    out = tmp_path / "cmp"
    args = _args(shared_voc, out)
    args[args.index("--seeds") + 1] = "1"
    assert main(args) == 0
    assert main(args + ["--set", "train.lr=0.5"]) == 2
    assert "holds a run with a different config (train.lr)" in capsys.readouterr().err


def test_compare_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--seeds", "0"])
    assert "must be a positive integer" in capsys.readouterr().err
    assert main(["compare", "--methods", "none,nope", "--seeds", "1"]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err


def test_method_variants_are_parsed():
    from iadet.comparison.compare import parse_variant, run_directory_name

    assert parse_variant("ia") == ("ia", [])
    assert parse_variant("ia:strategy=hard:roi_ratio=0.5") == (
        "ia",
        ["method.strategy=hard", "method.roi_ratio=0.5"],
    )
    assert run_directory_name("ia:strategy=hard") == "ia-strategy=hard"
    from iadet.errors import ConfigError

    with pytest.raises(ConfigError, match="'hard' is not key=value"):
        parse_variant("ia:hard")


def test_runs_recorded_without_weights_are_assembled_and_parts_aggregated(tmp_path: Path, capsys):
    """Committed result files (no checkpoints) are enough: compare assembles the same tables from them."""
    from iadet.data import synth

    root = synth.generate_dataset(tmp_path / "synth", "tiny", seed=0)
    out = tmp_path / "cmp"
    args = ["compare", "--methods", "none,ia", "--seeds", "0,2", "--parts", "--output", str(out), "--quiet"]
    for o in tiny_overrides(root, 2):
        args += ["--set", o]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == [0, 2] and set(results["splits"]) == {"test", "test_occluded", "test_erased"}
    parts = results["methods"]["ia"]["parts"]
    assert set(parts) >= {"probability", "top_drop", "other_drop"} and len(parts["top_drop"]["runs"]) == 2
    assert "top_drop" in results["methods"]["ia"]["paired_parts_vs_none"]
    assert "## Part reliance" in (out / "report.md").read_text()

    for heavy in [*out.rglob("*.pth"), *out.rglob("events.out.tfevents*")]:
        heavy.unlink()  # what a commit of the results leaves out
    assert main(args) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["methods"] == results["methods"]
    assert not list(out.rglob("model_final.pth"))  # nothing was retrained
