"""From ``data.*`` to records: built-in data, format detection, concatenated splits.

* ``data.root`` unset: the built-in data (``data.preset``) generated once into the cache
  (``$IADET_CACHE`` or ``~/.cache/iadet``) and reused.
* A VOC-layout directory, a VOCdevkit (splits named ``VOC2007/trainval``), or a COCO root.
* ``+`` joins splits: ``VOC2007/trainval+VOC2012/trainval`` (VOC07+12).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from iadet.config.schema import DataConfig
from iadet.data import files
from iadet.data.coco import is_coco_root, open_coco
from iadet.data.records import DatasetSplit
from iadet.data.voc import is_voc_root, open_voc
from iadet.errors import DataError
from iadet.lock_owner import owner_gone, this_process


def cache_dir() -> Path:
    return Path(os.environ.get("IADET_CACHE") or Path.home() / ".cache" / "iadet")


def _fingerprint(synth, preset: str) -> str:
    """Changes with the generator's version and the preset's parameters: a stale cache is never reused."""
    import dataclasses
    import hashlib
    import json

    params = synth.DATASET_PRESETS[preset]
    params = dataclasses.asdict(params) if dataclasses.is_dataclass(params) else params
    text = json.dumps(
        {"version": getattr(synth, "GENERATOR_VERSION", 1), "params": params}, sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def stale_lock(lock: Path) -> bool:
    """A cache lock left by a process that is gone: its process (``host pid`` in the file) no longer runs on
    this host (a ``kill -9``, a crash), or, on another host or unreadable, untouched for an hour."""
    try:
        owner = lock.read_text(encoding="utf-8", errors="replace")
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return False  # released meanwhile: try again
    gone = owner_gone(owner)
    if gone is not None:
        return gone
    # a lock without an owner yet (its writer is between open and write) is fresh: wait a little
    return age > 3600


def make_once(
    lock: Path,
    ready: Callable[[], bool],
    make: Callable[[], None],
    *,
    waiting: str | None = None,
    poll: float = 1.0,
) -> None:
    """Make a cache entry once across processes: unless ``ready()``, run ``make()`` holding ``lock``, an
    exclusive file naming its owner (``host pid``). A process that finds the lock waits until the entry is
    ready or the lock is stale (:func:`stale_lock`, then taken over), saying once what it waits for
    (``waiting``) on stderr."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    told = False
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(fd, this_process().encode())
            break
        except FileExistsError:
            if ready():
                return
            if stale_lock(lock):
                lock.unlink(missing_ok=True)
                continue
            if waiting and not told:
                print(f"iadet: waiting for {waiting} ({lock})", file=sys.stderr)
                told = True
            time.sleep(poll)
    try:
        if not ready():
            make()
    finally:
        os.close(fd)
        lock.unlink(missing_ok=True)


def builtin_root(preset: str, seed: int = 0) -> Path:
    """The built-in dataset of ``preset``; generated on first use (a file lock guards concurrent runs)."""
    from iadet.data import synth

    if preset not in synth.DATASET_PRESETS:
        raise DataError(
            f"unknown built-in data preset '{preset}' (valid: {', '.join(synth.DATASET_PRESETS)})"
        )
    root = cache_dir() / "synth" / f"{preset}-seed{seed}-{_fingerprint(synth, preset)}"
    if (root / "synth.json").is_file():
        return root
    make_once(
        root.parent / f".{root.name}.lock",
        ready=lambda: (root / "synth.json").is_file(),
        make=lambda: synth.generate_dataset(root, preset=preset, seed=seed),
        waiting="another process generating the built-in data",
        poll=0.5,
    )
    return root


def data_root(cfg: DataConfig) -> Path:
    """The dataset directory of ``cfg``; also applies its limits (pixels, symlinks) to this process."""
    files.configure(cfg)
    if cfg.root is None:
        return builtin_root(cfg.preset, cfg.synth_seed)
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: data directory not found")
    return root


def detect_format(root: Path, fmt: str = "auto") -> str:
    if fmt in ("voc", "coco"):
        return fmt
    if fmt != "auto":
        raise DataError(f"unknown data.format '{fmt}' (valid: auto, voc, coco)")
    if is_coco_root(root):
        return "coco"
    if is_voc_root(root) or any(is_voc_root(p) for p in root.iterdir() if p.is_dir()):
        return "voc"
    raise DataError(
        f"{root}: neither a VOC-layout dataset (Annotations/, ImageSets/Main/), a VOCdevkit, "
        "nor COCO (annotations/instances_<split>.json)"
    )


def open_split(
    root: Path,
    split: str,
    *,
    fmt: str = "auto",
    classes: Sequence[str] | None = None,
    problems: list[str] | None = None,
) -> DatasetSplit:
    """Open ``split`` (``a+b`` concatenates, ``DIR/name`` picks a sub-dataset of a devkit)."""
    fmt = detect_format(root, fmt)
    parts = [s.strip() for s in split.split("+") if s.strip()]
    if not parts:
        raise DataError(f"empty split name '{split}'")
    opened: list[DatasetSplit] = []
    for part in parts:
        sub_root, name = root, part
        if "/" in part:
            sub, name = part.rsplit("/", 1)
            sub_root = root / sub
            if ".." in Path(sub).parts or Path(sub).is_absolute():
                raise DataError(f"split '{part}' escapes the data directory (refused)")
        elif fmt == "voc" and not is_voc_root(root):
            subs = sorted(p.name for p in root.iterdir() if p.is_dir() and is_voc_root(p))
            raise DataError(
                f"{root} is a VOCdevkit: name the sub-dataset, e.g. {subs[0] if subs else 'VOC2007'}/{part}"
            )
        opener = open_coco if fmt == "coco" else open_voc
        ds = opener(sub_root, name, classes, problems=problems)
        classes = classes or ds.classes
        opened.append(ds)
    if len(opened) == 1:
        return opened[0]
    records, seen = [], set()
    for ds in opened:
        if ds.classes != opened[0].classes:
            raise DataError(f"splits {parts[0]} and {ds.name} have different classes")
        for r in ds.records:
            if r.image_id in seen:
                raise DataError(f"image id {r.image_id} appears in more than one of the splits {split}")
            seen.add(r.image_id)
            records.append(r)
    return DatasetSplit(
        name=split, root=root, classes=opened[0].classes, records=records, format=fmt, extra=opened[0].extra
    )


def open_from_config(cfg: DataConfig, split: str, *, problems: list[str] | None = None) -> DatasetSplit:
    root = data_root(cfg)
    return open_split(root, split, fmt=cfg.format, classes=cfg.classes, problems=problems)
