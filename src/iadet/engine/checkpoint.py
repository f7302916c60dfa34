"""Checkpoints: plain types only, written atomically, read with ``weights_only=True``.

A training checkpoint (``checkpoint.pth``) is a dict of tensors, numbers, strings, lists and
dicts only — never pickled objects — so ``torch.load(path, weights_only=True)`` reads it and
a checkpoint from a stranger cannot run code::

    {"format": "iadet-checkpoint", "version": 1,
     "model": state_dict, "optimizer": ..., "scheduler": ..., "scaler": ...,
     "method": {"name", "state": method.state_dict(), "extra"},
     "progress": {"iteration", "epoch", "batch_in_epoch"},
     "rng": {"torch", "cuda", "numpy", "python"} (one process) | [one such dict per rank] (DDP),
     "config": {...}, "classes": [...]}

Saving writes a temporary file in the same directory, flushes and fsyncs it, then renames it
over the target, so a crash or ``SIGKILL`` mid-save leaves the previous file intact; a full
disk is reported and the previous checkpoint kept.

The ``method`` section holds the training method: ``state`` is its ``state_dict()`` (an adversary's
parameters, and under ``_extra_state`` its clock, optimiser and stage) and ``extra`` what its loop
hooks record (IA's attention evolution). Checkpoints before iadet 0.2 call it ``adversary`` and keep the
optimiser and the stage beside ``state``; they still resume (:func:`method_section`).

A checkpoint resumes on another device or number of processes: the AMP scaler of a CPU run (saved
empty: AMP is CUDA-only) leaves a fresh scaler on a GPU (:func:`load_scaler_state`), and ranks the
saved run did not have get fresh seeds (:func:`resume_rng_state`). Only the same device and number
of processes continue exactly.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from iadet.serialization import load_file, save_atomic

__all__ = [
    "FORMAT",
    "VERSION",
    "check_plain",
    "is_training_checkpoint",
    "load_file",
    "load_scaler_state",
    "resume_rng_state",
    "rng_state",
    "save_atomic",
    "set_rng_state",
]

FORMAT = "iadet-checkpoint"
VERSION = 1


# ----------------------------------------------------------------------------------------------
# RNG states as plain types


def rng_state() -> dict[str, Any]:
    """Every RNG the training loop draws from, as tensors and lists."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
        "cuda": [],
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])


def resume_rng_state(
    saved: dict[str, Any] | list[dict[str, Any]], rank: int, world: int
) -> tuple[dict[str, Any] | None, str | None]:
    """This rank's RNG state from a checkpoint's ``rng``, and a warning when the process count changed.

    Args:
        saved: ``checkpoint["rng"]``: one :func:`rng_state` dict (a one-process run) or a list of
            them, one per rank of the run that saved it.
        rank, world: this process's rank and the number of processes now.
    Returns:
        ``(state, warning)``: ``state`` is ``None`` for a rank the saved run did not have (the caller
        seeds it afresh, from ``train.seed + rank``); ``warning`` is a one-line message when
        ``world`` differs from the saved run's, else ``None``. Such a resume continues the run but
        not exactly as an uninterrupted one would have (each rank's share of the batch and its random
        draws differ), and the message says so.
    """
    states = saved if isinstance(saved, list) else [saved]
    state = states[rank] if rank < len(states) else None
    if len(states) == world:
        return state, None
    if world > len(states):
        change = f"{_ranks(len(states), world)} seeded from train.seed + rank"
    else:
        change = f"the saved RNG state of {_ranks(world, len(states))} unused"
    warning = (
        f"the checkpoint was saved by {len(states)} process(es) and resumes with {world}: {change}; "
        f"the run continues but not exactly as it would have (resume with {len(states)} for that)"
    )
    return state, warning


def _ranks(first: int, end: int) -> str:
    return f"rank {first} is" if end - first == 1 else f"ranks {first}-{end - 1} are"


def load_scaler_state(scaler: torch.amp.GradScaler, state: Mapping[str, Any]) -> bool:
    """Load a checkpoint's AMP scaler state into ``scaler``; True when something was loaded.

    A disabled scaler saves ``{}``: every CPU run does, even with ``train.amp=true`` (AMP is CUDA-only).
    Resuming such a run on a GPU enables the scaler, whose ``load_state_dict({})`` raises ("The source
    state dict is empty"); here it stays fresh instead (initial scale 2**16, as a new run's). A
    disabled scaler ignores any state (a GPU run resumed on the CPU).
    """
    if not state:
        return False
    scaler.load_state_dict(dict(state))
    return True


def method_section(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The training method's section of a training checkpoint: ``method``, or ``adversary`` as
    checkpoints before iadet 0.2 name it; empty when there is none."""
    section = checkpoint.get("method")
    if section is None:
        section = checkpoint.get("adversary")
    return dict(section) if isinstance(section, Mapping) else {}


def is_training_checkpoint(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def check_plain(obj: Any, where: str = "checkpoint") -> None:
    """Raise TypeError when ``obj`` holds anything but tensors and plain Python values."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} is not a str/int")
            check_plain(v, f"{where}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
    elif not (obj is None or isinstance(obj, (str, int, float, bool, torch.Tensor))):
        raise TypeError(f"{where}: {type(obj).__name__} is not a plain type")
