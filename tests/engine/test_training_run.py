"""The training engine end to end on a toy dataset: outputs, exact resume, signals, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from iadet.cli import main
from iadet.config import load_config
from iadet.config.methods import METHOD_PRESETS, MethodParams, register_preset
from iadet.engine.checkpoint import check_plain, load_file
from iadet.engine.training_run import train
from iadet.errors import TrainingError
from iadet.modeling.methods.base import RoIMethod, RoIOutput

from conftest import read_jsonl, sigterm_at, tiny_overrides

pytestmark = pytest.mark.slow


def _config(root: Path, iters: int = 6, extra: tuple[str, ...] = ()):
    overrides = tiny_overrides(root, iters) + ["train.deterministic=true", "train.eval_at_end=false", *extra]
    return load_config("quick", overrides)


def test_train_eval_predict(shared_voc: Path, tmp_path: Path, capsys):
    out = tmp_path / "run"
    args = ["train", "--config", "quick", "--output", str(out), "--quiet"]
    for o in tiny_overrides(shared_voc, 4):
        args += ["--set", o]
    assert main(args) == 0
    for name in ("config.yaml", "metrics.jsonl", "checkpoint.pth", "model_final.pth", "eval.json"):
        assert (out / name).is_file(), name
    rows = [r for r in read_jsonl(out / "metrics.jsonl") if r["type"] == "train"]
    assert [r["iter"] for r in rows] == [1, 2, 3, 4]
    for key in (
        "loss",
        "loss_classifier",
        "loss_box_reg",
        "loss_objectness",
        "loss_rpn_box_reg",
        "lr",
        "time",
    ):
        assert all(key in r for r in rows), key
    assert rows[0]["lr"] < rows[-1]["lr"] or rows[-1]["iter"] > 3  # warm-up then decay
    assert (out / "tensorboard").is_dir()

    checkpoint = torch.load(out / "checkpoint.pth", weights_only=True)
    check_plain(checkpoint)
    final = torch.load(out / "model_final.pth", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in final.values())  # a bare torchvision state dict
    assert list(final) == list(checkpoint["model"])

    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out / "model_final.pth"), "--split", "test", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= summary["mAP"] <= 1.0 and set(summary["ap"]) == {"square", "bar"}
    assert json.loads((out / "eval.json").read_text())["mAP"] == summary["mAP"]

    image = next((shared_voc / "JPEGImages").iterdir())
    pred = tmp_path / "pred"
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(out / "checkpoint.pth"),
                str(image),
                "--output",
                str(pred),
                "--score-thresh",
                "0.01",
            ]
        )
        == 0
    )
    record = json.loads((pred / f"{image.stem}.json").read_text())
    assert record["width"] == 96 and all(d["class"] in ("square", "bar") for d in record["detections"])
    assert (pred / f"{image.stem}.jpg").stat().st_size > 0


def _final_state(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "model_final.pth", weights_only=True)


@pytest.mark.parametrize("method", ["none", "ia", "ia-code"])
def test_interrupted_then_resumed_is_bit_identical(
    shared_voc: Path, tmp_path: Path, monkeypatch, capsys, method
):
    extra = (f"method.name={method}", "train.checkpoint_every=100")
    straight = train(_config(shared_voc, 7, extra), tmp_path / "straight", quiet=True)
    assert not straight.interrupted and straight.iterations == 7

    sigterm_at(monkeypatch, 3)
    first = train(_config(shared_voc, 7, extra), tmp_path / "resumed", quiet=True)
    assert first.interrupted and first.iterations == 3
    assert "Resume with: iadet train" in capsys.readouterr().err
    monkeypatch.undo()
    second = train(_config(shared_voc, 7, extra), tmp_path / "resumed", resume=True, quiet=True)
    assert second.iterations == 7

    a, b = _final_state(tmp_path / "straight"), _final_state(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = [r["iter"] for r in read_jsonl(tmp_path / "resumed" / "metrics.jsonl") if r["type"] == "train"]
    assert rows == list(range(1, 8))  # no duplicated rows after the resume


def test_resume_refuses_a_different_config_unless_forced(shared_voc: Path, tmp_path: Path):
    out = tmp_path / "run"
    train(_config(shared_voc, 2), out, quiet=True)
    with pytest.raises(
        TrainingError, match=r"different config than the checkpoint's: train.lr, train.max_iters"
    ):
        train(_config(shared_voc, 3, ("train.lr=0.5",)), out, resume=True, quiet=True)
    assert train(_config(shared_voc, 3), out, resume=True, force=True, quiet=True).iterations == 3


def test_existing_run_and_missing_checkpoint(shared_voc: Path, tmp_path: Path):
    out = tmp_path / "run"
    train(_config(shared_voc, 1), out, quiet=True)
    with pytest.raises(TrainingError, match="already holds a training run; pass --resume"):
        train(_config(shared_voc, 1), out, quiet=True)
    with pytest.raises(TrainingError, match="nothing to resume"):
        train(_config(shared_voc, 1), tmp_path / "empty", resume=True, quiet=True)


def test_a_second_run_on_the_same_directory_is_refused(shared_voc: Path, tmp_path: Path):
    out = tmp_path / "run"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        (out / ".lock").write_text(f"{socket.gethostname()} {sleeper.pid}")
        with pytest.raises(TrainingError, match="another run is writing to this directory"):
            train(_config(shared_voc, 1), out, quiet=True)
    finally:
        sleeper.kill()
        sleeper.wait()
    # the owner is gone: its stale lock is taken over
    assert train(_config(shared_voc, 1), out, quiet=True).iterations == 1
    assert not (out / ".lock").exists()


@dataclass
class NanParams(MethodParams):
    """Test-only parameters (none besides the name)."""


class NanAtThree(RoIMethod, params=NanParams):
    """Test-only: poisons the features at the third iteration."""

    def forward(self, features, batch):
        return RoIOutput(features * float("nan") if self.iteration == 2 else features)


@pytest.fixture
def nan_method():
    """``method.name=test-nan-at-3`` for one test (registered, then removed: other tests never see it)."""
    register_preset("test-nan-at-3", NanParams, doc="test only")
    yield
    METHOD_PRESETS.pop("test-nan-at-3")


def test_non_finite_loss_stops_with_iteration_and_terms(shared_voc: Path, tmp_path: Path, nan_method):
    out = tmp_path / "run"
    cfg = _config(shared_voc, 6, ("method.name=test-nan-at-3", "train.checkpoint_every=1"))
    with pytest.raises(
        TrainingError, match=r"non-finite loss at iteration 3: .*loss_classifier=nan.*last good checkpoint"
    ):
        train(cfg, out, quiet=True)
    assert load_file(out / "checkpoint.pth")["progress"]["iteration"] == 2


def test_sigterm_in_a_real_process_writes_a_checkpoint_and_exits_zero(shared_voc: Path, tmp_path: Path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "iadet", "train", "--config", "quick", "--output", str(out), "--quiet"]
    for o in tiny_overrides(shared_voc, 100000):
        cmd += ["--set", o]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / "metrics.jsonl").exists():
            time.sleep(0.2)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "interrupted at iteration" in err and "--resume" in err and "Traceback" not in err
    assert load_file(out / "checkpoint.pth")["progress"]["iteration"] >= 1
    assert not (out / ".lock").exists()


def test_sigterm_to_the_whole_process_group_with_loader_workers(shared_voc: Path, tmp_path: Path):
    """Schedulers signal every process of a job: the DataLoader workers must not die first."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "iadet", "train", "--config", "quick", "--output", str(out), "--quiet"]
    for o in tiny_overrides(shared_voc, 100000) + ["data.num_workers=2"]:
        cmd += ["--set", o]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / "metrics.jsonl").exists():
            time.sleep(0.2)
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "interrupted at iteration" in err and "Traceback" not in err
    assert load_file(out / "checkpoint.pth")["progress"]["iteration"] >= 1
