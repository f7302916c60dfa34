"""Registry of the real image material the generator is built from, and what each is used for.

Every source is an image bundled inside an installed package (scikit-learn, scikit-image):
nothing is downloaded. Each source has exactly **one role**, so the held-out occluder textures
of ``test_occluded`` are disjoint from everything the training split is made of by
construction; :func:`track_use` lets the tests check it from the generator's actual behaviour.

Roles:

``part``
    object parts (digits, coins, the dahlia, the cat's eyes); see ``parts.py``.
``body``
    the texture of object bodies.
``background``
    scene backgrounds and background clutter (also the ``"train"`` occluder source).
``heldout``
    occluders of ``test_occluded`` (and of the robustness occlusion sweep) only.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

ROLES: tuple[str, ...] = ("part", "body", "background", "heldout")

MAX_SIDE = 512
"""Photos are downscaled once so that their longer side is at most this (speed only)."""


@dataclass(frozen=True)
class Source:
    """One bundled image, the role it plays, and how to load it."""

    name: str
    role: str
    loader: Callable[[], np.ndarray]


def _skimage(attr: str, index: int | None = None) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        data = getattr(skimage.data, attr)()
        return data[index] if index is not None else data

    return load


def _sklearn_photo(index: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_images

        return load_sample_images().images[index]

    return load


def _sklearn_digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().images.astype(np.uint8)  # (1797, 8, 8), values 0..16


_ALL = (
    # parts
    Source("sklearn:digits", "part", _sklearn_digits),
    Source("skimage:coins", "part", _skimage("coins")),
    Source("sklearn:flower", "part", _sklearn_photo(1)),
    Source("skimage:chelsea", "part", _skimage("chelsea")),
    # bodies
    Source("skimage:moon", "body", _skimage("moon")),
    # backgrounds and clutter
    Source("sklearn:china", "background", _sklearn_photo(0)),
    Source("skimage:astronaut", "background", _skimage("astronaut")),
    Source("skimage:brick", "background", _skimage("brick")),
    Source("skimage:camera", "background", _skimage("camera")),
    Source("skimage:coffee", "background", _skimage("coffee")),
    Source("skimage:grass", "background", _skimage("grass")),
    Source("skimage:gravel", "background", _skimage("gravel")),
    Source("skimage:rocket", "background", _skimage("rocket")),
    Source("skimage:text", "background", _skimage("text")),
    Source("skimage:page", "background", _skimage("page")),
    # held out: occluders of test_occluded, never used for trainval or test
    Source("skimage:retina", "heldout", _skimage("retina")),
    Source("skimage:motorcycle_left", "heldout", _skimage("stereo_motorcycle", 0)),
    Source("skimage:hubble_deep_field", "heldout", _skimage("hubble_deep_field")),
    Source("skimage:immunohistochemistry", "heldout", _skimage("immunohistochemistry")),
    Source("skimage:cell", "heldout", _skimage("cell")),
)

SOURCES: dict[str, Source] = {s.name: s for s in _ALL}
"""Every source by name. A name appears once, so each source has exactly one role."""

_tracking: list[set[str]] = []


def names_with_role(role: str) -> tuple[str, ...]:
    """Names of the sources playing ``role`` (one of :data:`ROLES`), in registry order."""
    if role not in ROLES:
        raise ValueError(f"unknown source role {role!r}; expected one of {ROLES}")
    return tuple(s.name for s in _ALL if s.role == role)


@contextlib.contextmanager
def track_use() -> Iterator[set[str]]:
    """Record the names of the sources loaded inside the ``with`` block (for tests)."""
    used: set[str] = set()
    _tracking.append(used)
    try:
        yield used
    finally:
        _tracking.remove(used)


def load(name: str) -> np.ndarray:
    """A source's pixels: photos as HxWx3 uint8 (longer side <= :data:`MAX_SIDE`), digits as (N,8,8)."""
    for used in _tracking:
        used.add(name)
    return _load_cached(name)


@functools.cache
def _load_cached(name: str) -> np.ndarray:
    raw = np.array(SOURCES[name].loader())
    if name == "sklearn:digits":
        raw.setflags(write=False)
        return raw
    if raw.dtype == bool:
        raw = raw.astype(np.uint8) * 255
    elif raw.dtype != np.uint8:
        raw = np.clip(raw * 255.0 if raw.max() <= 1.0 else raw, 0, 255).astype(np.uint8)
    if raw.ndim == 2:
        raw = np.repeat(raw[..., None], 3, axis=2)
    raw = np.ascontiguousarray(raw[..., :3])
    h, w = raw.shape[:2]
    if max(h, w) > MAX_SIDE:
        scale = MAX_SIDE / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        raw = np.asarray(Image.fromarray(raw).resize(size, Image.Resampling.BILINEAR))
    raw.setflags(write=False)
    return raw


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an HxWx3 uint8 image with Pillow (bilinear, antialiased when shrinking)."""
    if image.shape[:2] == (height, width):
        return image
    out = Image.fromarray(image).resize((max(1, width), max(1, height)), Image.Resampling.BILINEAR)
    return np.asarray(out)


def crop_resized(
    image: np.ndarray, top: float, left: float, crop_h: float, crop_w: float, height: int, width: int
) -> np.ndarray:
    """Cut the window (top, left, crop_h, crop_w) of ``image`` (clamped inside it) and resize it."""
    h, w = image.shape[:2]
    ch = int(np.clip(round(crop_h), 1, h))
    cw = int(np.clip(round(crop_w), 1, w))
    y0 = int(np.clip(round(top), 0, h - ch))
    x0 = int(np.clip(round(left), 0, w - cw))
    return resize(np.ascontiguousarray(image[y0 : y0 + ch, x0 : x0 + cw]), height, width)


def texture(
    name: str, height: int, width: int, rng: np.random.Generator, zoom: tuple[float, float] = (0.6, 2.0)
) -> np.ndarray:
    """A random ``height`` x ``width`` crop of source ``name``.

    The crop covers ``zoom`` times the output size in source pixels (log-uniform), so the same
    photo gives textures at several scales.
    """
    image = load(name)
    h, w = image.shape[:2]
    z = float(np.exp(rng.uniform(np.log(zoom[0]), np.log(zoom[1]))))
    crop_h = min(h, max(2.0, height * z))
    crop_w = min(w, max(2.0, width * z))
    top = rng.uniform(0, h - crop_h + 1e-9)
    left = rng.uniform(0, w - crop_w + 1e-9)
    return crop_resized(image, top, left, crop_h, crop_w, height, width)
