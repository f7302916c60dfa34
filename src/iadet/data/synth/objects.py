"""A composite object: a textured body carrying four parts in a 2x2 grid, slightly rotated."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from iadet.data.synth import color, shapes, sources
from iadet.data.synth.parts import render_part


@dataclass(frozen=True)
class Sprite:
    """An RGB patch and its silhouette, ready to paste."""

    rgb: np.ndarray  # (h, w, 3) uint8
    mask: np.ndarray  # (h, w) bool
    parts: tuple[np.ndarray, ...] = ()  # per slot, (h, w) bool: where the part's pixels are (objects only)


def render_object(
    code: tuple[int, int, int, int],
    height: int,
    width: int,
    rng: np.random.Generator,
    *,
    max_rotation: float = 0.0,
) -> Sprite:
    """Render a body of ``height`` x ``width`` pixels with the parts of ``code`` in its quadrants.

    The body colour and texture are class-neutral (any hue, texture from the ``body`` source),
    so only the parts tell the classes apart. The sprite is then rotated by up to
    ``max_rotation`` degrees either way; its mask is the rotated silhouette.
    """
    height, width = max(4, int(height)), max(4, int(width))
    body = shapes.rounded_rect(height, width, rng.uniform(0.08, 0.3) * min(height, width))
    body_color = color.hsv(rng.uniform(0, 1), rng.uniform(0.2, 0.55), rng.uniform(0.3, 0.6))
    body_tex = sources.texture(sources.names_with_role("body")[0], height, width, rng, zoom=(0.5, 1.5))
    rgb = color.tint(body_tex, body_color, contrast=rng.uniform(1.0, 2.0)).astype(np.float32)
    edge = shapes.outline(body, max(1, round(min(height, width) * 0.04)))
    rgb[edge] *= 0.4

    margin_y, margin_x = rng.uniform(0.06, 0.1, size=2)
    gap_y, gap_x = rng.uniform(0.03, 0.07, size=2)
    cell_h = height * (1.0 - 2 * margin_y - gap_y) / 2.0
    cell_w = width * (1.0 - 2 * margin_x - gap_x) / 2.0
    parts = []
    for slot, kind in enumerate(code):
        row, col = divmod(slot, 2)
        ph = max(2, round(cell_h * rng.uniform(0.85, 1.0)))
        pw = max(2, round(cell_w * rng.uniform(0.85, 1.0)))
        y0 = height * margin_y + row * (cell_h + height * gap_y) + (cell_h - ph) / 2
        x0 = width * margin_x + col * (cell_w + width * gap_x) + (cell_w - pw) / 2
        y0 += rng.uniform(-0.03, 0.03) * height
        x0 += rng.uniform(-0.03, 0.03) * width
        top = int(np.clip(round(y0), 0, height - ph))
        left = int(np.clip(round(x0), 0, width - pw))
        part_rgb, part_mask = render_part(kind, ph, pw, rng)
        region = rgb[top : top + ph, left : left + pw]
        keep = part_mask & body[top : top + ph, left : left + pw]
        region[keep] = part_rgb[keep]
        slot_mask = np.zeros((height, width), dtype=bool)
        slot_mask[top : top + ph, left : left + pw] = keep
        parts.append(slot_mask)

    sprite = Sprite(color.jitter(rgb, rng, brightness=0.12, contrast=0.12, hue=0.0), body, tuple(parts))
    angle = rng.uniform(-max_rotation, max_rotation) if max_rotation > 0 else 0.0
    return rotate(sprite, angle)


def rotate(sprite: Sprite, degrees: float) -> Sprite:
    """Rotate a sprite counter-clockwise, growing the canvas to fit; the mask is re-thresholded."""
    if abs(degrees) < 0.5 or not sprite.mask.any():
        return sprite
    rgba = np.dstack([sprite.rgb, sprite.mask.astype(np.uint8) * 255])
    out = np.asarray(Image.fromarray(rgba, "RGBA").rotate(degrees, Image.Resampling.BILINEAR, expand=True))
    mask = out[..., 3] >= 128
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    crop = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    # Pillow resamples RGBA with premultiplied alpha, so edge colours are not darkened
    parts = tuple(_rotate_mask(p, degrees)[crop] & mask[crop] for p in sprite.parts)
    return Sprite(np.ascontiguousarray(out[..., :3][crop]), np.ascontiguousarray(mask[crop]), parts)


def _rotate_mask(mask: np.ndarray, degrees: float) -> np.ndarray:
    """A part mask rotated as :func:`rotate` rotates the sprite (same canvas), re-thresholded."""
    image = Image.fromarray(mask.astype(np.uint8) * 255, "L")
    return np.asarray(image.rotate(degrees, Image.Resampling.BILINEAR, expand=True)) >= 128
