"""Colour jitter and tinting of uint8 RGB patches (float32 arithmetic, rounded back to uint8)."""

from __future__ import annotations

import colorsys

import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def hsv(h: float, s: float, v: float) -> np.ndarray:
    """An RGB colour (float32, 0..255) from hue, saturation, value in [0, 1]."""
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255.0


def gray(image: np.ndarray) -> np.ndarray:
    """Luma of an HxWx3 image as HxW float32 in 0..255."""
    return image.astype(np.float32) @ _LUMA


def tint(image: np.ndarray, color: np.ndarray, contrast: float = 1.0) -> np.ndarray:
    """Colourise ``image`` by its luma: mid-grey maps to ``color``, contrast stretched about it."""
    lum = gray(image)
    lum = (lum - lum.mean()) * contrast + 128.0
    out = lum[..., None] / 128.0 * np.asarray(color, dtype=np.float32)
    return to_uint8(out)


def _hue_matrix(degrees: float) -> np.ndarray:
    """Rotation of RGB colours about the grey axis (a hue shift that keeps luma roughly)."""
    a = np.deg2rad(degrees)
    cos, sin = np.cos(a), np.sin(a)
    k = 1.0 / 3.0
    s3 = np.sqrt(k)
    return np.array(
        [
            [cos + (1 - cos) * k, k * (1 - cos) - s3 * sin, k * (1 - cos) + s3 * sin],
            [k * (1 - cos) + s3 * sin, cos + k * (1 - cos), k * (1 - cos) - s3 * sin],
            [k * (1 - cos) - s3 * sin, k * (1 - cos) + s3 * sin, cos + k * (1 - cos)],
        ],
        dtype=np.float32,
    )


def jitter(
    image: np.ndarray,
    rng: np.random.Generator,
    brightness: float = 0.15,
    contrast: float = 0.15,
    saturation: float = 0.15,
    hue: float = 8.0,
) -> np.ndarray:
    """Random brightness/contrast/saturation (relative amounts) and hue (degrees) jitter."""
    b, c, s = (1.0 + rng.uniform(-x, x) for x in (brightness, contrast, saturation))
    h = rng.uniform(-hue, hue)
    out = image.astype(np.float32)
    if h:
        out = out @ _hue_matrix(h).T
    lum = out @ _LUMA
    out = lum[..., None] + (out - lum[..., None]) * s
    mean = float(lum.mean())
    out = (out - mean) * c + mean * b
    return to_uint8(out)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Round and clip to uint8."""
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
