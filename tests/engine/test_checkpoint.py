import errno
import os
from pathlib import Path

import pytest
import torch

from iadet.engine.checkpoint import check_plain, load_file, rng_state, save_atomic, set_rng_state
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
