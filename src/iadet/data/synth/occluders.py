"""Occluders that cover a requested fraction of each box with held-out photo textures.

Used to build ``test_occluded`` and, on any dataset, by the robustness occlusion sweep.

Box convention, as the project's data loaders: ``boxes`` are (K, 4) float ``x1, y1, x2, y2`` in
0-based pixel coordinates with an *inclusive* end, ``x2`` being the last column of the box (a VOC
box converts as ``xmin - 1 ... xmax - 1``). A box covering pixel columns 0..9 is ``x1=0, x2=9``.
For fractional boxes, the box spans the continuous interval ``[x1, x2 + 1)`` and holds the pixels
whose centres (``c + 0.5``) fall in it. The coverage of a box is the fraction of its in-image
pixels under occluder pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iadet.data.synth import color, sources
from iadet.data.synth.pieces import random_piece

OCCLUDER_SOURCES: dict[str, str] = {"heldout": "heldout", "train": "background"}
"""``source`` argument -> source role whose photos texture the occluders. ``"heldout"`` (the
default) uses photos never used to build trainval or test; ``"train"`` uses the background
photos, e.g. for occlusion augmentation experiments."""

_TRIES = 8  # piece samples per placement, the first that spills onto no other box is kept
_SPILL_TOLERANCE = 0.02  # other boxes may exceed their own target by this much through spill


@dataclass(frozen=True)
class Occlusion:
    """Result of :func:`occlude`."""

    image: np.ndarray  # HxWx3 uint8, the occluded copy
    coverage: np.ndarray  # (K,) float64, achieved covered fraction of each box
    mask: np.ndarray  # HxW bool, occluder pixels


def box_pixels(box: np.ndarray, height: int, width: int) -> tuple[slice, slice]:
    """Rows and columns of the pixels of the inclusive ``box`` (see the module's convention)."""
    xmin, ymin, x2, y2 = (float(v) for v in box)
    xmax, ymax = x2 + 1.0, y2 + 1.0
    r0, r1 = int(np.ceil(ymin - 0.5)), int(np.ceil(ymax - 0.5))
    c0, c1 = int(np.ceil(xmin - 0.5)), int(np.ceil(xmax - 0.5))
    r0, r1 = min(max(r0, 0), height), min(max(r1, 0), height)
    c0, c1 = min(max(c0, 0), width), min(max(c1, 0), width)
    return slice(r0, max(r0, r1)), slice(c0, max(c0, c1))


def paste_occluders(
    image: np.ndarray,
    boxes: np.ndarray,
    fraction: float | np.ndarray,
    rng: np.random.Generator,
    *,
    source: str = "heldout",
) -> tuple[np.ndarray, np.ndarray]:
    """Paste textured occluders so that each box is covered by about ``fraction`` of its area.

    Args:
        image: HxWx3 uint8 image (not modified).
        boxes: (K, 4) ``x1, y1, x2, y2``, 0-based pixels, inclusive (the loaders' boxes; see the
            module docstring).
        fraction: the coverage wanted, one for all boxes or one per box, each in [0, 1].
        rng: the only source of randomness.
        source: ``"heldout"`` or ``"train"`` (see :data:`OCCLUDER_SOURCES`).

    Returns:
        The occluded copy of the image, and the achieved coverage of each box (fraction of the
        box's pixels under occluder pixels). Coverage is placed pixel-exactly, so it is within
        one pixel of the request unless boxes overlap (an occluder of one box may then also
        cover another) or a box is too small or outside the image.
    """
    result = occlude(image, boxes, fraction, rng, source=source)
    return result.image, result.coverage


def occlude(
    image: np.ndarray,
    boxes: np.ndarray,
    fraction: float | np.ndarray,
    rng: np.random.Generator,
    *,
    source: str = "heldout",
    max_pieces: int = 3,
) -> Occlusion:
    """:func:`paste_occluders`, also returning the occluder mask.

    Each box (smallest first) gets 1 to ``max_pieces`` pieces: ellipses, rotated rectangles,
    blobs, convex polygons or bars, anchored inside the box or on one of its sides (an occluder
    coming in from the side), each filled with a random crop of a random photo of ``source``.
    Every piece is scaled to cover an exact number of the box's still-uncovered pixels; among a
    few samples, one that does not push any other box beyond its own target is kept.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be HxWx3 uint8, got {image.shape} {image.dtype}")
    if source not in OCCLUDER_SOURCES:
        raise ValueError(f"unknown occluder source {source!r}; expected one of {tuple(OCCLUDER_SOURCES)}")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    k_boxes = len(boxes)
    targets = np.broadcast_to(np.asarray(fraction, dtype=np.float64), (k_boxes,)).copy()
    if not np.all(np.isfinite(targets)) or np.any(targets < 0) or np.any(targets > 1):
        raise ValueError(f"fraction must lie in [0, 1], got {fraction!r}")
    height, width = image.shape[:2]
    out = image.copy()
    occ = np.zeros((height, width), dtype=bool)
    spans = [box_pixels(b, height, width) for b in boxes]
    areas = np.array([(r.stop - r.start) * (c.stop - c.start) for r, c in spans], dtype=np.int64)
    names = sources.names_with_role(OCCLUDER_SOURCES[source])

    for k in np.argsort(areas, kind="stable"):
        if areas[k] == 0 or targets[k] <= 0:
            continue
        rows, cols = spans[k]
        planned = int(rng.integers(1, max_pieces + 1))
        for placed in range(2 * max_pieces):
            need = targets[k] * areas[k] - int(occ[rows, cols].sum())
            if need < 0.5:
                break
            want = need if placed >= planned - 1 else need * rng.uniform(0.35, 0.75)
            best = _best_piece(occ, spans, areas, targets, int(k), max(1, round(want)), rng)
            if best is None:
                break
            win_rows, win_cols, mask = best
            mask = _trim_spill(occ, mask, win_rows, win_cols, spans, areas, targets, int(k))
            tex = sources.texture(names[int(rng.integers(len(names)))], mask.shape[0], mask.shape[1], rng)
            tex = color.jitter(tex, rng, brightness=0.2, contrast=0.2, saturation=0.2, hue=15.0)
            region = out[win_rows, win_cols]
            region[mask] = tex[mask]
            occ[win_rows, win_cols] |= mask

    coverage = np.array([occ[r, c].mean() if a else 0.0 for (r, c), a in zip(spans, areas)], dtype=np.float64)
    return Occlusion(out, coverage, occ)


def _trim_spill(
    occ: np.ndarray,
    mask: np.ndarray,
    win_rows: slice,
    win_cols: slice,
    spans: list[tuple[slice, slice]],
    areas: np.ndarray,
    targets: np.ndarray,
    k: int,
) -> np.ndarray:
    """Drop the piece's pixels that would push another box past its target (outside box ``k`` only).

    When no sampled piece avoids spilling onto a neighbour, the kept one is cut back at that
    neighbour's edge, so every box stays at or under its requested coverage from others' pieces.
    """
    height, width = occ.shape
    piece = np.zeros((height, width), dtype=bool)
    piece[win_rows, win_cols] = mask
    inside_k = np.zeros((height, width), dtype=bool)
    inside_k[spans[k]] = True
    for j, (rows, cols) in enumerate(spans):
        if j == k or areas[j] == 0:
            continue
        if (occ[rows, cols] | piece[rows, cols]).mean() > targets[j] + 1e-9:
            piece[rows, cols] &= inside_k[rows, cols]
    return piece[win_rows, win_cols]


def _best_piece(
    occ: np.ndarray,
    spans: list[tuple[slice, slice]],
    areas: np.ndarray,
    targets: np.ndarray,
    k: int,
    n_pixels: int,
    rng: np.random.Generator,
) -> tuple[slice, slice, np.ndarray] | None:
    """Sample pieces for box ``k`` covering ``n_pixels`` new pixels of it; keep the least spilling."""
    height, width = occ.shape
    rows, cols = spans[k]
    bh, bw = rows.stop - rows.start, cols.stop - cols.start
    win_rows = slice(max(0, rows.start - round(1.5 * bh)), min(height, rows.stop + round(1.5 * bh)))
    win_cols = slice(max(0, cols.start - round(1.5 * bw)), min(width, cols.stop + round(1.5 * bw)))
    inner = (slice(rows.start - win_rows.start, rows.stop - win_rows.start),
             slice(cols.start - win_cols.start, cols.stop - win_cols.start))  # fmt: skip
    occ_win = occ[win_rows, win_cols]
    best: tuple[float, tuple[slice, slice, np.ndarray]] | None = None
    for _ in range(_TRIES):
        if rng.random() < 0.4:  # enter from a side of the box
            side = int(rng.integers(4))
            t = rng.uniform(0.15, 0.85)
            ay = rows.start + (t * bh if side < 2 else (0.0 if side == 2 else bh))
            ax = cols.start + (t * bw if side >= 2 else (0.0 if side == 0 else bw))
        else:
            ay = rows.start + bh * rng.uniform(0.15, 0.85)
            ax = cols.start + bw * rng.uniform(0.15, 0.85)
        piece = random_piece(rng, ay, ax, bh / 2.0, bw / 2.0)
        level = piece.level(win_rows, win_cols)
        free = level[inner][~occ_win[inner]]
        if free.size == 0:
            return None
        limit = 2.0 if piece.kind != "bar" else 0.6 * min(bh, bw) / piece.b
        s = min(float(np.partition(free, min(n_pixels, free.size) - 1)[min(n_pixels, free.size) - 1]), limit)
        mask = (level <= s) & ~occ_win
        if not mask[inner].any():
            continue
        spill = _spill(occ, mask, win_rows, win_cols, spans, areas, targets, k)
        if best is None or spill < best[0]:
            best = (spill, (win_rows, win_cols, mask))
        if spill == 0.0:
            break
    return None if best is None else best[1]


def _spill(
    occ: np.ndarray,
    mask: np.ndarray,
    win_rows: slice,
    win_cols: slice,
    spans: list[tuple[slice, slice]],
    areas: np.ndarray,
    targets: np.ndarray,
    k: int,
) -> float:
    """How far a new piece would push other boxes beyond their targets (0 when it does not)."""
    total = 0.0
    for j, (rows, cols) in enumerate(spans):
        if j == k or areas[j] == 0:
            continue
        r0, r1 = max(rows.start, win_rows.start), min(rows.stop, win_rows.stop)
        c0, c1 = max(cols.start, win_cols.start), min(cols.stop, win_cols.stop)
        if r0 >= r1 or c0 >= c1:
            continue
        new = int(
            mask[r0 - win_rows.start : r1 - win_rows.start, c0 - win_cols.start : c1 - win_cols.start].sum()
        )
        if new == 0:
            continue
        cover = (int(occ[rows, cols].sum()) + new) / areas[j]
        total += max(0.0, cover - targets[j] - _SPILL_TOLERANCE)
    return total
