"""Arguments and helpers shared by several commands."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from iadet.errors import OutputError


def add_config_args(parser: argparse.ArgumentParser, *, config_required: bool = False) -> None:
    parser.add_argument(
        "--config",
        "-c",
        required=config_required,
        default=None,
        help="a built-in config name (quick, default) or a YAML file",
    )
    parser.add_argument(
        "--data", default=None, help="dataset directory (sets data.root); default: built-in data"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.lr=0.01 (repeatable)",
    )


def overrides_with_data(args: argparse.Namespace) -> list[str]:
    overrides = list(args.overrides)
    if getattr(args, "data", None):
        overrides.append(f"data.root={args.data}")
    return overrides


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def probability(text: str) -> float:
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def output_dir(path: str | Path, option: str = "--output", *, create: bool = True) -> Path:
    """Create ``path`` (a directory) now and check it can be written: one clear line before any work
    for an existing file, a read-only or unwritable directory. With ``create=False`` a missing
    ``path`` is left missing and its nearest existing parent is checked instead."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {path}: exists and is not a directory")
    probe = path
    if not create:
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            raise OutputError(f"{option} {path}: {probe} is not a directory")
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise OutputError(f"{option} {path}: cannot write there ({exc.strerror or exc})") from None
    return path


def output_file(path: str | Path, option: str = "--output") -> Path:
    """Check that the file ``path`` can be written (its directory is created): one clear line before
    any work for a directory in its place, a read-only or unwritable directory."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path}: is a directory, expected a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{option} {path}: the file exists and is read-only")
    output_dir(path.parent if str(path.parent) else ".", option=f"{option} {path}: its directory")
    return path
