"""Reading and writing ``torch`` files safely: atomic writes, ``weights_only`` reads, one-line errors.

Used for training checkpoints (:mod:`iadet.engine.checkpoint`) and for weight files
(:mod:`iadet.modeling.weights`), so both refuse pickled objects and report a bad file the same way.
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from iadet.errors import CheckpointError, TrainingError


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` via a temporary file + ``os.replace``: all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            buffer = io.BytesIO()
            torch.save(obj, buffer)
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise TrainingError(
                f"cannot write {path}: {exc.strerror or exc}; the previous {path.name} (if any) is kept"
            ) from None
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def load_file(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU, with a one-line error for a bad file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe or corrupt pickle"
        if "weights_only" in reason or "Unsupported global" in str(exc):
            reason = "it holds pickled Python objects, refused for safety (weights_only=True)"
        raise CheckpointError(f"{path}: cannot load checkpoint: {reason}") from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, ValueError, OSError, AttributeError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: truncated or not a checkpoint ({text})") from None
