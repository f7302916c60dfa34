"""Inputs built to exhaust resources or slip past checks: each is refused through the CLI in one line,
with a non-zero exit, the culprit named, no traceback, and quickly."""

from __future__ import annotations

import os
import pickle
import re
import signal
import stat
import time
from pathlib import Path

import pytest
import torch

import iadet.engine.trainer as trainer_module
from iadet.cli import main

from conftest import make_voc, tiny_overrides


def _fails(capsys, args: list[str], pattern: str, code: int | None = None) -> str:
    status = main(args)
    err = capsys.readouterr().err.strip()
    assert status != 0, f"{args} succeeded"
    if code is not None:
        assert status == code, err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert re.search(pattern, err), err
    return err


def _train_args(root: Path, out: Path, *extra: str) -> list[str]:
    args = ["train", "--config", "quick", "--output", str(out), "--quiet"]
    for o in tiny_overrides(root, 1) + list(extra):
        args += ["--set", o]
    return args


@pytest.fixture
def voc(tmp_path: Path) -> Path:
    return make_voc(tmp_path / "voc", n_train=4, n_test=2)


# ----------------------------------------------------------------------------------------------
# config values


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("train.batch_size=-1", r"train.batch_size must be >= 1, got -1"),
        ("eval.batch_size=0", r"eval.batch_size must be >= 1, got 0"),
        ("train.max_iters=0", r"train.max_iters must be >= 1, got 0"),
        ("train.lr=-1", r"train.lr must be > 0, got -1"),
        ("train.lr=.nan", r"train.lr: expected a finite number, got nan"),
        ("train.weight_decay=-0.1", r"train.weight_decay must be >= 0"),
        ("train.lr_steps=[1, -3]", r"train.lr_steps must be >= 0, got -3"),
        ("model.box_nms_thresh=.inf", r"model.box_nms_thresh: expected a finite number, got inf"),
    ],
)
def test_config_values_out_of_range(voc, tmp_path, capsys, override, pattern):
    _fails(capsys, _train_args(voc, tmp_path / "o", override), pattern, 2)
    assert not (tmp_path / "o").exists(), "refused before any work"


def test_batch_larger_than_the_training_set(voc, tmp_path, capsys):
    _fails(
        capsys,
        _train_args(voc, tmp_path / "o", "train.batch_size=5"),
        r"train.batch_size=5 is larger than the training split trainval \(4 images\)",
        2,
    )
    assert not (tmp_path / "o" / "checkpoint.pth").exists()


def _alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for k in range(1, levels):
        lines.append(f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 9)}]")
    return "\n".join(lines) + f"\ntrain:\n  lr: *a{levels - 1}\n"


def test_yaml_alias_bomb_refused_quickly(voc, tmp_path, capsys):
    config = tmp_path / "bomb.yaml"
    config.write_text(_alias_bomb())  # ~400 bytes, 9**9 strings once expanded
    assert config.stat().st_size < 1000
    start = time.perf_counter()
    args = ["train", "--config", str(config), "--output", str(tmp_path / "o"), "--set", f"data.root={voc}"]
    err = _fails(capsys, args, r"bomb.yaml: refused: more than 100000 nodes once aliases are expanded", 2)
    assert time.perf_counter() - start < 2 and len(err) < 300


def test_yaml_recursive_alias_deep_nesting_and_encoding(voc, tmp_path, capsys):
    cases = {
        "rec.yaml": ("a: &a [*a]\n", r"rec.yaml: refused: an alias refers to a node that contains it"),
        "deep.yaml": (
            "train:\n  lr: " + "[" * 3000 + "]" * 3000 + "\n",
            r"deep.yaml: refused: .*nested deeper",
        ),
        "latin.yaml": ("train:\n  lr: 0.5 # caf\xe9\n", r"latin.yaml: not UTF-8 text \(byte offset 22\)"),
    }
    for name, (text, pattern) in cases.items():
        path = tmp_path / name
        path.write_bytes(text.encode("latin-1"))
        _fails(capsys, ["train", "--config", str(path), "--output", str(tmp_path / "o")], pattern, 2)


def test_yaml_with_bom_and_crlf_is_read(tmp_path):
    from iadet.config import load_config

    path = tmp_path / "win.yaml"
    path.write_bytes("\ufefftrain:\r\n  lr: 0.25\r\n".encode())
    assert load_config(str(path)).train.lr == 0.25


def test_wrong_type_message_never_prints_a_huge_value(tmp_path, capsys):
    path = tmp_path / "big.yaml"
    path.write_text("train:\n  lr: [" + ", ".join(["[1, 2, 3, 4, 5]"] * 2000) + "]\n")
    err = _fails(capsys, ["train", "--config", str(path), "--output", str(tmp_path / "o")], r"train.lr", 2)
    assert len(err) < 300


# ----------------------------------------------------------------------------------------------
# pickles: checkpoints and proposals


def _memo_bomb(levels: int = 40) -> list:
    value: list = [0] * 10
    for _ in range(levels):
        value = [value] * 10  # 10**40 items once walked, a kilobyte pickled
    return value


def test_checkpoint_memo_bomb_refused_before_unpickling(tmp_path, capsys):
    bad = tmp_path / "bomb.pth"
    torch.save({"model": {}, "config": {"train": {"lr": _memo_bomb()}}}, bad)
    start = time.perf_counter()
    _fails(
        capsys,
        ["eval", "--checkpoint", str(bad), "--config", "quick"],
        r"bomb.pth: cannot load checkpoint: it reuses a list, dict or other container",
        2,
    )
    assert time.perf_counter() - start < 2


def test_proposal_memo_bomb_refused(voc, tmp_path, capsys):
    bad = tmp_path / "bomb.pkl"
    bad.write_bytes(pickle.dumps({"000000": _memo_bomb()}, protocol=2))
    assert bad.stat().st_size < 2000
    _fails(
        capsys,
        _train_args(voc, tmp_path / "o", "model.detector=fast_rcnn", f"data.proposals={bad}"),
        r"bomb.pkl: not a proposal pickle \(it reuses a list",
        2,
    )


# ----------------------------------------------------------------------------------------------
# checkpoints written by training


def test_stale_temporaries_removed_and_checkpoints_follow_the_umask(voc, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    stale = out / ".checkpoint.pth.abc123.tmp"
    stale.write_bytes(b"\0" * 1000)  # what a kill -9 during a save leaves
    other = out / "notes.tmp"
    other.write_text("not ours")
    old = os.umask(0o022)
    try:
        assert main(_train_args(voc, out, "train.eval_at_end=false")) == 0
    finally:
        os.umask(old)
    assert not stale.exists() and other.exists()
    for name in ("checkpoint.pth", "model_final.pth"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name


def test_non_finite_weights_are_never_saved(voc, tmp_path, capsys, monkeypatch):
    original = trainer_module.Trainer.run_step

    def poisoned(self):
        original(self)
        with torch.no_grad():
            next(p for p in self.model.parameters() if p.is_floating_point()).fill_(float("nan"))

    monkeypatch.setattr(trainer_module.Trainer, "run_step", poisoned)
    out = tmp_path / "o"
    _fails(capsys, _train_args(voc, out), r"the weights are not finite at iteration 1 \(.* holds NaN", 1)
    assert not (out / "model_final.pth").exists() and not (out / "checkpoint.pth").exists()


# ----------------------------------------------------------------------------------------------
# signals


def test_sigterm_during_the_final_evaluation_stops_at_once(voc, tmp_path, capsys, monkeypatch):
    def slow_evaluation(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # an evaluation that would take long
        raise AssertionError("the signal did not stop the evaluation")

    monkeypatch.setattr(trainer_module, "evaluate_split", slow_evaluation)
    out = tmp_path / "o"
    start = time.perf_counter()
    err = _fails(
        capsys,
        _train_args(voc, out),
        r"interrupted by SIGTERM during the final evaluation; .*model_final.pth is saved, eval.json is not",
        128 + signal.SIGTERM,
    )
    assert time.perf_counter() - start < 20, err
    assert (out / "model_final.pth").exists() and not (out / "eval.json").exists()
