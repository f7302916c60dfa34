"""A directory of corrupted images, so that a second detector (or a rerun) does not corrupt again.

A corrupted image is a function of (image pixels, corruption, severity, seed) and of the corruption
library's version (:func:`iadet.robustness.corruptions.corrupt`), so that is its key::

    DIR/<library>-<version>/<corruption>/<severity>/<digest[:2]>/<digest>-<seed as 8 hex digits>.png

``digest`` is BLAKE2b-128 of the decoded image (its shape and its RGB bytes), so the same picture
under another path or name shares its entries and a changed file never matches a stale one. The
seed is the per-image seed (:func:`iadet.robustness.corruptions.image_seed` of the run's seed and the
image id). PNG is lossless: an image read back is bit-identical to the one computed.

Writes go to a temporary file in the same directory, flushed and renamed into place
(``os.replace``), so an interrupted run leaves only whole entries (and perhaps ``.*.tmp`` files,
which are ignored); several workers or processes may fill one cache at once. An entry that cannot
be read, or whose size is not the image's, is recomputed and rewritten.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from iadet.errors import ConfigError

__all__ = ["CorruptionCache", "image_digest"]


def image_digest(image: np.ndarray) -> str:
    """BLAKE2b-128 hex digest of an ``(H, W, C)`` uint8 image's shape and bytes."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(image.shape).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


def _backend_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("imagecorruptions-imaug", "imagecorruptions"):
        try:
            return f"{dist}-{version(dist)}"
        except PackageNotFoundError:
            continue
    return "imagecorruptions-unknown"


class CorruptionCache:
    """Corrupted images on disk under ``root`` (created if missing)."""

    def __init__(self, root: str | Path, *, version: str | None = None) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"--cache {self.root}: exists and is not a directory")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--cache {self.root}: cannot create it ({exc.strerror})") from None
        if not os.access(self.root, os.W_OK):
            raise ConfigError(f"--cache {self.root}: not writable")
        self.version = version or _backend_version()

    def path(self, digest: str, name: str, severity: int, seed: int) -> Path:
        """Where the entry of (image ``digest``, ``name``, ``severity``, per-image ``seed``) lives."""
        return self.root / self.version / name / str(int(severity)) / digest[:2] / f"{digest}-{seed:08x}.png"

    def load(self, path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
        """The cached image at ``path``, or None when missing, unreadable or not of ``shape``."""
        try:
            with Image.open(path) as im:
                out = np.array(im.convert("RGB"))
        except (OSError, ValueError, SyntaxError):
            return None
        return out if out.shape == tuple(shape) else None

    def save(self, path: Path, image: np.ndarray) -> None:
        """Write ``image`` (HxWx3 uint8) to ``path`` atomically. A failure to write (a full disk)
        is not an error of the benchmark, whose image was computed: it is warned about, once."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
        except OSError as exc:
            warnings.warn(f"corruption cache: cannot write under {self.root} ({exc.strerror})", stacklevel=2)
            return
        try:
            with os.fdopen(fd, "wb") as f:
                Image.fromarray(image).save(f, format="PNG", compress_level=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            warnings.warn(f"corruption cache: cannot write under {self.root} ({exc.strerror})", stacklevel=2)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
