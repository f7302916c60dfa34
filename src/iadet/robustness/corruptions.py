"""Image corruptions of the robustness benchmark of Michaelis et al. (2019).

The 15 benchmark corruptions and the 4 extra ones of ``imagecorruptions`` (the code behind
"Benchmarking Robustness in Object Detection") at severities 1-5, applied to the original image
before the detector's own resizing, and seeded per image so that reruns agree.

Backend
-------
The maintained fork ``imagecorruptions-imaug`` (PyPI, installed as the ``imagecorruptions``
package): the original's corruptions and constants, running on NumPy 2 and current
scikit-image / SciPy / setuptools, with ``glass_blur``'s pixel shuffle compiled by numba
(hundreds of times faster than the original's Python loop). Its differences from release 1.1.2
are listed in docs/robustness.md: ``glass_blur`` draws its shuffle from numba's RNG, ``frost``
picks among all 6 of its frost images (1.1.2 never picked the 6th) and ``fog`` builds its
plasma fractal in float32.

Randomness
----------
The package draws from the global ``np.random`` state, except ``glass_blur`` and
``impulse_noise``, which take a ``seed`` argument (without one they draw fresh OS entropy).
:func:`corrupt` seeds the global state with ``seed``, hands those two a seed drawn from it,
runs the corruption, and restores the previous state, all under a module lock, so the result
depends only on (image, name, severity, seed) and the caller's global RNG stream is left
untouched. Other threads that use ``np.random`` at the same moment without going through
:func:`corrupt` are not protected (data-loader workers are processes, so they are).
Use :func:`image_seed` to derive a stable per-image seed from a base seed and an image id.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from iadet.errors import ConfigError, DataError, IadetError, closest

__all__ = [
    "ALL",
    "BENCHMARK",
    "EXTRA",
    "GROUPS",
    "MIN_SIDE",
    "SEVERITIES",
    "corrupt",
    "image_seed",
    "prepare",
    "resolve_corruptions",
]

BENCHMARK: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
"""The 15 benchmark corruptions, in the benchmark's order."""

EXTRA: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
"""The 4 held-out corruptions that ``all`` adds (imagecorruptions' "validation" subset)."""

ALL: tuple[str, ...] = BENCHMARK + EXTRA

GROUPS: dict[str, tuple[str, ...]] = {
    "noise": BENCHMARK[0:3],
    "blur": BENCHMARK[3:7],
    "weather": BENCHMARK[7:11],
    "digital": BENCHMARK[11:15],
}
"""The benchmark's four categories, as imagecorruptions defines them."""

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

MIN_SIDE = 32
"""imagecorruptions refuses images smaller than this; smaller ones are padded (see :func:`corrupt`)."""

_SEED_LIMIT = 2**32
_INSTALL_HINT = "pip install numba && pip install --no-deps imagecorruptions-imaug==1.1.5"
_OWN_SEED = ("glass_blur", "impulse_noise")
"""The corruptions that take a ``seed`` argument instead of drawing from the global NumPy RNG."""

# One lock for the lazy import and for every use of the global NumPy RNG in corrupt().
_LOCK = threading.RLock()
_BACKEND: dict[str, Callable[..., Any]] | None = None


# --------------------------------------------------------------------------- selection


def resolve_corruptions(spec: str) -> list[str]:
    """Expand a ``--corruptions`` value into corruption names.

    ``spec`` is ``benchmark`` (the 15), ``all`` (the 15 and the 4 extra), a group (``noise``,
    ``blur``, ``weather``, ``digital``), a corruption name, or a comma-separated mix of these
    (``fog,snow``, ``noise,fog``). Case, surrounding spaces and ``-`` for ``_`` are forgiven;
    duplicates are dropped, keeping the first occurrence.

    Raises:
        ConfigError: for an empty spec or an unknown name, naming it.
    """
    names: list[str] = []
    tokens = [t.strip().lower().replace("-", "_") for t in str(spec).split(",")]
    if not any(tokens):
        raise ConfigError("--corruptions is empty: give benchmark, all, a group or corruption names")
    for token in filter(None, tokens):
        if token == "benchmark":
            expanded: tuple[str, ...] = BENCHMARK
        elif token == "all":
            expanded = ALL
        elif token in GROUPS:
            expanded = GROUPS[token]
        elif token in ALL:
            expanded = (token,)
        else:
            keywords = ("benchmark", "all", *GROUPS)
            hint = closest(token, (*keywords, *ALL)) or (
                f"; valid: {', '.join(keywords)} or a name among {', '.join(ALL)}"
            )
            raise ConfigError(f"unknown corruption '{token}' in --corruptions{hint}")
        names.extend(n for n in expanded if n not in names)
    return names


def _check_name(name: str) -> str:
    if name not in ALL:
        hint = closest(str(name), ALL) or f"; valid: {', '.join(ALL)}"
        raise ConfigError(f"unknown corruption '{name}'{hint}")
    return name


def _check_int(value: object, what: str, low: int, high: int) -> int:
    """``value`` as an int in ``[low, high)``, or a ConfigError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value < high:
        raise ConfigError(f"{what} must be an integer in [{low}, {high - 1}], got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- seeds


def image_seed(base_seed: int, image_id: str | int) -> int:
    """A stable seed in ``[0, 2**32)`` for one image, from the run's seed and the image's id.

    Uses BLAKE2b of ``"<base_seed>:<image_id>"``, so it is the same in every process and on
    every machine (Python's ``hash`` of a str is salted per process). ``image_id`` is taken by
    its ``str()``: ``7`` and ``"7"`` give the same seed. The same seed is meant to be used for
    all corruptions and severities of that image.
    """
    base = _check_int(base_seed, "seed", 0, 2**63)
    digest = hashlib.blake2b(f"{base}:{image_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


# --------------------------------------------------------------------------- the backend


def _backend() -> dict[str, Callable[..., Any]]:
    """imagecorruptions' corruption functions by name, imported once."""
    global _BACKEND
    with _LOCK:
        if _BACKEND is None:
            try:
                import imagecorruptions
                from imagecorruptions import corruptions as module
            except ModuleNotFoundError as exc:
                if exc.name not in ("imagecorruptions", "numba"):
                    raise
                raise IadetError(
                    f"the corruption benchmark needs the imagecorruptions-imaug package: {_INSTALL_HINT}"
                ) from None
            if any("seed" not in inspect.signature(getattr(module, n)).parameters for n in _OWN_SEED):
                raise IadetError(
                    "the installed imagecorruptions is the unmaintained release (1.1.2), not "
                    f"imagecorruptions-imaug: pip uninstall imagecorruptions && {_INSTALL_HINT}"
                )
            missing = [name for name in ALL if name not in imagecorruptions.corruption_dict]
            if missing:
                raise IadetError(f"imagecorruptions lacks {', '.join(missing)}: {_INSTALL_HINT}")
            _BACKEND = {name: imagecorruptions.corruption_dict[name] for name in ALL}
        return _BACKEND


def prepare(names: Iterable[str] = ALL) -> None:
    """Import the backend and run each corruption once on a tiny image.

    ``glass_blur``'s numba kernel compiles on its first call (a few seconds); called in the
    main process before data-loader workers are forked, it is compiled once instead of once
    per worker and pass.
    """
    tiny = np.zeros((MIN_SIDE, MIN_SIDE, 3), np.uint8)
    for name in names:
        corrupt(tiny, name, 1, seed=0)


# --------------------------------------------------------------------------- corrupt


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """Validate an input image and return it as a contiguous HxWx3 uint8 copy."""
    if not isinstance(image, np.ndarray):
        raise DataError(f"image to corrupt must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise DataError(f"image to corrupt must be uint8, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise DataError(f"image to corrupt must be HxW, HxWx1 or HxWx3, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise DataError(f"image to corrupt is empty, shape {image.shape}")
    return np.ascontiguousarray(np.broadcast_to(image, (*image.shape[:2], 3)))


def _normalise_output(result: Any, height: int, width: int) -> np.ndarray:
    """Turn a corruption's result (float or uint8 array, PIL image, HxW) into HxWx3 uint8.

    A larger result is cropped to its top-left ``height`` x ``width``, a smaller one resized.
    """
    from PIL import Image

    out = np.asarray(result)
    if out.dtype != np.uint8:
        # Clip, then truncate as imagecorruptions' own corrupt() does with np.uint8(...).
        out = np.clip(np.nan_to_num(out, nan=0.0), 0, 255).astype(np.uint8)
    if out.ndim == 2:
        out = out[:, :, None]
    if out.shape[2] != 3:
        out = np.broadcast_to(out[:, :, :1], (*out.shape[:2], 3))
    out = out[:height, :width]
    if out.shape[:2] != (height, width):
        out = np.asarray(Image.fromarray(np.ascontiguousarray(out)).resize((width, height), Image.BILINEAR))
    return np.ascontiguousarray(out)


def corrupt(image: np.ndarray, name: str, severity: int, *, seed: int) -> np.ndarray:
    """Apply corruption ``name`` at ``severity`` (1-5) to an RGB image, reproducibly.

    Args:
        image: HxWx3 uint8 RGB; HxW or HxWx1 grayscale is accepted and treated as gray RGB.
            Not modified.
        name: one of :data:`ALL`.
        severity: 1 to 5.
        seed: in ``[0, 2**32)``; the result depends only on (image, name, severity, seed).
            See :func:`image_seed`.

    Returns:
        A new HxWx3 uint8 RGB array of the input's height and width (always 3 channels, also
        for grayscale input). Float results are clipped to [0, 255] and truncated, like the
        package's own ``corrupt()``. Images smaller than 32 pixels on a side, which the
        package refuses, are mirror-padded to 32, corrupted, and cropped back.

    Raises:
        ConfigError: unknown name, severity outside 1-5, bad seed.
        DataError: not a uint8 HxW/HxWx1/HxWx3 array.
        IadetError: imagecorruptions-imaug is not installed.
    """
    _check_name(name)
    severity = _check_int(severity, "severity", 1, 6)
    seed = _check_int(seed, "seed", 0, _SEED_LIMIT)
    rgb = _as_rgb(image)
    height, width = rgb.shape[:2]
    pad_h, pad_w = max(0, MIN_SIDE - height), max(0, MIN_SIDE - width)
    if pad_h or pad_w:
        rgb = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")

    from PIL import Image

    function = _backend()[name]
    with _LOCK:
        state = np.random.get_state()
        try:
            np.random.seed(seed)
            kwargs = {"seed": int(np.random.randint(0, 2**31 - 1))} if name in _OWN_SEED else {}
            result = function(Image.fromarray(rgb), severity, **kwargs)
        finally:
            np.random.set_state(state)
    return _normalise_output(result, *rgb.shape[:2])[:height, :width].copy()
