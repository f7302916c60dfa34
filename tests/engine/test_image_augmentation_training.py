"""The image-space baselines in the real training loop: through the CLI, baseline keys, exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from iadet.cli import main
from iadet.config import load_config
from iadet.engine.training_run import train
from iadet.modeling.detector import build_model

from conftest import read_jsonl, sigterm_at, tiny_overrides

IMAGE_SPACE = ["random-erasing", "hide-and-seek", "cutout", "gridmask"]


def _train_cli(root: Path, out: Path, name: str, *extra: str) -> list[dict]:
    args = ["train", "--config", "quick", "--output", str(out), "--quiet", "--set", f"method.name={name}"]
    for o in [*tiny_overrides(root, 3), "train.eval_at_end=false", "train.deterministic=true", *extra]:
        args += ["--set", o]
    assert main(args) == 0
    return [r for r in read_jsonl(out / "metrics.jsonl") if r["type"] == "train"]


@pytest.mark.slow
def test_each_image_space_baseline_trains_through_the_cli(shared_voc: Path, tmp_path: Path):
    baseline = _train_cli(shared_voc, tmp_path / "none", "none")
    baseline_keys = list(build_model(load_config("quick", ["model.backbone=tiny"]).model, 3).state_dict())
    for name in IMAGE_SPACE:
        extra = ("method.ramp=constant",) if name == "gridmask" else ()
        rows = _train_cli(shared_voc, tmp_path / name, name, *extra)
        assert [r["iter"] for r in rows] == [1, 2, 3]
        final = torch.load(tmp_path / name / "model_final.pth", weights_only=True)
        assert list(final) == baseline_keys  # the saved model is the baseline's
        # same seed, same data order: only the erased pixels make the losses differ
        assert rows[0]["loss"] != baseline[0]["loss"], name


@pytest.mark.slow
def test_interrupted_then_resumed_with_loader_workers_is_bit_identical(
    shared_voc: Path, tmp_path: Path, monkeypatch, capsys
):
    overrides = [
        *tiny_overrides(shared_voc, 6),
        "train.deterministic=true",
        "train.eval_at_end=false",
        "train.checkpoint_every=100",
        "data.num_workers=2",  # the augmentation runs in worker processes
        "method.name=gridmask",  # its probability ramps with the position in the run
        "method.probability=1.0",
    ]
    train(load_config("quick", overrides), tmp_path / "straight", quiet=True)
    sigterm_at(monkeypatch, 3)
    out = tmp_path / "stopped"
    assert train(load_config("quick", overrides), out, quiet=True).interrupted
    monkeypatch.undo()
    assert train(load_config("quick", overrides), out, resume=True, quiet=True).iterations == 6
    a = torch.load(tmp_path / "straight" / "model_final.pth", weights_only=True)
    b = torch.load(out / "model_final.pth", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    capsys.readouterr()
