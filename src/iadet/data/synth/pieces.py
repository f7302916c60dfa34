"""Random free-form shapes (occluder pieces, background clutter) as *level fields*.

A piece is a shape family around an anchor point: ``level(pixel) <= s`` is the shape at scale
``s``, and the shapes are nested as ``s`` grows (each is star-shaped about the anchor, or a bar
thickening about its centre line). Covering an exact number ``n`` of pixels of a region is then
a matter of taking the ``n``-th smallest level in it; no search is needed.

Kinds: ``ellipse``, ``rect`` (rotated rectangle), ``blob`` (a radius wobbling with the angle),
``polygon`` (a random convex polygon) and ``bar`` (a long band, thickening).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS: tuple[str, ...] = ("ellipse", "rect", "blob", "polygon", "bar")


@dataclass(frozen=True)
class Piece:
    """One random shape family: ``kind`` anchored at (ay, ax), rotated by ``angle`` radians.

    ``a`` and ``b`` are the half-extents along the rotated axes at scale 1 (for a bar, ``a`` is
    its half-length and ``b`` its half-thickness at scale 1). ``params`` holds the blob's
    harmonics (amplitude, phase per order 2..4) or the polygon's edge normals and offsets.
    """

    kind: str
    ay: float
    ax: float
    angle: float
    a: float
    b: float
    params: tuple[float, ...] = ()

    def level(self, rows: slice, cols: slice) -> np.ndarray:
        """The level field on the pixel window ``rows`` x ``cols`` (pixel centres)."""
        y = np.arange(rows.start, rows.stop, dtype=np.float64)[:, None] + 0.5 - self.ay
        x = np.arange(cols.start, cols.stop, dtype=np.float64)[None, :] + 0.5 - self.ax
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        u = (cos * x + sin * y) / self.a
        v = (-sin * x + cos * y) / self.b
        if self.kind == "ellipse":
            return np.sqrt(u * u + v * v)
        if self.kind == "rect":
            return np.maximum(np.abs(u), np.abs(v))
        if self.kind == "bar":
            return np.where(np.abs(u) <= 1.0, np.abs(v), np.inf)
        if self.kind == "blob":
            rho = np.sqrt(u * u + v * v)
            phi = np.arctan2(v, u)
            radius = np.ones_like(phi)
            for order, (amp, phase) in enumerate(zip(self.params[0::2], self.params[1::2]), start=2):
                radius += amp * np.cos(order * phi + phase)
            return rho / radius
        if self.kind == "polygon":
            normals = np.asarray(self.params, dtype=np.float64).reshape(-1, 3)
            lv = np.full(np.broadcast_shapes(u.shape, v.shape), -np.inf)
            for nx, ny, d in normals:
                lv = np.maximum(lv, (nx * u + ny * v) / d)
            return np.maximum(lv, 0.0)
        raise ValueError(f"unknown piece kind {self.kind!r}")


def random_piece(
    rng: np.random.Generator, ay: float, ax: float, half_h: float, half_w: float, kind: str | None = None
) -> Piece:
    """A random piece anchored at (ay, ax) whose scale-1 shape spans about ``half_h`` x ``half_w``."""
    kind = kind if kind is not None else KINDS[int(rng.integers(len(KINDS)))]
    angle = float(rng.uniform(0, np.pi))
    a = max(1.0, half_w * float(rng.uniform(0.6, 1.3)))
    b = max(1.0, half_h * float(rng.uniform(0.6, 1.3)))
    params: tuple[float, ...] = ()
    if kind == "bar":
        a = max(2.0, float(np.hypot(half_h, half_w)) * float(rng.uniform(1.0, 2.0)))
        b = max(1.0, min(half_h, half_w) * float(rng.uniform(0.2, 0.5)))
    elif kind == "rect":
        angle = float(rng.choice([0.0, np.pi / 2])) + float(rng.uniform(-0.35, 0.35))
    elif kind == "blob":
        amps = rng.uniform(0.0, 0.45, size=3)
        amps *= min(1.0, 0.6 / max(float(amps.sum()), 1e-9))
        phases = rng.uniform(0, 2 * np.pi, size=3)
        params = tuple(float(x) for pair in zip(amps, phases) for x in pair)
    elif kind == "polygon":
        n = int(rng.integers(3, 8))
        # vertices around the origin at sorted random angles; the origin stays inside
        gaps = rng.uniform(0.5, 1.5, size=n)
        theta = np.cumsum(gaps) / gaps.sum() * 2 * np.pi + rng.uniform(0, 2 * np.pi)
        radius = rng.uniform(0.7, 1.2, size=n)
        pts = np.stack([radius * np.cos(theta), radius * np.sin(theta)], axis=1)
        rows = []
        for i in range(n):
            p, q = pts[i], pts[(i + 1) % n]
            normal = np.array([q[1] - p[1], p[0] - q[0]])
            normal /= np.linalg.norm(normal) + 1e-12
            d = float(normal @ p)
            if d <= 1e-3:  # an edge passing (nearly) through the origin: skip it
                continue
            rows.extend([float(normal[0]), float(normal[1]), d])
        if not rows:
            kind, params = "ellipse", ()
        else:
            params = tuple(rows)
    return Piece(kind, float(ay), float(ax), angle, a, b, params)


def piece_mask(piece: Piece, height: int, width: int, scale: float = 1.0) -> tuple[slice, slice, np.ndarray]:
    """Rasterise ``piece`` at ``scale`` inside an image of ``height`` x ``width``.

    Returns (rows, cols, mask) with ``mask`` covering only the window of the image that can
    hold the shape.
    """
    if piece.kind == "bar":  # fixed length, thickness grows with the scale
        reach = float(np.hypot(piece.a, piece.b * scale)) + 1.0
    else:
        reach = scale * max(piece.a, piece.b) * 1.7 + 1.0
    rows = slice(int(max(0, np.floor(piece.ay - reach))), int(min(height, np.ceil(piece.ay + reach))))
    cols = slice(int(max(0, np.floor(piece.ax - reach))), int(min(width, np.ceil(piece.ax + reach))))
    if rows.stop <= rows.start or cols.stop <= cols.start:
        return rows, cols, np.zeros((max(0, rows.stop - rows.start), max(0, cols.stop - cols.start)), bool)
    return rows, cols, piece.level(rows, cols) <= scale
