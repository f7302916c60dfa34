"""Image corruptions of the robustness benchmark of Michaelis et al. (2019).

The 15 benchmark corruptions and the 4 extra ones of the ``imagecorruptions`` package (release
1.1.2, the code behind "Benchmarking Robustness in Object Detection") at severities 1-5,
applied to the original image before the detector's own resizing, and seeded per image so that
reruns agree.

Compatibility shim
------------------
Release 1.1.2 (the last on PyPI) does not run unchanged on NumPy 2, current scikit-image and a
setuptools without ``pkg_resources``. Rather than copying its code into ours, :func:`_backend`
imports the package once and then fixes exactly these points, each only inside the package's
own module ``imagecorruptions.corruptions`` (numpy, scikit-image, scipy and ``sys.modules``
stay as they were for everyone else):

1. ``from pkg_resources import resource_filename`` (used to find the bundled frost images)
   fails without setuptools' ``pkg_resources``: during that one import a stand-in module whose
   ``resource_filename`` resolves a path next to the package's module is put in
   ``sys.modules``; it is taken out again right after.
2. ``from scipy.ndimage.interpolation import map_coordinates`` uses a namespace deprecated
   since SciPy 1.8 and due to go in SciPy 2.0: the same temporary stand-in mechanism hands it
   ``scipy.ndimage.map_coordinates`` (the very same function), without the warning.
3. ``glass_blur`` and ``gaussian_blur`` call ``skimage.filters.gaussian(..., multichannel=True)``,
   an argument removed in scikit-image 0.21: the module's name ``gaussian`` is rebound to a
   wrapper that turns ``multichannel=True`` into ``channel_axis=-1`` (what it meant).
4. ``fog`` builds its plasma fractal with ``np.float_``, removed in NumPy 2: the module's name
   ``np`` is rebound to a proxy of numpy that adds ``float_ = np.float64`` (what it was).
5. ``impulse_noise`` calls ``skimage.util.random_noise``, which since scikit-image 0.19 draws
   from a fresh ``default_rng()`` instead of the global NumPy RNG, so seeding could not make it
   reproducible: the module's name ``sk`` is rebound to a proxy whose ``util.random_noise``
   passes an ``rng`` drawn from the global NumPy RNG.

Everything else, the corruption code and its constants, is the package's own.

Randomness
----------
The package draws from the global ``np.random`` state. :func:`corrupt` seeds that state with
``seed``, runs the corruption, and restores the previous state, all under a module lock, so
the result depends only on (image, name, severity, seed) and the caller's global RNG stream
is left untouched. Other threads that use ``np.random`` at the same moment without going
through :func:`corrupt` are not protected (data-loader workers are processes, so they are).
Use :func:`image_seed` to derive a stable per-image seed from a base seed and an image id.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
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
_INSTALL_HINT = "pip install --no-deps imagecorruptions==1.1.2"

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


# --------------------------------------------------------------------------- the shim


class _ModuleProxy(types.ModuleType):
    """A module that reads like ``target`` except for a few overridden attributes."""

    def __init__(self, target: types.ModuleType, **overrides: Any) -> None:
        super().__init__(target.__name__, target.__doc__)
        self.__dict__.update(overrides)
        self.__dict__["_iadet_target"] = target

    def __getattr__(self, name: str) -> Any:  # only called for names not overridden
        return getattr(self.__dict__["_iadet_target"], name)


def _resource_filename(module_name: str, resource: str) -> str:
    """Stand-in for ``pkg_resources.resource_filename`` for a package installed as files."""
    module = sys.modules.get(module_name) or importlib.import_module(module_name)
    return str((Path(module.__file__).parent / resource).resolve())


@contextmanager
def _import_standins() -> Iterator[None]:
    """Let imagecorruptions' module-level imports of ``pkg_resources`` and
    ``scipy.ndimage.interpolation`` succeed, without leaving anything in ``sys.modules``."""
    import scipy.ndimage

    pkg_resources = types.ModuleType("pkg_resources", "iadet stand-in used while importing imagecorruptions")
    pkg_resources.resource_filename = _resource_filename  # type: ignore[attr-defined]
    interpolation = types.ModuleType("scipy.ndimage.interpolation", "iadet stand-in")
    interpolation.map_coordinates = scipy.ndimage.map_coordinates  # type: ignore[attr-defined]
    standins = {"pkg_resources": pkg_resources, "scipy.ndimage.interpolation": interpolation}
    saved = {name: sys.modules.get(name) for name in standins}
    sys.modules.update(standins)
    try:
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


def _gaussian_accepting_multichannel(gaussian: Callable[..., Any]) -> Callable[..., Any]:
    def gaussian_compat(image: Any, *args: Any, multichannel: bool | None = None, **kwargs: Any) -> Any:
        """``skimage.filters.gaussian`` that also takes the removed ``multichannel`` argument."""
        if multichannel is not None and "channel_axis" not in kwargs:
            kwargs["channel_axis"] = -1 if multichannel else None
        return gaussian(image, *args, **kwargs)

    return gaussian_compat


def _random_noise_from_global_rng(random_noise: Callable[..., Any], param: str) -> Callable[..., Any]:
    def random_noise_seeded(image: Any, *args: Any, **kwargs: Any) -> Any:
        """``skimage.util.random_noise`` drawing its generator's seed from the global NumPy RNG."""
        drawn = int(np.random.randint(0, 2**31 - 1))
        if len(args) >= 2:  # rng/seed is the third positional
            args = (args[0], drawn if args[1] is None else args[1], *args[2:])
        elif kwargs.get(param) is None:
            kwargs[param] = drawn
        return random_noise(image, *args, **kwargs)

    random_noise_seeded._iadet_global_rng = True  # type: ignore[attr-defined]
    return random_noise_seeded


def _patch(module: types.ModuleType) -> None:
    """Apply fixes 3-5 of the module docstring to imagecorruptions' ``corruptions`` module.

    Each fix is applied only when the running library needs it and it is not applied yet.
    """
    if not hasattr(module.np, "float_"):
        module.np = _ModuleProxy(np, float_=np.float64)
    if "multichannel" not in inspect.signature(module.gaussian).parameters:
        module.gaussian = _gaussian_accepting_multichannel(module.gaussian)
    random_noise = module.sk.util.random_noise
    params = inspect.signature(random_noise).parameters
    param = "rng" if "rng" in params else "seed" if "seed" in params else None
    if param is not None and not getattr(random_noise, "_iadet_global_rng", False):
        util = _ModuleProxy(module.sk.util, random_noise=_random_noise_from_global_rng(random_noise, param))
        module.sk = _ModuleProxy(module.sk, util=util)


def _backend() -> dict[str, Callable[..., Any]]:
    """imagecorruptions' corruption functions by name, imported and patched once."""
    global _BACKEND
    with _LOCK:
        if _BACKEND is None:
            try:
                with _import_standins():
                    package = importlib.import_module("imagecorruptions")
            except ModuleNotFoundError as exc:
                if exc.name != "imagecorruptions":
                    raise
                raise IadetError(
                    f"the corruption benchmark needs the imagecorruptions package: {_INSTALL_HINT}"
                ) from None
            _patch(importlib.import_module("imagecorruptions.corruptions"))
            missing = [name for name in ALL if name not in package.corruption_dict]
            if missing:
                raise IadetError(f"imagecorruptions lacks {', '.join(missing)}: {_INSTALL_HINT}")
            _BACKEND = {name: package.corruption_dict[name] for name in ALL}
        return _BACKEND


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
        IadetError: imagecorruptions is not installed.
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
            result = function(Image.fromarray(rgb), severity)
        finally:
            np.random.set_state(state)
    return _normalise_output(result, *rgb.shape[:2])[:height, :width].copy()
