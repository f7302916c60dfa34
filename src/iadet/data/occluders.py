"""Occluders pasted over objects: ``test_occluded`` and the occlusion sweep on any dataset.

An occluder is a textured piece cut from a held-out image (:data:`iadet.data.sources.HELDOUT_SOURCES`,
never used in training), tinted and contrast-jittered, shaped as a band entering the box from
one side or as a block inside it, sized so it covers the requested fraction of the box.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from iadet.data.sources import HELDOUT_SOURCES, TRAIN_SOURCES, load_source


def texture(source_names: tuple[str, ...], height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop of a random source, resized to ``height x width``: float32 ``(H, W, 3)`` in [0, 1]."""
    src = load_source(source_names[int(rng.integers(len(source_names)))])
    sh, sw = src.shape[:2]
    scale = rng.uniform(0.15, 0.6)
    ch = max(8, min(sh, int(sh * scale)))
    cw = max(8, min(sw, int(ch * rng.uniform(0.7, 1.4))))
    y = int(rng.integers(0, sh - ch + 1))
    x = int(rng.integers(0, sw - cw + 1))
    crop = (src[y : y + ch, x : x + cw] * 255).astype(np.uint8)
    resized = Image.fromarray(crop).resize((max(width, 1), max(height, 1)), Image.BILINEAR)
    return np.asarray(resized, dtype=np.float32) / 255.0


def occluder_texture(
    height: int, width: int, rng: np.random.Generator, source: str = "heldout"
) -> np.ndarray:
    """A held-out texture with a random tint and contrast, float32 ``(H, W, 3)`` in [0, 1]."""
    names = HELDOUT_SOURCES if source == "heldout" else TRAIN_SOURCES
    tex = texture(names, height, width, rng)
    gray = tex.mean(axis=2, keepdims=True)
    tint = rng.uniform(0.25, 1.0, size=3).astype(np.float32)
    contrast = rng.uniform(0.6, 1.3)
    out = (gray - 0.5) * contrast + 0.5
    return np.clip(out * tint[None, None, :] * rng.uniform(0.8, 1.6), 0.0, 1.0)


def occluder_mask(
    box: tuple[int, int, int, int], fraction: float, rng: np.random.Generator
) -> tuple[slice, slice]:
    """Pixel slices (rows, cols) of an occluder covering ``fraction`` of the integer box ``(x1, y1, x2, y2)``
    (inclusive): a band from one side (60%) or a block inside (40%)."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1 + 1, y2 - y1 + 1
    fraction = float(np.clip(fraction, 0.0, 1.0))
    if rng.random() < 0.6:
        side = int(rng.integers(4))
        if side in (0, 1):  # left / right band
            depth = int(round(fraction * w))
            cols = slice(x1, x1 + depth) if side == 0 else slice(x2 + 1 - depth, x2 + 1)
            return slice(y1, y2 + 1), cols
        depth = int(round(fraction * h))
        rows = slice(y1, y1 + depth) if side == 2 else slice(y2 + 1 - depth, y2 + 1)
        return rows, slice(x1, x2 + 1)
    # a block: aspect chosen so it fits, area = fraction * box area
    area = fraction * w * h
    lo = max(area / h, 1.0)  # narrowest width that fits in the height
    hi = min(float(w), area)  # widest width that fits
    bw = int(round(np.clip(np.sqrt(area) * rng.uniform(0.7, 1.4), lo, max(lo, hi))))
    bw = max(0, min(w, bw))
    bh = int(round(area / bw)) if bw > 0 else 0
    bh = max(0, min(h, bh))
    ox = x1 + int(rng.integers(0, w - bw + 1))
    oy = y1 + int(rng.integers(0, h - bh + 1))
    return slice(oy, oy + bh), slice(ox, ox + bw)


def _int_box(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (int(np.floor(v)) for v in box)
    return max(0, x1), max(0, y1), min(width - 1, x2), min(height - 1, y2)


def paste_occluders(
    image: np.ndarray,
    boxes: np.ndarray,
    fraction: float | np.ndarray,
    rng: np.random.Generator,
    *,
    source: str = "heldout",
) -> tuple[np.ndarray, np.ndarray]:
    """Paste one occluder per box covering ``fraction`` of it.

    Args:
        image: ``H x W x 3`` uint8 RGB (not modified).
        boxes: ``(K, 4)`` float ``x1, y1, x2, y2`` in 0-based pixels, inclusive (the loader's boxes).
        fraction: one fraction for every box, or ``(K,)`` per box, in [0, 1].
        rng: the generator drawing shapes, positions and textures.
        source: ``"heldout"`` (never seen in training) or ``"train"`` textures.

    Returns:
        ``(occluded image, covered)``: ``covered`` ``(K,)`` is the fraction of each box's pixels
        under an occluder at the end (occluders of neighbouring boxes count too).
    """
    out, covered_map = paste_occluder_map(image, boxes, fraction, rng, source=source)
    height, width = out.shape[:2]
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    covered = np.zeros(len(boxes), dtype=np.float64)
    for k, box in enumerate(boxes):
        x1, y1, x2, y2 = _int_box(box, width, height)
        if x2 >= x1 and y2 >= y1:
            covered[k] = covered_map[y1 : y2 + 1, x1 : x2 + 1].mean()
    return out, covered


def paste_occluder_map(
    image: np.ndarray,
    boxes: np.ndarray,
    fraction: float | np.ndarray,
    rng: np.random.Generator,
    *,
    source: str = "heldout",
) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`paste_occluders`, returning the ``H x W`` bool map of occluder pixels instead."""
    out = np.array(image, dtype=np.uint8, copy=True)
    height, width = out.shape[:2]
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    fractions = np.broadcast_to(np.asarray(fraction, dtype=np.float64), (len(boxes),))
    covered_map = np.zeros((height, width), dtype=bool)
    for box, f in zip(boxes, fractions):
        if f <= 0:
            continue
        ib = _int_box(box, width, height)
        if ib[2] < ib[0] or ib[3] < ib[1]:
            continue
        rows, cols = occluder_mask(ib, f, rng)
        oh, ow = rows.stop - rows.start, cols.stop - cols.start
        if oh <= 0 or ow <= 0:
            continue
        tex = occluder_texture(oh, ow, rng, source)
        out[rows, cols] = (tex * 255 + 0.5).astype(np.uint8)
        covered_map[rows, cols] = True
    return out, covered_map
