"""``iadet compare --finished-only``: tables from the finished runs alone; nothing is trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iadet.comparison import compare
from iadet.comparison.compare import CompareSpec, run_compare
from iadet.config import save_config
from iadet.errors import ConfigError

from conftest import tiny_overrides


def _record(spec: CompareSpec, method: str, seed: int, ap: float) -> None:
    """A run as committed from another machine: its config and evaluation, no weights."""
    run_dir = spec.output / "runs" / compare.run_directory_name(method) / f"seed{seed}"
    run_dir.mkdir(parents=True)
    save_config(compare._run_config(spec, method, seed), run_dir / "config.yaml")
    metrics = {k: ap for k in compare.METRICS}
    errors = {k: 0.01 for k in ("cls", "loc", "both", "dupe", "bkg", "missed")}
    evaluation = {"mAP": ap, "ap": {"cat": ap}, "metrics": metrics, "errors": errors}
    (run_dir / "eval_test.json").write_text(json.dumps(evaluation))


def test_unfinished_methods_are_listed_and_nothing_trains(
    shared_voc: Path, tmp_path: Path, monkeypatch
) -> None:
    def no_training(*args, **kwargs):
        raise AssertionError("--finished-only trained a run")

    monkeypatch.setattr(compare, "train", no_training)
    spec = CompareSpec(methods=["none", "ia", "asdn"], seeds=[0, 1], output=tmp_path / "out",
                       overrides=tiny_overrides(shared_voc), splits=["test"], finished_only=True, quiet=True)  # fmt: skip
    for seed, ap in ((0, 0.50), (1, 0.60)):
        _record(spec, "none", seed, ap)
        _record(spec, "ia", seed, ap + 0.02)
    _record(spec, "asdn", 1, 0.7)  # seed 0 still running elsewhere
    (spec.output / "runs" / "asdn" / "seed0").mkdir()

    results = run_compare(spec)
    assert list(results["methods"]) == ["none", "ia"] and results["pending"] == {"asdn": [1]}
    assert results["methods"]["ia"]["paired_vs_none"]["test"]["mean"] == pytest.approx(0.02)
    report = (spec.output / "report.md").read_text()
    assert "fewer seeds finished than asked: `asdn` (1 of 2: seeds 1)" in report

    spec.methods = ["asdn"]
    with pytest.raises(ConfigError, match="no method has finished all of seeds"):
        run_compare(spec)
