"""Rendering of the four part kinds from real image material.

Each part kind has its own material, colour and silhouette, so that it stays recognisable
when only a few pixels wide, and varies between instances (another digit and writer, another
coin, another region of the flower, the other eye, colour jitter):

* ``glyph``: one of the 1797 handwritten digits of scikit-learn, dark ink on a pale rounded tile;
* ``coin``: one of the 24 coins of scikit-image ``coins``, tinted gold/silver/bronze, round;
* ``dahlia``: a crop of the dahlia of scikit-learn ``flower.jpg``, orange petals, a diamond;
* ``eye``: one of the two eyes of scikit-image ``chelsea``, green iris and black pupil, an ellipse.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from iadet.data.synth import color, shapes, sources
from iadet.data.synth.classes import COIN, DAHLIA, EYE, GLYPH

# (centre row, centre col, radius) of the 24 coins in skimage.data.coins(), measured once.
_COINS: tuple[tuple[int, int, int], ...] = (
    (52, 44, 22), (56, 100, 19), (51, 155, 22), (50, 215, 23), (52, 275, 20), (44, 333, 28),
    (124, 44, 20), (125, 102, 19), (127, 153, 19), (123, 206, 20), (118, 270, 25), (125, 337, 19),
    (197, 43, 19), (195, 101, 22), (197, 154, 19), (193, 212, 24), (193, 274, 22), (185, 345, 30),
    (259, 46, 28), (265, 113, 21), (261, 171, 27), (263, 243, 24), (263, 300, 25), (267, 358, 22),
)  # fmt: skip
# (centre row, centre col, half-height, half-width) of the cat's eyes in skimage.data.chelsea().
_EYES: tuple[tuple[int, int, int, int], ...] = ((115, 170, 29, 34), (136, 321, 27, 23))
# (centre row, centre col, radius) of the dahlia in sklearn's flower.jpg.
_DAHLIA = (222, 307, 135)

_METALS = (np.array([222, 180, 70.0]), np.array([200, 200, 210.0]), np.array([200, 125, 60.0]))


def render_part(
    kind: int, height: int, width: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Render part ``kind`` (index into ``PART_KINDS``) as (HxWx3 uint8 colours, HxW bool silhouette)."""
    height, width = max(2, int(height)), max(2, int(width))
    if kind == GLYPH:
        return _glyph(height, width, rng)
    if kind == COIN:
        return _coin(height, width, rng)
    if kind == DAHLIA:
        return _dahlia(height, width, rng)
    if kind == EYE:
        return _eye(height, width, rng)
    raise ValueError(f"unknown part kind {kind}")


def _glyph(height: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    digits = sources.load("sklearn:digits")
    digit = digits[int(rng.integers(len(digits)))].astype(np.float32) / 16.0
    inner_h, inner_w = max(1, round(height * 0.84)), max(1, round(width * 0.84))
    ink = Image.fromarray(digit, mode="F").resize((inner_w, inner_h), Image.Resampling.BILINEAR)
    alpha = np.zeros((height, width), dtype=np.float32)
    top, left = (height - inner_h) // 2, (width - inner_w) // 2
    alpha[top : top + inner_h, left : left + inner_w] = np.clip(np.asarray(ink) * 1.4, 0.0, 1.0)
    paper = color.hsv(rng.uniform(0.08, 0.17), rng.uniform(0.05, 0.2), rng.uniform(0.86, 0.98))
    ink_rgb = color.hsv(rng.uniform(0.0, 1.0), rng.uniform(0.3, 0.8), rng.uniform(0.05, 0.25))
    rgb = paper * (1.0 - alpha[..., None]) + ink_rgb * alpha[..., None]
    mask = shapes.rounded_rect(height, width, 0.22 * min(height, width))
    return color.to_uint8(rgb), mask


def _coin(height: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    image = sources.load("skimage:coins")
    cy, cx, r = _COINS[int(rng.integers(len(_COINS)))]
    r = r * rng.uniform(0.95, 1.05)
    cy, cx = cy + rng.uniform(-1.5, 1.5), cx + rng.uniform(-1.5, 1.5)
    patch = sources.crop_resized(image, cy - r, cx - r, 2 * r, 2 * r, height, width)
    metal = _METALS[int(rng.integers(len(_METALS)))] * rng.uniform(0.85, 1.1)
    rgb = color.tint(patch, metal, contrast=rng.uniform(1.1, 1.5))
    return color.jitter(rgb, rng, hue=5.0), shapes.ellipse(height, width, 0.97)


def _dahlia(height: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    image = sources.load("sklearn:flower")
    cy, cx, radius = _DAHLIA
    half = radius * rng.uniform(0.25, 0.5)
    reach = max(0.0, radius * 0.8 - half * 1.2)  # the diamond's corners stay on the petals
    angle = rng.uniform(0, 2 * np.pi)
    dist = reach * np.sqrt(rng.uniform(0, 1))
    top, left = cy + dist * np.sin(angle) - half, cx + dist * np.cos(angle) - half
    patch = sources.crop_resized(image, top, left, 2 * half, 2 * half, height, width)
    patch = np.rot90(patch, int(rng.integers(4))) if height == width else patch
    return color.jitter(np.ascontiguousarray(patch), rng, hue=6.0), shapes.diamond(height, width)


def _eye(height: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    image = sources.load("skimage:chelsea")
    cy, cx, hh, hw = _EYES[int(rng.integers(len(_EYES)))]
    z = rng.uniform(0.95, 1.15)
    cy, cx = cy + rng.uniform(-2, 2), cx + rng.uniform(-2, 2)
    patch = sources.crop_resized(image, cy - hh * z, cx - hw * z, 2 * hh * z, 2 * hw * z, height, width)
    if rng.random() < 0.5:
        patch = np.ascontiguousarray(patch[:, ::-1])
    return color.jitter(patch, rng, hue=6.0), shapes.ellipse(height, width, 0.98)
