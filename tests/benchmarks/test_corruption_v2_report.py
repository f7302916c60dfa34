"""benchmarks/corruption_v2_report.py on hand-made runs: complete seeds only, paired contrasts, the protocol's verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iadet.robustness.corruptions import BENCHMARK, GROUPS
from iadet.robustness.metrics import performance_under_corruption

from conftest import load_benchmark


def _load():
    return load_benchmark("corruption_v2_report")


def _write_run(root: Path, method: str, seed: int, gain: dict[str, float]) -> None:
    """A run whose every cell is 0.4 + a seed-dependent wobble + ``gain[family]``, clean AP 0.56."""
    wobble = 0.01 * ((seed * 7) % 3)
    family_of = {c: f for f, members in GROUPS.items() for c in members}
    table = {
        c: {s: 0.4 + wobble + gain.get(family_of[c], 0.0) - 0.02 * s for s in range(1, 6)} for c in BENCHMARK
    }
    run = root / method.replace(":", "-") / f"seed{seed}"
    run.mkdir(parents=True)
    for metric in ("coco", "voc07"):
        result = {**performance_under_corruption(0.56 + wobble, table), "metric": metric}
        (run / f"{metric}.json").write_text(json.dumps(result))
    clean = {"retrained": {"AP": 0.56 + wobble}, "committed": {"AP": 0.56}, "sane": True}
    (run / "clean.json").write_text(json.dumps(clean))


def test_contrasts_pair_complete_seeds_and_give_the_protocols_verdict(tmp_path: Path) -> None:
    report = _load()
    gains = {
        "none": {},
        "ia": {"blur": 0.03, "noise": -0.02},
        "ia-code": {},
        "ia:strategy=random": {"blur": 0.01},
        "cutout": {},
    }
    for seed in (0, 1, 2):
        for method, gain in gains.items():
            # seed-dependent gains give ia's contrasts a spread: blur 0.030-0.034, noise -0.05 to +0.01
            extra = {"blur": 0.03 + 0.002 * seed, "noise": -0.05 + 0.03 * seed} if method == "ia" else {}
            _write_run(tmp_path, method, seed, {**gain, **extra})
    _write_run(tmp_path, "none", 3, {})  # seed 3 of `none` alone: not a complete seed
    assert report.main([str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["complete_seeds"] == [0, 1, 2] and summary["runs"]["none"] == [0, 1, 2, 3]
    blur = summary["contrasts"]["coco"]["ia - none"]["family:blur"]
    assert blur["n"] == 3 and blur["mean"] == pytest.approx(0.032) and blur["ci_low"] > 0
    assert summary["contrasts"]["coco"]["ia - ia:strategy=random"]["family:blur"]["mean"] == pytest.approx(
        0.022
    )
    assert summary["contrasts"]["coco"]["cutout - none"]["mPC"]["mean"] == pytest.approx(0.0)
    assert "holm_p" in blur
    noise = summary["contrasts"]["coco"]["ia - none"]["family:noise"]
    assert noise["mean"] == pytest.approx(-0.02) and noise["ci_low"] < 0 < noise["ci_high"]
    assert summary["verdicts"] == {"blur": "IA improves robustness", "noise": "not shown"}
    text = (tmp_path / "report.md").read_text()
    assert "Interim" in text and "| none | 0, 1, 2, 3 |" in text and "| ia - none | 3 |" in text
    assert (tmp_path / "contrasts.png").is_file() and (tmp_path / "severity.png").is_file()


def test_no_shared_seed_writes_a_report_that_says_so(tmp_path: Path) -> None:
    report = _load()
    _write_run(tmp_path, "none", 0, {})
    _write_run(tmp_path, "ia", 1, {})
    assert report.main([str(tmp_path)]) == 0
    assert "No two detectors share a finished seed" in (tmp_path / "report.md").read_text()
    assert json.loads((tmp_path / "summary.json").read_text())["complete_seeds"] == []


def test_each_contrast_pairs_the_seeds_its_two_detectors_share(tmp_path: Path) -> None:
    """The primary detectors run first: their contrasts use seeds the others have not reached yet."""
    report = _load()
    for seed in (0, 1, 2):
        for method in ("none", "ia", "ia:strategy=random"):
            _write_run(tmp_path, method, seed, {"blur": 0.01 * seed} if method == "ia" else {})
    for method in ("ia-code", "cutout"):
        _write_run(tmp_path, method, 0, {})
    assert report.main([str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["complete_seeds"] == [0]
    coco = summary["contrasts"]["coco"]
    assert coco["ia - none"]["seeds"] == [0, 1, 2] and coco["cutout - none"]["seeds"] == [0]
    assert coco["ia - none"]["family:blur"]["mean"] == pytest.approx(0.01)


def test_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="is not a directory"):
        _load().main([str(tmp_path / "nowhere")])


def test_a_verdict_of_harm_needs_ia_minus_none_below_zero() -> None:
    report = _load()

    def d(low: float, high: float) -> dict:
        return {"ci_low": low, "ci_high": high}

    contrasts = {
        "ia - none": {"family:blur": d(-0.03, -0.01), "family:noise": d(-0.01, 0.02)},
        "ia - ia:strategy=random": {"family:blur": d(0.01, 0.02), "family:noise": d(0.01, 0.03)},
    }
    assert report.verdicts(contrasts) == {"blur": "IA hurts robustness", "noise": "not shown"}


def test_a_run_outside_the_sanity_range_is_reported_and_never_used(tmp_path: Path) -> None:
    """Protocol 3: a retrained run whose clean AP misses its range is listed, and its contrasts lose that seed."""
    report = _load()
    for seed in (0, 1, 2):
        for method in ("none", "ia", "ia-code", "ia:strategy=random", "cutout"):
            _write_run(tmp_path, method, seed, {"blur": 0.5} if (method, seed) == ("cutout", 2) else {})
    clean_file = tmp_path / "cutout" / "seed2" / "clean.json"
    clean_file.write_text(
        json.dumps(
            {
                "retrained": {"AP": 0.50},
                "committed": {"AP": 0.54},
                "sane_range_AP": [0.52, 0.58],
                "sane": False,
            }
        )
    )
    (tmp_path / "ia" / "seed1" / "coco.json").unlink()  # unfinished: not a rejected run, just not there yet
    assert report.main([str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["rejected"] == [{"method": "cutout", "seed": 2}]
    assert summary["runs"]["cutout"] == [0, 1]
    cutout = summary["contrasts"]["coco"]["cutout - none"]
    assert cutout["seeds"] == [0, 1] and cutout["family:blur"]["mean"] == pytest.approx(
        0.0
    )  # its +0.5 is unused
    text = (tmp_path / "report.md").read_text()
    assert "| cutout | 2 | 50.00 | 54.00 | 52.00-58.00 |" in text
    assert "not used in any contrast" in text
