import errno
import os
from pathlib import Path

import pytest
import torch

from iadet.engine.checkpoint import (
    check_plain,
    load_file,
    load_scaler_state,
    resume_rng_state,
    rng_state,
    save_atomic,
    set_rng_state,
)
from iadet.errors import CheckpointError, TrainingError


def test_atomic_save_and_weights_only_load(tmp_path: Path):
    path = tmp_path / "ck.pth"
    save_atomic({"a": torch.ones(3), "b": [1, "x", {"c": 2.5}]}, path)
    loaded = load_file(path)
    assert torch.equal(loaded["a"], torch.ones(3)) and loaded["b"][2]["c"] == 2.5
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pth"]  # no temporary left behind


def test_truncated_checkpoint_is_a_one_line_error(tmp_path: Path):
    path = tmp_path / "ck.pth"
    save_atomic({"w": torch.randn(100, 100)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match=r"ck.pth: truncated or not a checkpoint"):
        load_file(path)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_file(tmp_path / "nope.pth")


def test_pickled_objects_are_refused(tmp_path: Path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, path)
    with pytest.raises(CheckpointError, match=r"evil.pth: cannot load checkpoint"):
        load_file(path)


def test_full_disk_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch):
    path = tmp_path / "ck.pth"
    save_atomic({"v": torch.tensor(1)}, path)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(TrainingError, match="No space left on device; the previous ck.pth"):
        save_atomic({"v": torch.tensor(2)}, path)
    monkeypatch.undo()
    assert load_file(path)["v"].item() == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pth"]


def test_rng_state_round_trip_is_plain_and_exact():
    import random

    import numpy as np

    state = rng_state()
    check_plain(state)
    a = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and (a[1] == b[1]).all() and a[2] == b[2]


def test_check_plain_rejects_objects():
    with pytest.raises(TypeError, match="is not a plain type"):
        check_plain({"x": object()})


def _gpu_scaler(monkeypatch) -> torch.amp.GradScaler:
    """The scaler a CUDA run with ``train.amp=true`` builds, on this CPU-only torch (which would
    otherwise warn and disable it): enabled, with its lazily created scale not made yet."""
    monkeypatch.setattr(torch.cuda.amp.common, "amp_definitely_not_available", lambda: False)
    scaler = torch.amp.GradScaler("cuda", enabled=True)
    assert scaler.is_enabled()
    return scaler


def test_a_cpu_runs_scaler_state_resumes_on_a_gpu(tmp_path: Path, monkeypatch):
    # a CPU run saves its disabled scaler's state, {} (AMP is CUDA-only), even with train.amp=true
    path = tmp_path / "ck.pth"
    save_atomic({"scaler": torch.amp.GradScaler("cuda", enabled=False).state_dict()}, path)
    saved = load_file(path)["scaler"]
    assert saved == {}
    scaler = _gpu_scaler(monkeypatch)
    with pytest.raises(RuntimeError, match="source state dict is empty"):
        scaler.load_state_dict(saved)  # what resuming on a GPU did
    assert load_scaler_state(scaler, saved) is False
    assert scaler.get_scale() == 2.0**16  # a fresh scaler, as a new run's


def test_a_gpu_runs_scaler_state_is_loaded_and_ignored_on_the_cpu(monkeypatch):
    saved = {
        "scale": 1024.0,
        "growth_factor": 2.0,
        "backoff_factor": 0.5,
        "growth_interval": 2000,
        "_growth_tracker": 7,
    }
    scaler = _gpu_scaler(monkeypatch)
    assert load_scaler_state(scaler, saved) is True
    assert scaler.get_scale() == 1024.0 and scaler.state_dict()["_growth_tracker"] == 7
    disabled = torch.amp.GradScaler("cuda", enabled=False)
    assert load_scaler_state(disabled, saved) is True and disabled.state_dict() == {}


def test_each_rank_resumes_its_own_rng_state():
    states = [{"rank": 0}, {"rank": 1}]
    assert resume_rng_state(states, 1, 2) == ({"rank": 1}, None)
    assert resume_rng_state({"rank": 0}, 0, 1) == ({"rank": 0}, None)  # a one-process run saves one dict


def test_more_ranks_than_saved_get_fresh_seeds_with_a_warning():
    # rng[rank] raised IndexError for rank 2 of a 2-process checkpoint
    states = [{"rank": 0}, {"rank": 1}]
    for rank in range(4):
        state, warning = resume_rng_state(states, rank, 4)
        assert state == (states[rank] if rank < 2 else None)
        assert "saved by 2 process(es) and resumes with 4" in warning and "ranks 2-3 are seeded" in warning
        assert "not exactly" in warning and "\n" not in warning
    state, warning = resume_rng_state({"rank": 0}, 1, 2)
    assert state is None and "rank 1 is seeded from train.seed + rank" in warning
    state, warning = resume_rng_state(states, 0, 1)
    assert state == {"rank": 0} and "the saved RNG state of rank 1 is unused" in warning
