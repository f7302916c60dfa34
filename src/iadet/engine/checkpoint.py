"""Checkpoints: plain types only, written atomically, read with ``weights_only=True``.

A training checkpoint (``checkpoint.pth``) is a dict of tensors, numbers, strings, lists and
dicts only — never pickled objects — so ``torch.load(path, weights_only=True)`` reads it and
a checkpoint from a stranger cannot run code::

    {"format": "iadet-checkpoint", "version": 1,
     "model": state_dict, "optimizer": ..., "scheduler": ..., "scaler": ...,
     "adversary": {"name", "state", "optimizer", "extra"} | None,
     "progress": {"iteration", "epoch", "batch_in_epoch"},
     "rng": {"torch", "cuda", "numpy", "python"},
     "config": {...}, "classes": [...]}

Saving writes a temporary file in the same directory, flushes and fsyncs it, then renames it
over the target, so a crash or ``SIGKILL`` mid-save leaves the previous file intact; a full
disk is reported and the previous checkpoint kept.
"""

from __future__ import annotations

import random
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
