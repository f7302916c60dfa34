"""``iadet analyze parts`` end to end: a detector trained a few iterations on the tiny built-in data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iadet.cli import main
from iadet.config import load_config
from iadet.data import synth
from iadet.engine.training_run import train

from conftest import make_voc, tiny_overrides

pytestmark = pytest.mark.slow


def test_analyze_parts_of_two_checkpoints(tmp_path: Path, capsys) -> None:
    root = synth.generate_dataset(tmp_path / "synth", "tiny", seed=0)
    for name, seed in (("first", 0), ("second", 1)):
        overrides = tiny_overrides(root, 3) + ["train.eval_at_end=false", f"train.seed={seed}"]
        train(load_config(None, overrides), tmp_path / name, quiet=True)
    a, b = (str(tmp_path / name / "model_final.pth") for name in ("first", "second"))
    out = tmp_path / "parts"
    assert main(["analyze", "parts", "--checkpoint", a, "--checkpoint", b, "--output", str(out)]) == 0
    assert "| first |" in capsys.readouterr().out
    data = json.loads((out / "part_reliance.json").read_text())
    assert set(data["detectors"]) == {"first", "second"}
    for detector in data["detectors"].values():
        rows, summary = detector["objects"], detector["summary"]
        assert summary["objects"] == len(rows) > 0
        for row in rows:
            assert len(row["drops"]) == 4 and 0.0 <= row["probability"] <= 1.0
            assert all(-1.0 <= d <= 1.0 for d in row["drops"])
    assert (out / "part_reliance.png").stat().st_size > 1000


def test_analyze_parts_refuses_data_without_parts(tmp_path: Path, capsys) -> None:
    root = make_voc(tmp_path / "voc", n_train=4, n_test=2)
    train(
        load_config(None, tiny_overrides(root, 1) + ["train.eval_at_end=false"]), tmp_path / "run", quiet=True
    )
    code = main(
        [
            "analyze",
            "parts",
            "--checkpoint",
            str(tmp_path / "run" / "model_final.pth"),
            "-o",
            str(tmp_path / "o"),
        ]
    )
    assert code != 0
    err = capsys.readouterr().err
    assert "part reliance needs the built-in data" in err and "Traceback" not in err
