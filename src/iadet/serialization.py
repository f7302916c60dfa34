"""Reading and writing ``torch`` files safely: atomic writes, ``weights_only`` reads, one-line errors.

Used for training checkpoints (:mod:`iadet.engine.checkpoint`) and for weight files
(:mod:`iadet.modeling.weights`), so both refuse pickled objects and report a bad file the same way.

``weights_only=True`` stops code from running, not memory from filling: a pickle can build a
list of lists that reuse one another (its memo), tiny on disk and astronomically large once
walked. :func:`check_pickle` reads the opcodes before anything is unpickled and refuses a pickle
that reuses a container (list, dict, tuple, set or any object but a tensor, storage, array or
dtype), so what loads is a tree no larger than the file; a pickle over ``MAX_PICKLE_BYTES`` is
refused too. Written files get the permissions of the umask, like every other output.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import pickletools
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any

import torch

from iadet.errors import CheckpointError, TrainingError, reason

TMP_SUFFIX = ".tmp"
"""Temporary files of :func:`save_atomic` are ``.<name>.<random>.tmp`` beside the target."""


def _umask() -> int:
    try:  # Linux: read it without changing it (changing it races with other threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` via a temporary file + ``os.replace``: all or nothing."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_atomic(buffer.getbuffer(), path)


def save_json_atomic(obj: Any, path: str | Path) -> None:
    """``obj`` as indented JSON (UTF-8) in ``path``, all or nothing: a result file never looks complete
    when its writer was interrupted."""
    write_atomic((json.dumps(obj, indent=2) + "\n").encode("utf-8"), path)


def write_atomic(data: bytes | memoryview, path: str | Path) -> None:
    """Write ``data`` to ``path`` via a temporary file beside it + ``os.replace``, fsynced.

    The file gets ``0o666`` minus the umask (``mkstemp`` alone would leave it ``0o600``). An
    :class:`OSError` (full disk, read-only directory) becomes a :class:`~iadet.errors.TrainingError`
    naming the file; the previous file, if any, is kept.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
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


def remove_stale_temporaries(directory: str | Path, names: tuple[str, ...]) -> list[Path]:
    """Delete the temporary files that interrupted :func:`save_atomic` calls for ``names`` left in
    ``directory`` (``.checkpoint.pth.x1y2.tmp``); call it only while no other process writes there."""
    removed = []
    for name in names:
        for tmp in Path(directory).glob(f".{name}.*{TMP_SUFFIX}"):
            try:
                if tmp.is_file() and not tmp.is_symlink():
                    tmp.unlink()
                    removed.append(tmp)
            except OSError:
                pass
    return removed


# ----------------------------------------------------------------------------------------------
# checking a pickle before unpickling it

MAX_PICKLE_BYTES = 64 << 20
"""The pickled structure of a checkpoint (its ``data.pkl``, not the tensor data) or a proposal pickle
may not exceed this (64 MiB; a ResNet-101 training checkpoint's is well under 1 MiB)."""

# the callables whose results may be shared (pickle memo reuse): leaves, not containers
_SHAREABLE_CALLS = ("_rebuild", "_reconstruct", "dtype", "scalar", "_frombuffer", "encode")
_PUSH_LEAF = {
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
    "STRING", "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
    "BYTEARRAY8", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8",
    "NONE", "NEWTRUE", "NEWFALSE", "EMPTY_TUPLE", "PERSID", "NEXT_BUFFER",
}  # fmt: skip
_CONTAINER, _LEAF, _MARK = "container", "leaf", object()


class UnsafePickle(ValueError):
    """A pickle refused by :func:`check_pickle` before it is unpickled."""


class CorruptPickle(UnsafePickle):
    """Opcodes that do not form a pickle (a truncated or foreign file)."""


def check_pickle(stream: IO[bytes], max_bytes: int = MAX_PICKLE_BYTES) -> None:
    """Walk one pickle's opcodes (no object is built) and refuse reused containers or a pickle over
    ``max_bytes``; leaves ``stream`` after the pickle's STOP. Raises :class:`UnsafePickle`."""
    start = stream.tell()
    stack: list[Any] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> None:
        while stack and stack.pop() is not _MARK:
            pass

    try:
        for op, arg, pos in pickletools.genops(stream):
            if pos - start > max_bytes:
                raise UnsafePickle(f"its pickled structure exceeds {max_bytes >> 20} MiB")
            name = op.name
            if name in _PUSH_LEAF:
                stack.append(arg if name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE") else _LEAF)
            elif name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"):
                stack.append(_CONTAINER)
            elif name == "MARK":
                stack.append(_MARK)
            elif name in ("LIST", "DICT", "TUPLE", "FROZENSET", "OBJ", "INST"):
                pop_mark()
                stack.append(_CONTAINER)
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                del stack[len(stack) - int(name[-1]) :]
                stack.append(_CONTAINER)
            elif name in ("APPENDS", "SETITEMS", "ADDITEMS", "POP_MARK"):
                pop_mark()
            elif name in ("APPEND", "BUILD", "POP"):
                stack.pop()
            elif name == "SETITEM":
                del stack[-2:]
            elif name == "DUP":
                stack.append(stack[-1])
            elif name == "GLOBAL":
                stack.append(("global", str(arg).split()[-1]))
            elif name == "STACK_GLOBAL":
                qualname = stack.pop()
                stack.pop()
                stack.append(("global", qualname if isinstance(qualname, str) else ""))
            elif name in ("REDUCE", "NEWOBJ", "NEWOBJ_EX"):
                del stack[len(stack) - (2 if name == "NEWOBJ_EX" else 1) :]
                call = stack.pop()
                shareable = isinstance(call, tuple) and call[1].startswith(_SHAREABLE_CALLS)
                stack.append(_LEAF if name == "REDUCE" and shareable else _CONTAINER)
            elif name == "BINPERSID":
                stack[-1] = _LEAF
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg)] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                item = memo[int(arg)]
                if item is _CONTAINER:
                    raise UnsafePickle("it reuses a list, dict or other container (a memo expansion bomb?)")
                stack.append(item)
            elif name in ("PROTO", "FRAME", "READONLY_BUFFER"):
                pass
            elif name == "STOP":
                return
            else:  # EXT1/2/4 (the extension registry) and anything newer
                raise UnsafePickle(f"it uses the pickle opcode {name}")
    except (IndexError, KeyError, ValueError) as exc:
        if isinstance(exc, UnsafePickle):
            raise
        raise CorruptPickle(f"corrupt pickle ({type(exc).__name__})") from None


def check_torch_file(path: Path) -> None:
    """:func:`check_pickle` on the pickles of a ``torch.save`` file (the zip format's ``data.pkl``,
    or the legacy format's leading pickles), before ``torch.load`` unpickles them."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            for name in names:
                if archive.getinfo(name).file_size > MAX_PICKLE_BYTES:
                    raise UnsafePickle(f"its pickled structure exceeds {MAX_PICKLE_BYTES >> 20} MiB")
                with archive.open(name) as member:
                    check_pickle(io.BytesIO(member.read()))
        return
    with open(path, "rb") as f:  # legacy: magic, protocol, sys info, the object, the storage keys
        # every one of them, whatever its first byte: protocols 0 and 1 have no PROTO opcode, and a file
        # that is no pickle at all fails here as a corrupt one
        for _ in range(5):
            check_pickle(f)


def load_file(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU, with a one-line error for a bad file; the
    pickle is checked first (:func:`check_torch_file`)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        check_torch_file(path)
    except CorruptPickle as exc:
        raise CheckpointError(f"{path}: truncated or not a checkpoint ({exc})") from None
    except UnsafePickle as exc:
        raise CheckpointError(f"{path}: cannot load checkpoint: {exc}; refused") from None
    except Exception as exc:  # zipfile on a damaged archive: BadZipFile, NotImplementedError (compression),
        # RuntimeError (encrypted), UnicodeDecodeError (a member's name), EOFError, OSError, ...
        raise CheckpointError(f"{path}: truncated or not a checkpoint ({type(exc).__name__})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe or corrupt pickle"
        if "weights_only" in why or "Unsupported global" in str(exc):
            why = "it holds pickled Python objects, refused for safety (weights_only=True)"
        raise CheckpointError(f"{path}: cannot load checkpoint: {why}") from None
    except Exception as exc:  # torch's readers on a corrupt file: EOFError, RuntimeError, IndexError, ...
        raise CheckpointError(f"{path}: truncated or not a checkpoint ({reason(exc)})") from None
