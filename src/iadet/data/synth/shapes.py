"""Boolean masks of simple shapes on a pixel grid (pixel (r, c) is the unit square at its centre)."""

from __future__ import annotations

import numpy as np


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates normalised to [-1, 1] across the canvas."""
    y = (np.arange(height, dtype=np.float32) + 0.5) / height * 2.0 - 1.0
    x = (np.arange(width, dtype=np.float32) + 0.5) / width * 2.0 - 1.0
    return y[:, None], x[None, :]


def ellipse(height: int, width: int, scale: float = 1.0) -> np.ndarray:
    """The ellipse inscribed in the canvas, shrunk by ``scale``."""
    y, x = _grid(height, width)
    return (x * x + y * y) <= scale * scale


def diamond(height: int, width: int) -> np.ndarray:
    """The rhombus touching the middle of each side."""
    y, x = _grid(height, width)
    return (np.abs(x) + np.abs(y)) <= 1.0


def rounded_rect(height: int, width: int, radius: float) -> np.ndarray:
    """A rectangle filling the canvas with corners rounded by ``radius`` pixels."""
    r = float(np.clip(radius, 0.0, min(height, width) / 2.0))
    yy = np.arange(height, dtype=np.float32)[:, None] + 0.5
    xx = np.arange(width, dtype=np.float32)[None, :] + 0.5
    # distance outside the inner rectangle [r, h - r] x [r, w - r]
    dy = np.maximum(np.maximum(r - yy, yy - (height - r)), 0.0)
    dx = np.maximum(np.maximum(r - xx, xx - (width - r)), 0.0)
    return dx * dx + dy * dy <= r * r + 1e-6


def outline(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels of ``mask`` within ``width`` pixels (4-connected steps) of its border."""
    inner = mask.copy()
    for _ in range(max(0, width)):
        shrunk = inner.copy()
        shrunk[1:, :] &= inner[:-1, :]
        shrunk[:-1, :] &= inner[1:, :]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        shrunk[0, :] = shrunk[-1, :] = False
        shrunk[:, 0] = shrunk[:, -1] = False
        inner = shrunk
    return mask & ~inner
