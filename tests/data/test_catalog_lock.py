"""The built-in data's cache lock: a lock left by a generator that was killed is taken over at once."""

from __future__ import annotations

import socket
import time

import pytest

import iadet.data.synth as synth
from iadet.data import catalog

from conftest import dead_owner


@pytest.fixture
def fake_generator(tmp_path, monkeypatch):
    monkeypatch.setenv("IADET_CACHE", str(tmp_path / "cache"))
    made = []

    def generate(root, preset, seed):
        root.mkdir(parents=True, exist_ok=True)
        (root / "synth.json").write_text("{}")
        made.append(root)

    monkeypatch.setattr(synth, "generate_dataset", generate)
    return made


def _lock_of(preset: str) -> object:
    root = catalog.cache_dir() / "synth" / f"{preset}-seed0-{catalog._fingerprint(synth, preset)}"
    root.parent.mkdir(parents=True, exist_ok=True)
    return root, root.parent / f".{root.name}.lock"


def test_lock_of_a_killed_generator_is_taken_over_at_once(fake_generator):
    """Before: a generator killed with SIGKILL left its lock, and the next run waited an hour in silence."""
    root, lock = _lock_of("quick")
    lock.write_text(dead_owner())
    start = time.perf_counter()
    assert catalog.builtin_root("quick") == root
    assert time.perf_counter() - start < 5
    assert fake_generator == [root] and not lock.exists()


def test_lock_of_a_live_generator_is_waited_for(fake_generator, capsys, monkeypatch):
    root, lock = _lock_of("quick")
    lock.write_text(f"{socket.gethostname()} {1}")  # pid 1 runs: a generator at work
    sleeps = []

    def sleep(seconds):  # the other generator finishes while we wait
        sleeps.append(seconds)
        root.mkdir(parents=True, exist_ok=True)
        (root / "synth.json").write_text("{}")

    monkeypatch.setattr(catalog.time, "sleep", sleep)
    assert catalog.builtin_root("quick") == root
    assert sleeps and fake_generator == [] and lock.exists()
    assert "waiting for another process generating the built-in data" in capsys.readouterr().err
