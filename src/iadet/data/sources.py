"""Real image material shipped by scikit-learn and scikit-image, split into disjoint pools.

* ``TRAIN_SOURCES`` — colour photographs used for backgrounds and the textures of object parts,
  in every split of the built-in data.
* ``HELDOUT_SOURCES`` — textures used only for occluders (``test_occluded`` and the occlusion
  sweep), never seen in training.
* Digit glyphs: scikit-learn's 1,797 handwritten digits (8x8); even-indexed samples draw the
  training objects, odd-indexed ones the test objects, so test objects are written by unseen hands.

Everything loads offline from the installed packages (no download).
"""

from __future__ import annotations

import functools

import numpy as np

TRAIN_SOURCES: tuple[str, ...] = (
    "sklearn:china",
    "sklearn:flower",
    "skimage:astronaut",
    "skimage:chelsea",
    "skimage:coffee",
    "skimage:rocket",
    "skimage:hubble_deep_field",
    "skimage:immunohistochemistry",
    "skimage:retina",
)
HELDOUT_SOURCES: tuple[str, ...] = (
    "skimage:brick",
    "skimage:grass",
    "skimage:gravel",
    "skimage:coins",
    "skimage:text",
    "skimage:moon",
    "skimage:camera",
    "skimage:page",
    "skimage:clock",
    "skimage:cell",
)
assert not set(TRAIN_SOURCES) & set(HELDOUT_SOURCES)


@functools.cache
def load_source(name: str) -> np.ndarray:
    """``H x W x 3`` float32 in [0, 1] (grayscale sources are replicated to 3 channels)."""
    package, image = name.split(":", 1)
    if package == "sklearn":
        from sklearn.datasets import load_sample_image

        array = load_sample_image(f"{image}.jpg")
    else:
        import skimage.data

        array = getattr(skimage.data, image)()
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    array = array[:, :, :3].astype(np.float32)
    return array / 255.0 if array.max() > 1.0 else array


@functools.cache
def digit_glyphs() -> tuple[np.ndarray, np.ndarray]:
    """``(images (1797, 8, 8) float32 in [0, 1], labels (1797,))`` of scikit-learn's digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


def glyph_pool(digit: int, split: str) -> np.ndarray:
    """Indices of the samples of ``digit`` reserved for ``split`` (train: even, test: odd)."""
    _, labels = digit_glyphs()
    idx = np.nonzero(labels == digit)[0]
    return idx[0::2] if split == "train" else idx[1::2]
