"""The built-in data: a deterministic, part-based occlusion benchmark in PASCAL VOC layout.

Design (frozen before any method comparison; see the README's "Built-in data"):

* **Objects made of parts.** Every object is a 2 x 2 arrangement of tiles, each tile a
  handwritten digit (scikit-learn's digits, real handwriting) on a texture cut from a real
  photograph. A class is the ordered 4-tuple of digits (:data:`CLASS_PARTS`). Classes share
  whole rows or columns with others (``0 1 / 2 3`` and ``0 1 / 4 5`` differ only in their lower
  half), so no single part names the class and hiding a part genuinely matters.
* **Variation.** Every object draws its own handwriting samples, glyph colour, tile textures,
  size (log-uniform), aspect ratio and tile jitter; test objects use handwriting samples never
  used in training.
* **Clutter.** Backgrounds are crops of photographs; distractor tiles and strips of random
  digits (unannotated) scatter over them; objects may overlap (later ones hide earlier ones,
  as in real scenes) and may be cut by the image border (``truncated``).
* **Several objects per image at several scales.**
* **test_occluded** holds the same scenes as ``test`` (same objects, same boxes), with an
  occluder over 20-60% of every object's box cut from textures never used in training
  (:mod:`iadet.data.occluders`). Boxes stay amodal, as VOC annotates occluded objects; the hidden
  fraction is recorded per object (``<occlusion>``).
* ``difficult="1"`` for tiny objects (shorter side < ``tiny_px``) and for objects more than
  half hidden, as VOC marks them; such objects count neither way in evaluation.

Every image is a pure function of ``(seed, split, index)``, so the data is reproducible
byte for byte with the same package versions, and written atomically.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from iadet.data.occluders import paste_occluder_map, texture
from iadet.data.sources import HELDOUT_SOURCES, TRAIN_SOURCES, digit_glyphs, glyph_pool

GENERATOR_VERSION = 1

# class name -> digits of its (top-left, top-right, bottom-left, bottom-right) parts
CLASS_PARTS: dict[str, tuple[int, int, int, int]] = {
    "d0123": (0, 1, 2, 3),
    "d0145": (0, 1, 4, 5),
    "d6723": (6, 7, 2, 3),
    "d6745": (6, 7, 4, 5),
    "d8294": (8, 2, 9, 4),
    "d8396": (8, 3, 9, 6),
}
CLASSES: tuple[str, ...] = tuple(CLASS_PARTS)


@dataclass(frozen=True)
class SynthPreset:
    """Every size and count of a built-in dataset."""

    trainval: int
    test: int
    width: tuple[int, int] = (160, 208)
    height: tuple[int, int] = (144, 192)
    objects: tuple[int, int] = (1, 4)
    object_size: tuple[float, float] = (36.0, 96.0)
    """Range of the object's longer side in pixels (log-uniform)."""
    aspect: tuple[float, float] = (0.8, 1.25)
    distractors: tuple[int, int] = (0, 3)
    occlusion: tuple[float, float] = (0.2, 0.6)
    """test_occluded: fraction of each box covered by its occluder."""
    truncation_prob: float = 0.1
    max_overlap: float = 0.2
    """Largest IoU between two objects of a scene."""
    tiny_px: int = 12
    heavy_occlusion: float = 0.5


PRESETS: dict[str, SynthPreset] = {
    "tiny": SynthPreset(trainval=16, test=8),
    "quick": SynthPreset(trainval=1000, test=250),
    "full": SynthPreset(trainval=3000, test=1000),
}

_SPLIT_CODES = {"trainval": 1, "test": 2}


# ----------------------------------------------------------------------------------------------
# drawing


def _rng(seed: int, split: str, index: int, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLIT_CODES[split], index, stream])


def _glyph(digit: int, glyph_split: str, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    images, _ = digit_glyphs()
    pool = glyph_pool(digit, glyph_split)
    sample = images[pool[int(rng.integers(len(pool)))]]
    h, w = size
    glyph = Image.fromarray((sample * 255).astype(np.uint8)).resize((max(w, 1), max(h, 1)), Image.BICUBIC)
    return np.clip(np.asarray(glyph, dtype=np.float32) / 255.0 * 1.3, 0.0, 1.0)


def _bright_colour(rng: np.random.Generator) -> np.ndarray:
    hue = rng.random()
    import colorsys

    return np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.5, 1.0), rng.uniform(0.85, 1.0)), dtype=np.float32)


def _draw_tile(
    canvas: np.ndarray,
    x0: int,
    y0: int,
    w: int,
    h: int,
    digit: int,
    colour: np.ndarray,
    glyph_split: str,
    rng: np.random.Generator,
) -> tuple[slice, slice]:
    """Draw one part (a digit on a dark texture with a thin rim) with its top-left at (x0, y0)."""
    H, W = canvas.shape[:2]
    tile = texture(TRAIN_SOURCES, h, w, rng) * rng.uniform(0.25, 0.5)
    tile[[0, -1], :, :] = tile[[0, -1], :, :] * 0.3 + 0.7 * colour * 0.5
    tile[:, [0, -1], :] = tile[:, [0, -1], :] * 0.3 + 0.7 * colour * 0.5
    gh, gw = max(2, int(h * rng.uniform(0.7, 0.9))), max(2, int(w * rng.uniform(0.7, 0.9)))
    alpha = _glyph(digit, glyph_split, (gh, gw), rng)[:, :, None]
    gy, gx = (h - gh) // 2, (w - gw) // 2
    region = tile[gy : gy + gh, gx : gx + gw]
    tile[gy : gy + gh, gx : gx + gw] = region * (1 - alpha) + colour[None, None, :] * alpha
    # clip to the canvas
    cy0, cx0 = max(y0, 0), max(x0, 0)
    cy1, cx1 = min(y0 + h, H), min(x0 + w, W)
    if cy1 <= cy0 or cx1 <= cx0:
        return slice(0, 0), slice(0, 0)
    canvas[cy0:cy1, cx0:cx1] = tile[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    return slice(cy0, cy1), slice(cx0, cx1)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class SceneObject:
    name: str
    box: tuple[int, int, int, int]  # 0-based inclusive, clipped to the image
    full_box: tuple[int, int, int, int]  # before clipping
    truncated: bool
    pixels: int  # the object's own pixels in the image when drawn (before anything covers it)


def render_scene(
    preset: SynthPreset, seed: int, split: str, index: int
) -> tuple[np.ndarray, list[SceneObject], np.ndarray]:
    """One scene: ``(image H x W x 3 uint8, objects, instance map H x W uint8)``.

    The instance map holds the 1-based index of the object visible at each pixel (0 elsewhere).
    """
    rng = _rng(seed, split, index)
    glyph_split = "train" if split == "trainval" else "test"
    W = int(rng.integers(preset.width[0], preset.width[1] + 1))
    H = int(rng.integers(preset.height[0], preset.height[1] + 1))
    canvas = texture(TRAIN_SOURCES, H, W, rng) * rng.uniform(0.6, 1.0)
    instances = np.zeros((H, W), np.uint8)

    for _ in range(int(rng.integers(preset.distractors[0], preset.distractors[1] + 1))):
        size = float(np.exp(rng.uniform(*np.log(preset.object_size)))) / 2
        cols, rows = (1, 1) if rng.random() < 0.6 else ((2, 1) if rng.random() < 0.5 else (1, 2))
        x = int(rng.integers(-4, W - 4))
        y = int(rng.integers(-4, H - 4))
        colour = _bright_colour(rng)
        t = int(size)
        for r in range(rows):
            for c in range(cols):
                _draw_tile(
                    canvas, x + c * t, y + r * t, t, t, int(rng.integers(10)), colour, glyph_split, rng
                )

    objects: list[SceneObject] = []
    placed: list[tuple[float, ...]] = []
    n_objects = int(rng.integers(preset.objects[0], preset.objects[1] + 1))
    for _ in range(n_objects):
        for _attempt in range(20):
            side = float(np.exp(rng.uniform(*np.log(preset.object_size))))
            aspect = rng.uniform(*preset.aspect)
            w = max(8, int(round(side * min(1.0, aspect))))
            h = max(8, int(round(side * min(1.0, 1.0 / aspect))))
            slack = 0.25 if rng.random() < preset.truncation_prob else 0.0
            x = int(rng.integers(int(-slack * w), max(int(-slack * w) + 1, W - w + int(slack * w) + 1)))
            y = int(rng.integers(int(-slack * h), max(int(-slack * h) + 1, H - h + int(slack * h) + 1)))
            box = (x, y, x + w, y + h)
            if all(_iou(box, p) <= preset.max_overlap for p in placed):
                break
        else:
            continue
        placed.append(box)
        name = CLASSES[int(rng.integers(len(CLASSES)))]
        colour = _bright_colour(rng)
        tw, th = w // 2, h // 2
        extent = [x, y, x + 2 * tw - 1, y + 2 * th - 1]  # the tiles' union, jitter included
        for k, digit in enumerate(CLASS_PARTS[name]):
            r, c = divmod(k, 2)
            jx = int(rng.integers(-max(1, tw // 16), max(1, tw // 16) + 1)) * c
            jy = int(rng.integers(-max(1, th // 16), max(1, th // 16) + 1)) * r
            tx, ty = x + c * tw + jx, y + r * th + jy
            rows, cols = _draw_tile(canvas, tx, ty, tw, th, digit, colour, glyph_split, rng)
            instances[rows, cols] = len(objects) + 1
            extent = [
                min(extent[0], tx),
                min(extent[1], ty),
                max(extent[2], tx + tw - 1),
                max(extent[3], ty + th - 1),
            ]
        full = tuple(extent)
        clipped = (max(full[0], 0), max(full[1], 0), min(full[2], W - 1), min(full[3], H - 1))
        pixels = int((instances == len(objects) + 1).sum())
        objects.append(SceneObject(name, clipped, full, clipped != full, pixels))
    image = (np.clip(canvas, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    return image, objects, instances


def visible_fraction(instances: np.ndarray, index: int, obj: SceneObject) -> float:
    """Share of the object's own pixels still visible (not covered by later objects or occluders)."""
    return float((instances == index).sum()) / obj.pixels if obj.pixels else 0.0


# ----------------------------------------------------------------------------------------------
# writing


def _xml(image_id: str, width: int, height: int, objects: list[dict]) -> str:
    parts = [
        "<annotation>",
        "  <folder>iadet-synth</folder>",
        f"  <filename>{image_id}.jpg</filename>",
        "  <source><database>iadet built-in data</database></source>",
        f"  <size><width>{width}</width><height>{height}</height><depth>3</depth></size>",
        "  <segmented>1</segmented>",
    ]
    for obj in objects:
        x1, y1, x2, y2 = obj["box"]
        parts += [
            "  <object>",
            f"    <name>{obj['name']}</name>",
            "    <pose>Unspecified</pose>",
            f"    <truncated>{int(obj['truncated'])}</truncated>",
            f"    <difficult>{int(obj['difficult'])}</difficult>",
            f"    <occlusion>{obj['occlusion']:.3f}</occlusion>",
            f"    <bndbox><xmin>{x1 + 1}</xmin><ymin>{y1 + 1}</ymin><xmax>{x2 + 1}</xmax><ymax>{y2 + 1}</ymax></bndbox>",
            "  </object>",
        ]
    parts.append("</annotation>")
    return "\n".join(parts) + "\n"


def _palette_png(array: np.ndarray, path: Path) -> None:
    image = Image.fromarray(array.astype(np.uint8), mode="P")
    palette = [0, 0, 0] + [
        int(v) for i in range(1, 255) for v in ((i * 67) % 256, (i * 151) % 256, (i * 29) % 256)
    ]
    palette += [224, 224, 192]  # 255: void, as VOC
    image.putpalette(palette)
    image.save(path, optimize=False)


def _write_sample(root: Path, image_id: str, image: np.ndarray, objects: list[SceneObject], instances: np.ndarray,
                  occlusion: np.ndarray, preset: SynthPreset) -> dict[str, int]:  # fmt: skip
    H, W = image.shape[:2]
    records = []
    classes = np.zeros_like(instances)
    for k, obj in enumerate(objects, 1):
        x1, y1, x2, y2 = obj.box
        hidden = 1.0 - visible_fraction(instances, k, obj)
        tiny = min(x2 - x1 + 1, y2 - y1 + 1) < preset.tiny_px
        records.append(
            {
                "name": obj.name,
                "box": obj.box,
                "truncated": obj.truncated,
                "difficult": tiny or hidden > preset.heavy_occlusion,
                "occlusion": hidden,
            }
        )
        classes[instances == k] = CLASSES.index(obj.name) + 1
    Image.fromarray(image).save(root / "JPEGImages" / f"{image_id}.jpg", quality=90)
    (root / "Annotations" / f"{image_id}.xml").write_text(_xml(image_id, W, H, records), encoding="utf-8")
    seg_instances = instances.copy()
    seg_classes = classes.copy()
    seg_instances[occlusion] = 255
    seg_classes[occlusion] = 255
    _palette_png(seg_instances, root / "SegmentationObject" / f"{image_id}.png")
    _palette_png(seg_classes, root / "SegmentationClass" / f"{image_id}.png")
    return {"objects": len(records), "difficult": sum(r["difficult"] for r in records)}


def generate_dataset(
    output: str | Path, preset: str = "quick", seed: int = 0, *, progress: bool = False
) -> Path:
    """Write the built-in dataset ``preset`` to ``output`` (atomically: a temporary sibling, then a rename)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}")
    p = PRESETS[preset]
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        for sub in ("Annotations", "JPEGImages", "SegmentationObject", "SegmentationClass", "ImageSets/Main",
                    "ImageSets/Segmentation"):  # fmt: skip
            (tmp / sub).mkdir(parents=True, exist_ok=True)
        ids: dict[str, list[str]] = {"trainval": [], "test": [], "test_occluded": []}
        counts = {"objects": 0, "difficult": 0, "occluded_objects": 0, "occluded_difficult": 0}
        total = p.trainval + p.test
        bar = tqdm(
            total=total, desc=f"synth {preset}", disable=not (progress and sys.stderr.isatty()), unit="img"
        )
        for split, n in (("trainval", p.trainval), ("test", p.test)):
            for i in range(n):
                image_id = f"{'tv' if split == 'trainval' else 'te'}{i:06d}"
                image, objects, instances = render_scene(p, seed, split, i)
                none = np.zeros(instances.shape, bool)
                c = _write_sample(tmp, image_id, image, objects, instances, none, p)
                counts["objects"] += c["objects"]
                counts["difficult"] += c["difficult"]
                ids[split].append(image_id)
                if split == "test":
                    occ_rng = _rng(seed, split, i, stream=1)
                    fractions = occ_rng.uniform(*p.occlusion, size=len(objects))
                    boxes = np.array([o.box for o in objects], np.float64).reshape(-1, 4)
                    occluded, covered = paste_occluder_map(image, boxes, fractions, occ_rng, source="heldout")
                    hidden_instances = instances.copy()
                    hidden_instances[covered] = 0
                    occ_id = f"{image_id}_occ"
                    c = _write_sample(tmp, occ_id, occluded, objects, hidden_instances, covered, p)
                    counts["occluded_objects"] += c["objects"]
                    counts["occluded_difficult"] += c["difficult"]
                    ids["test_occluded"].append(occ_id)
                bar.update(1)
        bar.close()
        for split, split_ids in ids.items():
            (tmp / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(split_ids) + "\n")
        for split in ("trainval", "test"):
            (tmp / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids[split]) + "\n")
        (tmp / "classes.txt").write_text("\n".join(CLASSES) + "\n")
        meta = {
            "generator": "iadet.data.synth",
            "version": GENERATOR_VERSION,
            "preset": preset,
            "seed": seed,
            "parameters": asdict(p),
            "classes": {name: list(parts) for name, parts in CLASS_PARTS.items()},
            "train_sources": list(TRAIN_SOURCES),
            "occluder_sources": list(HELDOUT_SOURCES),
            "counts": {**counts, **{f"images_{k}": len(v) for k, v in ids.items()}},
        }
        (tmp / "synth.json").write_text(json.dumps(meta, indent=2))
        if output.exists():
            shutil.rmtree(output)
        os.replace(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output
