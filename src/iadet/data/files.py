"""Reading names and text from data files, and keeping paths inside the dataset.

Every command that reads image ids or file names from a data file (split lists, annotations,
COCO JSON, detection files, proposals) goes through :func:`plain_name`, so ``train``, ``eval``,
``voc-eval``, ``data check``, ``predict`` and ``proposals`` refuse the same names. Text files are
read by :func:`read_text`: UTF-8 with or without a byte-order mark, LF or CRLF line ends; any other
encoding is a :class:`~iadet.errors.DataError` naming the file and the byte offset.

:data:`LIMITS` holds the process-wide data limits (``data.max_image_pixels``,
``data.follow_symlinks``); :func:`configure` sets them from a config's ``data`` section (the
catalog does, when it opens a dataset). DataLoader workers inherit them when forked.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from iadet.errors import DataError


@dataclass
class DataLimits:
    max_image_pixels: int = 40_000_000
    """Images declaring more pixels (width x height) in their header are refused before decoding."""
    follow_symlinks: bool = False
    """Follow symbolic links that lead outside the dataset directory (refused otherwise)."""


LIMITS = DataLimits()


def configure(data_config: Any) -> None:
    """Take ``max_image_pixels`` and ``follow_symlinks`` from a ``DataConfig`` (missing: defaults)."""
    LIMITS.max_image_pixels = int(getattr(data_config, "max_image_pixels", DataLimits.max_image_pixels))
    LIMITS.follow_symlinks = bool(getattr(data_config, "follow_symlinks", DataLimits.follow_symlinks))


def plain_name(name: str, source: str, what: str = "image id", *, subdirs: bool = False) -> str:
    """``name`` if it is a plain name inside the data directory, else a :class:`DataError`.

    Refused: an empty name, ``.``/``..`` (as the name or, with ``subdirs``, as any part of it),
    absolute paths and drive letters, backslashes, control characters (NUL, tabs, line ends),
    and ``/`` unless ``subdirs`` (COCO's ``file_name`` may name a sub-directory).
    """
    reason = None
    if not isinstance(name, str) or not name:
        reason = "is empty"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        reason = "holds a control character"
    elif "\\" in name or PureWindowsPath(name).drive or PurePosixPath(name).is_absolute():
        reason = "is an absolute path or holds a backslash"
    elif "/" in name and not subdirs:
        reason = "holds a '/' (a sub-directory)"
    elif any(part in ("", ".", "..") for part in name.split("/")):
        reason = "has an empty, '.' or '..' part (it could leave the data directory)"
    if reason is not None:
        shown = repr(name[:80] + ("..." if len(name) > 80 else "")) if isinstance(name, str) else repr(name)
        raise DataError(f"{source}: {what} {shown} is not a plain file name (refused): it {reason}")
    return name


def inside(path: Path, root: Path, what: str = "file") -> Path:
    """``path`` unless it resolves (through symbolic links) outside ``root`` and
    ``data.follow_symlinks`` is false."""
    if LIMITS.follow_symlinks:
        return path
    try:
        real, real_root = path.resolve(), root.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise DataError(f"{path}: cannot resolve the {what} ({exc})") from None
    if real != real_root and real_root not in real.parents:
        raise DataError(
            f"{path}: the {what} is a symbolic link leading outside the dataset ({real}); "
            "refused (set data.follow_symlinks=true to allow it)"
        )
    return path


def read_text(path: Path, what: str = "file") -> str:
    """The text of ``path``: UTF-8, a leading byte-order mark dropped; CRLF is left to ``splitlines``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = skip + exc.start
        raise DataError(
            f"{path}: not UTF-8 text (byte {data[offset : offset + 1].hex()} at byte offset {offset}); "
            "save it as UTF-8"
        ) from None


def read_id_lines(path: Path, what: str = "split file") -> list[tuple[int, str]]:
    """``(line number, image id)`` of each non-blank line of an id list (a VOC split file).

    A line holds an id, or (VOC's per-class lists) an id and a flag ``1``, ``0`` or ``-1``. Ids
    cannot contain spaces: any other second word is an error naming the line.
    """
    out = []
    for lineno, line in enumerate(read_text(path, what).splitlines(), 1):
        words = line.split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1] not in ("1", "0", "-1")):
            raise DataError(
                f"{path}:{lineno}: image ids cannot contain spaces, got {line.strip()[:80]!r} "
                "(a line is 'id' or 'id 1|0|-1')"
            )
        out.append((lineno, plain_name(words[0], f"{path}:{lineno}")))
    return out
