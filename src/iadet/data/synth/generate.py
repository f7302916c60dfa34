"""Generating a whole dataset: splits, per-image seeds, annotations, atomic write, manifest."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from iadet.data.synth.classes import CLASS_CODES, CLASSES, DECOY_CODES, PART_KINDS, describe
from iadet.data.synth.erasing import erase_parts
from iadet.data.synth.occluders import occlude
from iadet.data.synth.presets import SynthPreset, get_preset
from iadet.data.synth.scene import Scene, render_scene
from iadet.data.synth.sources import ROLES, names_with_role
from iadet.data.synth.voc import VOID, ObjectRecord, write_image
from iadet.errors import ConfigError, DataError

GENERATOR_VERSION = 4
"""Bumped whenever the output for a given preset and seed changes (the data cache is keyed on it).
4 added ``test_erased``; the files of the other splits are those of 3, byte for byte."""

SPLITS: tuple[str, ...] = ("trainval", "test", "test_occluded", "test_erased")
_SPLIT_CODES = {"trainval": 1, "test": 2, "test_occluded": 3, "test_erased": 4}
MANIFEST = "synth.json"
_FOLDER = "iadet-synth"


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one image: a pure function of (seed, split, index)."""
    return np.random.default_rng([int(seed), _SPLIT_CODES[split], int(index)])


def image_id(split: str, index: int) -> str:
    """``trainval_00012``, ``test_00003``, ``test_00003_occ``, ``test_00003_erased``."""
    if split == "test_occluded":
        return f"test_{index:05d}_occ"
    if split == "test_erased":
        return f"test_{index:05d}_erased"
    return f"{split}_{index:05d}"


@dataclass(frozen=True)
class RenderedImage:
    """Everything written for one image."""

    image: np.ndarray  # HxWx3 uint8
    objects: list[ObjectRecord]
    instance_map: np.ndarray  # HxW uint8: 0 background, k = k-th object (1-based), 255 occluder
    class_map: np.ndarray  # HxW uint8: 0 background, c = class index (1-based), 255 occluder


def render_image(preset: SynthPreset | str, seed: int, split: str, index: int) -> RenderedImage:
    """Render image ``index`` of ``split``; ``test_occluded`` and ``test_erased`` re-render the ``test``
    scene and occlude it (textured occluders) or blank parts of its objects (:mod:`~iadet.data.synth.erasing`)."""
    preset = get_preset(preset)
    scene = render_test_scene(preset, seed, split, index)
    if split not in ("test_occluded", "test_erased") or not scene.objects:
        return _annotate(scene, preset, None, None)
    if split == "test_erased":
        image, erased, fraction = erase_parts(scene, image_rng(seed, split, index))
        rendered = _annotate(Scene(image, scene.objects), preset, None, fraction)
        rendered.instance_map[erased] = VOID  # blanked pixels belong to no object's evidence
        rendered.class_map[erased] = VOID
        return rendered
    boxes = np.array([o.pixel_box() for o in scene.objects], dtype=np.float64)
    rng = image_rng(seed, split, index)
    targets = rng.uniform(*preset.occlusion_range, size=len(boxes))
    result = occlude(scene.image, boxes, targets, rng, source="heldout")
    return _annotate(Scene(result.image, scene.objects), preset, result.mask, result.coverage)


FEW_IMAGES = 300
"""Images of the ``few`` split: the over-fitting regime's training set (the papers fine-tune on a few thousand)."""
VAL_IMAGES = 200
"""Images of the ``val`` split, carved out of ``trainval`` and disjoint from ``few``: schedules are fixed on it."""


def subset_splits(trainval_ids: list[str]) -> dict[str, list[str]]:
    """``few`` (the first :data:`FEW_IMAGES` of ``trainval``) and ``val`` (its last :data:`VAL_IMAGES`),
    disjoint; on small presets at most half and a third of ``trainval``."""
    n = len(trainval_ids)
    few = trainval_ids[: min(FEW_IMAGES, n // 2)]
    val = trainval_ids[n - min(VAL_IMAGES, n // 3) :] if n >= 3 else []
    return {"few": few, "val": val}


def render_test_scene(preset: SynthPreset | str, seed: int, split: str, index: int) -> Scene:
    """The scene of image ``index`` of ``split`` before any occlusion, its objects with their part masks
    (``test_occluded`` and ``test_erased`` share the scenes of ``test``)."""
    preset = get_preset(preset)
    if split not in _SPLIT_CODES:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    scene_split = "test" if split in ("test_occluded", "test_erased") else split
    return render_scene(preset, image_rng(seed, scene_split, index))


def _annotate(
    scene: Scene, preset: SynthPreset, occluder: np.ndarray | None, coverage: np.ndarray | None
) -> RenderedImage:
    height, width = scene.image.shape[:2]
    instance_map = np.zeros((height, width), dtype=np.uint8)
    class_map = np.zeros((height, width), dtype=np.uint8)
    records = []
    for k, obj in enumerate(scene.objects):
        if occluder is not None:
            obj.visible &= ~occluder
        c0, r0, c1, r1 = obj.pixel_box()
        hidden = obj.hidden()
        short_side = min(c1 - c0 + 1, r1 - r0 + 1)
        records.append(
            ObjectRecord(
                name=obj.name,
                box=(c0 + 1, r0 + 1, c1 + 1, r1 + 1),
                truncated=obj.truncated,
                difficult=short_side < preset.difficult_min_size or hidden > preset.difficult_max_hidden,
                occlusion=float(coverage[k]) if coverage is not None else 0.0,
                hidden=hidden,
            )
        )
        instance_map[obj.visible] = k + 1
        class_map[obj.visible] = obj.label + 1
    if occluder is not None:
        hidden_by_occluder = occluder & np.logical_or.reduce([o.amodal for o in scene.objects])
        instance_map[hidden_by_occluder] = VOID
        class_map[hidden_by_occluder] = VOID
    return RenderedImage(scene.image, records, instance_map, class_map)


def _package_versions() -> dict[str, str]:
    versions = {}
    for name in ("numpy", "pillow", "scikit-image", "scikit-learn"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover
            versions[name] = "unknown"
    return versions


def _manifest_key(preset: SynthPreset, seed: int) -> dict[str, Any]:
    """The part of the manifest that decides whether an existing dataset can be reused."""
    return {
        "generator": "iadet.data.synth",
        "generator_version": GENERATOR_VERSION,
        "preset": preset.name,
        "seed": int(seed),
        "parameters": preset.to_dict(),
    }


def read_manifest(path: str | Path) -> dict[str, Any] | None:
    """The ``synth.json`` of a dataset directory, or None when missing or unreadable."""
    try:
        return json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def dataset_matches(path: str | Path, preset: SynthPreset | str = "quick", seed: int = 0) -> bool:
    """True when ``path`` holds a complete dataset generated by this version for ``preset`` and ``seed``."""
    manifest = read_manifest(path)
    if manifest is None:
        return False
    key = _manifest_key(get_preset(preset), seed)
    return all(manifest.get(k) == v for k, v in key.items())


def generate_dataset(
    output: str | Path,
    preset: str | SynthPreset = "quick",
    seed: int = 0,
    *,
    progress: bool = False,
    overwrite: bool = False,
) -> Path:
    """Generate the synthetic occlusion dataset in PASCAL VOC layout under ``output``; return its path.

    The same ``preset`` and ``seed`` give byte-identical files (with the same package
    versions). The dataset is built in a sibling ``<output>.tmp-XXXX`` directory and renamed
    into place, so an interrupted run never leaves a complete-looking dataset.

    If ``output`` already holds the dataset of this preset, seed and generator version, it is
    returned as is. If it holds anything else, :class:`~iadet.errors.DataError` is raised unless
    ``overwrite`` is true, in which case it is replaced.
    """
    spec = get_preset(preset)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"synth seed must be a non-negative integer, got {seed!r}")
    output = Path(output)
    if output.exists():
        if dataset_matches(output, spec, seed):
            return output
        if not overwrite:
            raise DataError(
                f"{output} already exists and is not the synth dataset of preset '{spec.name}', seed {seed};"
                " remove it or choose another output directory"
            )
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{output.name}.tmp-", dir=output.parent))
    try:
        os.chmod(tmp, 0o755)
        manifest = _write_all(tmp, spec, int(seed), progress)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if output.exists():
            old = Path(tempfile.mkdtemp(prefix=f"{output.name}.old-", dir=output.parent))
            os.replace(output, old / "dataset")
            os.replace(tmp, output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output


def _write_all(root: Path, preset: SynthPreset, seed: int, progress: bool) -> dict[str, Any]:
    for sub in ("Annotations", "JPEGImages", "SegmentationObject", "SegmentationClass",
                "ImageSets/Main", "ImageSets/Segmentation"):  # fmt: skip
        (root / sub).mkdir(parents=True)
    counts = {
        "trainval": preset.trainval,
        "test": preset.test,
        "test_occluded": preset.test,
        "test_erased": preset.test,
    }
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(counts.values()), desc=f"synth {preset.name}", unit="img")
    stats: dict[str, Any] = {}
    try:
        for split in SPLITS:
            ids = []
            per_class: Counter[str] = Counter()
            n_objects = n_difficult = n_truncated = 0
            occlusion = []
            for index in range(counts[split]):
                rendered = render_image(preset, seed, split, index)
                ident = image_id(split, index)
                write_image(root, ident, rendered.image, rendered.objects, rendered.instance_map,
                            rendered.class_map, jpeg_quality=preset.jpeg_quality, folder=_FOLDER)  # fmt: skip
                ids.append(ident)
                for obj in rendered.objects:
                    per_class[obj.name] += 1
                    n_objects += 1
                    n_difficult += obj.difficult
                    n_truncated += obj.truncated
                    occlusion.append(obj.occlusion)
                if bar is not None:
                    bar.update(1)
            listing = "".join(f"{i}\n" for i in ids)
            (root / "ImageSets" / "Main" / f"{split}.txt").write_text(listing, encoding="utf-8")
            (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text(listing, encoding="utf-8")
            if split == "trainval":
                for name, subset in subset_splits(ids).items():
                    listing = "".join(f"{i}\n" for i in subset)
                    (root / "ImageSets" / "Main" / f"{name}.txt").write_text(listing, encoding="utf-8")
            stats[split] = {
                "images": len(ids),
                "objects": n_objects,
                "difficult": n_difficult,
                "truncated": n_truncated,
                "objects_per_class": {name: per_class[name] for name in CLASSES},
                "mean_occlusion": round(float(np.mean(occlusion)) if occlusion else 0.0, 4),
            }
    finally:
        if bar is not None:
            bar.close()
    (root / "classes.txt").write_text("".join(f"{c}\n" for c in CLASSES), encoding="utf-8")
    return {
        **_manifest_key(preset, seed),
        "classes": list(CLASSES),
        "class_layouts": {name: describe(code) for name, code in CLASS_CODES.items()},
        "decoy_layouts": [describe(code) for code in DECOY_CODES],
        "parts": list(PART_KINDS),
        "sources": {role: list(names_with_role(role)) for role in ROLES},
        "splits": stats,
        "package_versions": _package_versions(),
    }
