"""One scene: a cluttered photo background, unannotated distractors, then the annotated objects.

Layers, bottom to top:

1. a crop of a background photo, sometimes split by a random line with a second one;
2. clutter: free-form shapes textured with other background photos;
3. distractors: decoy objects (a body whose part combination is no class) and clusters of
   loose parts, none annotated;
4. the objects, in random classes, sizes, aspects and small rotations; an object pasted later
   may hide at most ``max_hidden`` of each earlier one (inter-object occlusion).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iadet.data.synth import color, sources
from iadet.data.synth.classes import CLASS_CODES, CLASSES, DECOY_CODES, PART_KINDS, appearances
from iadet.data.synth.objects import Sprite, render_object
from iadet.data.synth.parts import render_part
from iadet.data.synth.pieces import piece_mask, random_piece
from iadet.data.synth.presets import SynthPreset

_PLACEMENT_TRIES = 30


@dataclass
class SceneObject:
    """An annotated object: its class and its full and visible silhouettes (in-image parts)."""

    label: int  # index into CLASSES
    amodal: np.ndarray  # HxW bool, the whole silhouette inside the image
    visible: np.ndarray  # HxW bool, what is not hidden by anything in front
    truncated: bool  # the silhouette extends beyond the image border
    parts: tuple[np.ndarray, ...] = ()  # per slot (top-left, top-right, bottom-left, bottom-right), HxW bool
    under: np.ndarray | None = None  # HxWx3 uint8, the image before the object was pasted (what is behind it)

    @property
    def name(self) -> str:
        return CLASSES[self.label]

    def pixel_box(self) -> tuple[int, int, int, int]:
        """0-based inclusive (col0, row0, col1, row1) of the full silhouette."""
        rows = np.flatnonzero(self.amodal.any(axis=1))
        cols = np.flatnonzero(self.amodal.any(axis=0))
        return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])

    def hidden(self) -> float:
        """Fraction of the (in-image) silhouette that is not visible."""
        return 1.0 - float(self.visible.sum()) / float(self.amodal.sum())


@dataclass
class Scene:
    image: np.ndarray  # HxWx3 uint8
    objects: list[SceneObject]


def render_scene(preset: SynthPreset, rng: np.random.Generator) -> Scene:
    """Render one scene of ``preset`` from ``rng`` alone."""
    height, width = preset.image_size
    image = _background(preset, rng)
    for _ in range(int(rng.integers(preset.distractors_per_image[0], preset.distractors_per_image[1] + 1))):
        _distractor(image, preset, rng)
    objects: list[SceneObject] = []
    n_objects = int(rng.integers(preset.objects_per_image[0], preset.objects_per_image[1] + 1))
    for _ in range(n_objects):
        label = int(rng.integers(len(CLASSES)))
        looks = appearances(CLASS_CODES[CLASSES[label]])
        code = looks[int(rng.integers(len(looks)))]
        obj_h, obj_w = _object_size(preset, rng)
        sprite = render_object(code, obj_h, obj_w, rng, max_rotation=preset.max_rotation)
        may_truncate = rng.random() < preset.truncation_prob
        placed = _place_object(image, sprite, label, objects, preset, rng, may_truncate)
        if placed is not None:
            objects.append(placed)
    return Scene(image, objects)


def _object_size(preset: SynthPreset, rng: np.random.Generator) -> tuple[int, int]:
    """(height, width) of an object body: log-uniform longer side, log-uniform aspect."""
    lo = preset.object_size[0]
    hi = max(lo, preset.object_size[1] * min(preset.image_size))
    longer = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    aspect = float(np.exp(rng.uniform(-np.log(preset.aspect_range), np.log(preset.aspect_range))))
    if aspect >= 1.0:  # wider than tall
        return max(4, round(longer / aspect)), max(4, round(longer))
    return max(4, round(longer)), max(4, round(longer * aspect))


def _background(preset: SynthPreset, rng: np.random.Generator) -> np.ndarray:
    height, width = preset.image_size
    names = sources.names_with_role("background")

    def photo(h: int, w: int) -> np.ndarray:
        tex = sources.texture(names[int(rng.integers(len(names)))], h, w, rng, zoom=(0.7, 3.0))
        if rng.random() < 0.4:  # recolour, so that grey photos are not always grey
            tex = color.tint(tex, color.hsv(rng.uniform(0, 1), rng.uniform(0.1, 0.5), rng.uniform(0.4, 0.8)))
        return color.jitter(tex, rng, brightness=0.25, contrast=0.25, saturation=0.3, hue=20.0)

    image = photo(height, width)
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:height, 0:width]
        offset = rng.uniform(0.25, 0.75) * (height * abs(np.sin(angle)) + width * abs(np.cos(angle)))
        proj = (yy - height / 2) * np.sin(angle) + (xx - width / 2) * np.cos(angle)
        split = proj + (height * abs(np.sin(angle)) + width * abs(np.cos(angle))) / 2 > offset
        image[split] = photo(height, width)[split]
    short = min(height, width)
    for _ in range(int(rng.integers(preset.clutter_per_image[0], preset.clutter_per_image[1] + 1))):
        half = rng.uniform(*preset.clutter_size) * short
        piece = random_piece(
            rng, rng.uniform(0, height), rng.uniform(0, width), half * rng.uniform(0.6, 1.4), half
        )
        rows, cols, mask = piece_mask(piece, height, width)
        if mask.size == 0 or not mask.any():
            continue
        tex = photo(mask.shape[0], mask.shape[1])
        region = image[rows, cols]
        region[mask] = tex[mask]
    return image


def _distractor(image: np.ndarray, preset: SynthPreset, rng: np.random.Generator) -> None:
    """Paste a decoy object or a cluster of loose parts anywhere (they may cross the border)."""
    height, width = image.shape[:2]
    if rng.random() < preset.decoy_prob:
        code = DECOY_CODES[int(rng.integers(len(DECOY_CODES)))]
        looks = appearances(code)
        obj_h, obj_w = _object_size(preset, rng)
        sprite = render_object(looks[int(rng.integers(len(looks)))], obj_h, obj_w, rng,
                               max_rotation=preset.max_rotation)  # fmt: skip
        _paste(image, sprite, rng.uniform(-0.3, 1.0) * height, rng.uniform(-0.3, 1.0) * width)
        return
    obj_h, obj_w = _object_size(preset, rng)
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    for _ in range(int(rng.integers(1, 4))):
        ph = max(3, round(obj_h * rng.uniform(0.3, 0.45)))
        pw = max(3, round(obj_w * rng.uniform(0.3, 0.45)))
        rgb, mask = render_part(int(rng.integers(len(PART_KINDS))), ph, pw, rng)
        top = cy + rng.uniform(-1.0, 1.0) * obj_h / 2 - ph / 2
        left = cx + rng.uniform(-1.0, 1.0) * obj_w / 2 - pw / 2
        _paste(image, Sprite(rgb, mask), top, left)


def _window(sprite: Sprite, top: int, left: int, height: int, width: int) -> tuple[slice, slice, np.ndarray]:
    """Image rows/cols covered by the sprite placed at (top, left), and the sprite's mask there."""
    h, w = sprite.mask.shape
    r0, r1 = max(0, top), min(height, top + h)
    c0, c1 = max(0, left), min(width, left + w)
    if r0 >= r1 or c0 >= c1:
        return slice(0, 0), slice(0, 0), np.zeros((0, 0), dtype=bool)
    sub = sprite.mask[r0 - top : r1 - top, c0 - left : c1 - left]
    return slice(r0, r1), slice(c0, c1), sub


def _place_mask(mask: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """A sprite-sized mask placed at (top, left) in an ``height x width`` image, clipped."""
    rows, cols, sub = _window(Sprite(np.empty(0), mask), top, left, height, width)
    full = np.zeros((height, width), dtype=bool)
    if sub.size:
        full[rows, cols] = sub
    return full


def _paste(image: np.ndarray, sprite: Sprite, top: float, left: float) -> np.ndarray:
    """Paste a sprite (clipped to the image); return its in-image silhouette as an HxW mask."""
    height, width = image.shape[:2]
    top, left = int(round(top)), int(round(left))
    rows, cols, sub = _window(sprite, top, left, height, width)
    full = np.zeros((height, width), dtype=bool)
    if sub.size:
        region = image[rows, cols]
        rgb = sprite.rgb[rows.start - top : rows.stop - top, cols.start - left : cols.stop - left]
        region[sub] = rgb[sub]
        full[rows, cols] = sub
    return full


def _place_object(
    image: np.ndarray,
    sprite: Sprite,
    label: int,
    objects: list[SceneObject],
    preset: SynthPreset,
    rng: np.random.Generator,
    may_truncate: bool,
) -> SceneObject | None:
    """Find a position where the sprite hides at most ``max_hidden`` of each earlier object."""
    height, width = image.shape[:2]
    h, w = sprite.mask.shape
    total = int(sprite.mask.sum())
    if total == 0:
        return None
    for _ in range(_PLACEMENT_TRIES):
        if may_truncate:
            top = int(rng.integers(-h // 2, height - h // 2 + 1))
            left = int(rng.integers(-w // 2, width - w // 2 + 1))
        else:
            top = int(rng.integers(0, max(0, height - h) + 1))
            left = int(rng.integers(0, max(0, width - w) + 1))
        rows, cols, sub = _window(sprite, top, left, height, width)
        inside = int(sub.sum())
        if inside < 0.6 * total or inside == 0:
            continue
        ok = True
        for other in objects:
            covered = int((other.visible[rows, cols] & sub).sum())
            if covered and 1.0 - (other.visible.sum() - covered) / other.amodal.sum() > preset.max_hidden:
                ok = False
                break
        if not ok:
            continue
        under = image.copy()
        full = _paste(image, sprite, top, left)
        for other in objects:
            other.visible &= ~full
        parts = tuple(_place_mask(p, top, left, height, width) for p in sprite.parts)
        return SceneObject(label, full, full.copy(), inside < total, parts, under)
    return None
