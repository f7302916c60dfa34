"""OUTPUT/.lock: one training run per output directory (engine/output_lock.py)."""

from __future__ import annotations

import os
import socket

import pytest

from iadet.engine.output_lock import OutputLock
from iadet.errors import TrainingError

from conftest import dead_owner


def test_the_lock_names_its_holder_and_is_released_on_exit(tmp_path):
    with OutputLock(tmp_path, enabled=True) as lock:
        assert lock.held
        assert (tmp_path / ".lock").read_text() == f"{socket.gethostname()} {os.getpid()}"
        with pytest.raises(
            TrainingError, match=r"another run is writing to this directory .*remove .*\.lock"
        ):
            OutputLock(tmp_path, enabled=True).__enter__()
    assert not (tmp_path / ".lock").exists()


def test_a_lock_left_by_a_dead_run_on_this_host_is_taken_over(tmp_path):
    (tmp_path / ".lock").write_text(dead_owner())
    with OutputLock(tmp_path, enabled=True):
        assert (tmp_path / ".lock").read_text().endswith(f" {os.getpid()}")


@pytest.mark.parametrize(
    "owner",
    [
        "another-host.example 1",
        "garbage",
        "",
        f"{socket.gethostname()} 1",
        f"{socket.gethostname()} {10**20}",
    ],
)
def test_a_lock_it_cannot_prove_dead_is_respected(tmp_path, owner):
    """Another host's, a broken file, a running process (pid 1), a number no process id can be."""
    (tmp_path / ".lock").write_text(owner)
    with pytest.raises(TrainingError, match="another run is writing"):
        with OutputLock(tmp_path, enabled=True):
            pass
    assert (tmp_path / ".lock").read_text() == owner  # not removed by the refused run


def test_a_disabled_lock_touches_nothing(tmp_path):
    (tmp_path / ".lock").write_text("another-host.example 1")
    with OutputLock(tmp_path, enabled=False) as lock:
        assert not lock.held
    assert (tmp_path / ".lock").read_text() == "another-host.example 1"
