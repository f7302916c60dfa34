"""The pretraining task: a built-in image-classification problem, disjoint from the detection classes.

The papers fine-tune an ImageNet classifier; nothing can be downloaded here, so ``iadet pretrain``
trains the backbone on this stand-in, made from the same bundled material as the detection data
but asking another question. Every image is a 64x64 crop showing **one item** on a cluttered
photo background; its label is one of :data:`CLASSES` (58):

* ``digit-0`` ... ``digit-9``: a handwritten digit of scikit-learn's ``load_digits`` (the
  digit's identity, which the detection task never asks), dark ink on a pale tile of any shape;
* ``<material>-<silhouette>``: an item cut out of one of 8 materials (:data:`MATERIALS`: coin,
  dahlia petals, cat's eye, moon, brick, grass, gravel, coffee) in one of 6 silhouettes
  (:data:`SILHOUETTES`: ellipse, diamond, square, triangle, cross, ring).

Variation within a class: size (45-90% of the crop), aspect (up to 1.35:1), rotation (any angle;
at most 40 degrees for the square and the diamond, which a 45-degree turn would swap), position,
recolouring (a random tint 35% of the time) and hue/brightness/contrast jitter, a dark outline
half of the time, and clutter: 0-3 photo-textured shapes behind the item, one in front of it a
quarter of the time. No label is a detection class: there is one item per image and never the
2x2 part layout that codes a detection class, and no image uses the ``heldout`` sources of
``test_occluded`` (a test tracks the sources each image loads).

Images are pure functions of ``(seed, split, index)`` (:func:`example_rng`); the label of image
``i`` is ``i % len(CLASSES)`` so every split is balanced. Bump :data:`TASK_VERSION` whenever the
output changes, including through the shared synth primitives (parts, sources, colour): the
pretrained weights are cached under a fingerprint that includes it, and a test pins the digest of
a few images.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from iadet.data.synth import color, shapes, sources
from iadet.data.synth.classes import COIN, DAHLIA, EYE
from iadet.data.synth.objects import Sprite, rotate
from iadet.data.synth.parts import render_part
from iadet.data.synth.pieces import piece_mask, random_piece

TASK_VERSION = 1
"""Bumped whenever an image or label for a given (seed, split, index) changes."""

IMAGE_SIZE = 64
"""Side of every (square) image, in pixels."""

MATERIALS: tuple[str, ...] = ("coin", "dahlia", "eye", "moon", "brick", "grass", "gravel", "coffee")
SILHOUETTES: tuple[str, ...] = ("ellipse", "diamond", "square", "triangle", "cross", "ring")
DIGITS: tuple[str, ...] = tuple(f"digit-{d}" for d in range(10))

CLASSES: tuple[str, ...] = DIGITS + tuple(f"{m}-{s}" for m in MATERIALS for s in SILHOUETTES)
"""The 58 labels: 10 digit identities, then material x silhouette."""

SPLITS: dict[str, int] = {"train": 1, "val": 2}
"""``train`` and the held-out ``val``: independent random streams (different per-image seeds)."""

_TASK_TAG = 0x1AD37C15
"""First word of every per-image seed, so no image shares a random stream with the detection data."""

# the texture of each material: a part renderer of the detection data, or a bundled photo
_PART_MATERIALS = {"coin": COIN, "dahlia": DAHLIA, "eye": EYE}
_PHOTO_MATERIALS = {
    "moon": "skimage:moon",
    "brick": "skimage:brick",
    "grass": "skimage:grass",
    "gravel": "skimage:gravel",
    "coffee": "skimage:coffee",
}
_SQUARISH = ("diamond", "square")
"""Silhouettes a 45-degree turn would swap: their rotation stays within :data:`_SQUARISH_ROTATION`."""
_SQUARISH_ROTATION = 40.0


def example_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one image: a pure function of (seed, split, index)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(SPLITS)}")
    return np.random.default_rng([_TASK_TAG, int(seed), SPLITS[split], int(index)])


def label_of(index: int) -> int:
    """The label of image ``index`` of any split: classes in turn, so every split is balanced."""
    return int(index) % len(CLASSES)


def render_example(seed: int, split: str, index: int) -> tuple[np.ndarray, int]:
    """Image ``index`` of ``split``: (64x64x3 uint8, label index into :data:`CLASSES`)."""
    label = label_of(index)
    rng = example_rng(seed, split, index)
    name = CLASSES[label]
    material = None if name in DIGITS else name.split("-")[0]
    image = _background(rng, exclude=_PHOTO_MATERIALS.get(material or ""))
    for _ in range(int(rng.integers(0, 4))):
        _clutter(image, rng, exclude=_PHOTO_MATERIALS.get(material or ""))
    if material is None:
        sprite = _digit(int(name.split("-")[1]), rng)
    else:
        sprite = _item(material, name.split("-")[1], rng)
    _paste_inside(image, sprite, rng)
    if rng.random() < 0.25:  # a small piece of clutter in front of the item
        _clutter(image, rng, exclude=_PHOTO_MATERIALS.get(material or ""), small=True)
    return image, label


def render_split(
    seed: int, split: str, count: int, progress: Callable[[int], None] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` images of ``split``: (N x 64 x 64 x 3 uint8, N int64 labels)."""
    images = np.empty((count, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    labels = np.empty(count, dtype=np.int64)
    for index in range(count):
        images[index], labels[index] = render_example(seed, split, index)
        if progress is not None:
            progress(index + 1)
    return images, labels


# ----------------------------------------------------------------------------------------------
# rendering


def _background(rng: np.random.Generator, exclude: str | None) -> np.ndarray:
    return _photo(IMAGE_SIZE, IMAGE_SIZE, rng, exclude, zoom=(0.7, 4.0))


def _photo(
    height: int, width: int, rng: np.random.Generator, exclude: str | None, zoom: tuple[float, float]
) -> np.ndarray:
    """A crop of a background photo (never the item's own material), sometimes recoloured, jittered."""
    names = [n for n in sources.names_with_role("background") if n != exclude]
    tex = sources.texture(names[int(rng.integers(len(names)))], height, width, rng, zoom=zoom)
    if rng.random() < 0.4:
        tex = color.tint(tex, color.hsv(rng.uniform(0, 1), rng.uniform(0.1, 0.5), rng.uniform(0.4, 0.8)))
    return color.jitter(tex, rng, brightness=0.25, contrast=0.25, saturation=0.3, hue=20.0)


def _clutter(image: np.ndarray, rng: np.random.Generator, exclude: str | None, small: bool = False) -> None:
    """A free-form shape textured with a background photo, smaller than any item."""
    half = rng.uniform(0.06, 0.1 if small else 0.16) * IMAGE_SIZE
    piece = random_piece(
        rng, rng.uniform(0, IMAGE_SIZE), rng.uniform(0, IMAGE_SIZE), half * rng.uniform(0.6, 1.4), half
    )
    rows, cols, mask = piece_mask(piece, IMAGE_SIZE, IMAGE_SIZE)
    if mask.size == 0 or not mask.any():
        return
    tex = _photo(mask.shape[0], mask.shape[1], rng, exclude, zoom=(0.7, 3.0))
    region = image[rows, cols]
    region[mask] = tex[mask]


def _item_size(rng: np.random.Generator) -> tuple[int, int]:
    """(height, width) of an item: longer side 45-90% of the crop, aspect up to 1.35:1."""
    longer = rng.uniform(0.45, 0.9) * IMAGE_SIZE
    aspect = float(np.exp(rng.uniform(-np.log(1.35), np.log(1.35))))
    if aspect >= 1.0:
        return max(6, round(longer / aspect)), max(6, round(longer))
    return max(6, round(longer)), max(6, round(longer * aspect))


def silhouette(kind: str, height: int, width: int) -> np.ndarray:
    """The HxW boolean mask of silhouette ``kind`` (one of :data:`SILHOUETTES`) filling the canvas."""
    y = (np.arange(height, dtype=np.float32) + 0.5)[:, None] / height * 2.0 - 1.0
    x = (np.arange(width, dtype=np.float32) + 0.5)[None, :] / width * 2.0 - 1.0
    if kind == "ellipse":
        return shapes.ellipse(height, width)
    if kind == "diamond":
        return shapes.diamond(height, width)
    if kind == "square":
        return shapes.rounded_rect(height, width, 0.12 * min(height, width))
    if kind == "triangle":  # apex up
        return np.abs(x) <= (y + 1.0) / 2.0
    if kind == "cross":
        return (np.abs(x) <= 0.3) | (np.abs(y) <= 0.3)
    if kind == "ring":
        return shapes.ellipse(height, width) & ~shapes.ellipse(height, width, 0.55)
    raise ValueError(f"unknown silhouette {kind!r}")


def _material(material: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """An HxWx3 uint8 patch of ``material``: a part of the detection data's kind, or a photo texture."""
    if material in _PART_MATERIALS:
        rgb, _ = render_part(_PART_MATERIALS[material], height, width, rng)
    else:
        rgb = sources.texture(_PHOTO_MATERIALS[material], height, width, rng, zoom=(0.5, 2.0))
    if rng.random() < 0.35:  # a texture, not a colour, names the material
        rgb = color.tint(rgb, color.hsv(rng.uniform(0, 1), rng.uniform(0.3, 0.8), rng.uniform(0.45, 0.85)),
                         contrast=rng.uniform(1.0, 1.6))  # fmt: skip
    return color.jitter(rgb, rng, brightness=0.2, contrast=0.2, saturation=0.25, hue=15.0)


def _item(material: str, kind: str, rng: np.random.Generator) -> Sprite:
    height, width = _item_size(rng)
    rgb = _material(material, height, width, rng).astype(np.float32)
    mask = silhouette(kind, height, width)
    if rng.random() < 0.5:
        rgb[shapes.outline(mask, max(1, round(min(height, width) * 0.05)))] *= rng.uniform(0.3, 0.6)
    limit = _SQUARISH_ROTATION if kind in _SQUARISH else 180.0
    return rotate(Sprite(color.to_uint8(rgb), mask), rng.uniform(-limit, limit))


@functools.cache
def _digit_indices() -> tuple[np.ndarray, ...]:
    """Per digit value, the indices of its images in ``sklearn:digits``."""
    from sklearn.datasets import load_digits

    target = load_digits().target
    return tuple(np.flatnonzero(target == d) for d in range(10))


def _digit(value: int, rng: np.random.Generator) -> Sprite:
    """A handwritten ``value`` on a pale rounded tile or disc, turned by up to 25 degrees."""
    from PIL import Image

    height, width = _item_size(rng)
    digits = sources.load("sklearn:digits")
    choices = _digit_indices()[value]
    digit = digits[int(choices[int(rng.integers(len(choices)))])].astype(np.float32) / 16.0
    fill = rng.uniform(0.6, 0.85)
    inner_h, inner_w = max(2, round(height * fill)), max(2, round(width * fill))
    ink = Image.fromarray(digit, mode="F").resize((inner_w, inner_h), Image.Resampling.BILINEAR)
    alpha = np.zeros((height, width), dtype=np.float32)
    top, left = (height - inner_h) // 2, (width - inner_w) // 2
    alpha[top : top + inner_h, left : left + inner_w] = np.clip(np.asarray(ink) * 1.4, 0.0, 1.0)
    paper = color.hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.35), rng.uniform(0.75, 0.98))
    ink_rgb = color.hsv(rng.uniform(0, 1), rng.uniform(0.2, 0.9), rng.uniform(0.03, 0.3))
    rgb = paper * (1.0 - alpha[..., None]) + ink_rgb * alpha[..., None]
    if rng.random() < 0.5:
        mask = shapes.rounded_rect(height, width, rng.uniform(0.1, 0.3) * min(height, width))
    else:
        mask = shapes.ellipse(height, width, 1.05)
    rgb = color.jitter(color.to_uint8(rgb), rng, brightness=0.15, contrast=0.15, hue=10.0)
    return rotate(Sprite(rgb, mask), rng.uniform(-25.0, 25.0))


def _paste_inside(image: np.ndarray, sprite: Sprite, rng: np.random.Generator) -> None:
    """Paste ``sprite`` with its centre drawn so that at least 70% of it (along each axis) lies inside."""
    h, w = sprite.mask.shape
    lo_y, lo_x = min(IMAGE_SIZE / 2, 0.35 * h), min(IMAGE_SIZE / 2, 0.35 * w)
    top = round(rng.uniform(lo_y, IMAGE_SIZE - lo_y) - h / 2)
    left = round(rng.uniform(lo_x, IMAGE_SIZE - lo_x) - w / 2)
    r0, r1 = max(0, top), min(IMAGE_SIZE, top + h)
    c0, c1 = max(0, left), min(IMAGE_SIZE, left + w)
    if r0 >= r1 or c0 >= c1:
        return
    sub = sprite.mask[r0 - top : r1 - top, c0 - left : c1 - left]
    region = image[r0:r1, c0:c1]
    region[sub] = sprite.rgb[r0 - top : r1 - top, c0 - left : c1 - left][sub]
