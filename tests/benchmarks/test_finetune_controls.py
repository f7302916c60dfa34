"""benchmarks/finetune_controls.py on a hand-made results.json: the contrasts are IA minus its controls, paired."""

from __future__ import annotations

import pytest

from conftest import load_benchmark


def _load():
    return load_benchmark("finetune_controls")


def _method(ap: list[float], share: list[float]) -> dict:
    metrics = {split: {"AP": {"runs": ap}} for split in ("test", "test_occluded", "test_erased")}
    return {"metrics": metrics, "parts": {"top_share": {"runs": share}}}


def test_ia_minus_control_is_paired_by_seed() -> None:
    controls = _load()
    results = {
        "seeds": [0, 1, 2],
        "methods": {
            # ia is 2 points above random on every seed; random-dropout equals ia on every seed
            "ia": _method([0.50, 0.60, 0.55], [0.58, 0.59, 0.60]),
            "ia-code": _method([0.50, 0.60, 0.55], [0.58, 0.59, 0.60]),
            "ia:strategy=random": _method([0.48, 0.58, 0.53], [0.60, 0.62, 0.61]),
            "random-dropout": _method([0.50, 0.60, 0.55], [0.58, 0.59, 0.60]),
        },
    }
    rows = {line.split(" | ")[0]: line for line in controls.contrasts(results) if line.startswith("| `")}
    # a constant paired difference has no spread: +2.0 with a zero-width interval, whatever the spread over seeds
    assert rows["| `ia` − `ia:strategy=random`"].count("+2.0 [+2.0, +2.0]") == 3
    assert "-0.020 [" in rows["| `ia` − `ia:strategy=random`"]
    assert rows["| `ia` − `random-dropout`"].count("+0.0 [+0.0, +0.0]") == 3


def test_missing_method_is_named() -> None:
    controls = _load()
    with pytest.raises(SystemExit, match="random-dropout"):
        controls.contrasts({"seeds": [0], "methods": {"ia": {}, "ia-code": {}, "ia:strategy=random": {}}})
