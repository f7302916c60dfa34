"""Part reliance: how much a detector's belief in an object rests on its single most important part.

The IA paper's claim is mechanistic: inverting the attention during training makes the detector
use the whole object instead of its most discriminative part. The built-in data makes that
measurable without mAP, because its generator knows where every object's four parts are
(:mod:`iadet.data.synth.erasing`). For every non-difficult ``test`` object and each of its parts,
the part is hidden in the image (filled with the object's body colour: the part is gone, the
silhouette stays) and the box head scores the object's ground-truth box again;

    drop[s] = p(gt | image) - p(gt | image with part s hidden)

is how much the detector relied on part ``s``. Per object, ``top`` is the largest drop and
``others`` the mean of the other three; a detector that spreads its reliance has a smaller
``top`` for the same ``others``, and a smaller ``top share`` = ``top / sum(max(drop, 0))``.
Only objects whose four parts are all visible count (the comparison is then between equals).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from iadet.config import Config
from iadet.data.catalog import data_root, open_split
from iadet.data.images import load_image
from iadet.data.synth import read_manifest
from iadet.data.synth.erasing import blank_part
from iadet.data.synth.generate import render_test_scene
from iadet.errors import DataError
from iadet.modeling.methods.probes import gt_probabilities, pool_rois

ProbabilityFn = Callable[[Sequence[np.ndarray], Sequence[np.ndarray], Sequence[np.ndarray]], list[np.ndarray]]
"""``(images (H, W, 3) uint8, boxes (N_i, 4) float, labels (N_i,) int) -> per image (N_i,) probabilities``."""


@dataclass
class ObjectReliance:
    """One object: its probability intact and the drop when each part (slot order) is hidden."""

    image_id: str
    label: int
    probability: float
    drops: list[float]

    @property
    def top(self) -> float:
        return max(self.drops)

    @property
    def others(self) -> float:
        ordered = sorted(self.drops, reverse=True)
        return float(np.mean(ordered[1:]))

    @property
    def top_share(self) -> float | None:
        positive = sum(max(d, 0.0) for d in self.drops)
        return max(self.top, 0.0) / positive if positive > 0 else None


def detector_probabilities(model: nn.Module, device: torch.device) -> ProbabilityFn:
    """A :data:`ProbabilityFn` of a torchvision two-stage detector: its box head on the given boxes."""

    def probabilities(images, boxes, labels):
        tensors = [
            torch.from_numpy(np.array(i, copy=True)).permute(2, 0, 1).float().div(255).to(device)
            for i in images
        ]
        box_tensors = [torch.as_tensor(b, dtype=torch.float32) for b in boxes]
        features = pool_rois(model, tensors, box_tensors)
        label_tensor = torch.as_tensor(np.concatenate(labels), dtype=torch.int64, device=features.device)
        probs = gt_probabilities(features, label_tensor, model.roi_heads.score_fn).cpu().numpy()
        return np.split(probs, np.cumsum([len(b) for b in boxes])[:-1])

    return probabilities


def image_reliance(
    image: np.ndarray, scene_objects: Sequence[Any], keep: Sequence[bool], labels: Sequence[int],
    boxes: np.ndarray, probabilities: ProbabilityFn, image_id: str = "",
) -> list[ObjectReliance]:  # fmt: skip
    """The reliance of every kept object of one image whose four parts are visible.

    ``scene_objects`` are the generator's objects (with ``parts`` and ``visible``) in annotation
    order; ``boxes`` ``(K, 4)`` their 0-based boxes; ``keep`` which to measure (non-difficult).
    One call of ``probabilities``: the intact image with every measured box, then one image per
    (object, part) with that object's box.
    """
    measured = [
        k for k, obj in enumerate(scene_objects)
        if keep[k] and all((p & obj.visible).any() for p in obj.parts) and len(obj.parts) == 4
    ]  # fmt: skip
    if not measured:
        return []
    images, box_sets, label_sets = [image], [boxes[measured]], [np.asarray(labels)[measured]]
    for k in measured:
        for slot in range(4):
            hidden = image.copy()
            blank_part(hidden, scene_objects[k], slot, "body")
            images.append(hidden)
            box_sets.append(boxes[[k]])
            label_sets.append(np.asarray(labels)[[k]])
    probs = probabilities(images, box_sets, label_sets)
    out = []
    for j, k in enumerate(measured):
        intact = float(probs[0][j])
        after = [float(probs[1 + 4 * j + s][0]) for s in range(4)]
        out.append(ObjectReliance(image_id, int(labels[k]), intact, [intact - a for a in after]))
    return out


def split_reliance(
    config: Config, probabilities: ProbabilityFn, *, split: str = "test", max_images: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[ObjectReliance]:  # fmt: skip
    """Part reliance of every object of the built-in data's ``split`` (its scenes are re-rendered for
    the part masks; the images are the stored files the detector is evaluated on)."""
    root = data_root(config.data)
    manifest = read_manifest(root)
    if manifest is None or manifest.get("generator") != "iadet.data.synth":
        raise DataError(
            f"{root}: part reliance needs the built-in data (its generator knows where the parts are); "
            "this dataset has no synth.json"
        )
    preset, seed = manifest["preset"], int(manifest["seed"])
    records = open_split(root, split, classes=config.data.classes).records
    if max_images is not None:
        records = records[:max_images]
    out: list[ObjectReliance] = []
    for n, record in enumerate(records):
        match = re.fullmatch(r"(?:test|trainval)_(\d+)", record.image_id)
        if match is None:
            raise DataError(f"{record.image_id}: not an image id of the built-in data")
        scene = render_test_scene(preset, seed, split, int(match.group(1)))
        if len(scene.objects) != len(record.labels):
            raise DataError(
                f"{record.image_id}: the annotation does not match the generator (regenerate the data)"
            )
        image = np.asarray(load_image(record.path))
        out += image_reliance(
            image,
            scene.objects,
            ~record.difficult,
            record.labels,
            record.boxes,
            probabilities,
            record.image_id,
        )
        if progress is not None:
            progress(n + 1, len(records))
    return out


def summarize(rows: Sequence[ObjectReliance]) -> dict[str, Any]:
    """Means over objects, each with the half-width of its normal 95% interval: the intact probability,
    the top and other drops, their ratio, the top part's share, and the mean drop per slot."""
    if not rows:
        return {"objects": 0}
    top = np.array([r.top for r in rows])
    others = np.array([r.others for r in rows])
    shares = np.array([s for s in (r.top_share for r in rows) if s is not None])
    drops = np.array([r.drops for r in rows])

    def mean_ci(x: np.ndarray) -> dict[str, float | None]:
        half = float(1.96 * x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else None
        return {"mean": float(x.mean()), "ci95": half}

    return {
        "objects": len(rows),
        "probability": mean_ci(np.array([r.probability for r in rows])),
        "top_drop": mean_ci(top),
        "other_drop": mean_ci(others),
        "top_over_others": float(top.mean() / others.mean()) if others.mean() > 0 else None,
        "top_share": mean_ci(shares) if len(shares) else None,
        "drop_per_slot": [float(v) for v in drops.mean(axis=0)],
    }


def write_part_reliance(
    results: dict[str, tuple[list[ObjectReliance], dict[str, Any]]], output: Path, split: str
) -> dict[str, Any]:
    """``part_reliance.json`` (summaries and every object's drops), ``part_reliance.md`` (the table) and
    ``part_reliance.png`` in ``output``; returns the JSON."""
    from iadet.robustness.plots import plot_part_reliance
    from iadet.serialization import save_json_atomic

    data = {
        "split": split,
        "fill": "body",
        "detectors": {
            label: {"summary": summary, "objects": [vars(r) for r in rows]}
            for label, (rows, summary) in results.items()
        },
    }
    save_json_atomic(data, output / "part_reliance.json")
    lines = [
        f"# Part reliance on `{split}`",
        "",
        "Drop of p(ground-truth class) when one part of the object is hidden (filled with the body colour), "
        "over objects whose four parts are visible; mean ± 95% half-width.",
        "",
        "| detector | objects | p intact | top drop | other drops | top / others | top part's share |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(value: dict[str, float | None] | None) -> str:
        if value is None:
            return "—"
        return f"{value['mean']:.3f}" + ("" if value["ci95"] is None else f" ± {value['ci95']:.3f}")

    for label, (_, s) in results.items():
        if not s.get("objects"):
            lines.append(f"| {label} | 0 | — | — | — | — | — |")
            continue
        ratio = "—" if s["top_over_others"] is None else f"{s['top_over_others']:.2f}"
        lines.append(
            f"| {label} | {s['objects']} | {cell(s['probability'])} | {cell(s['top_drop'])} | "
            f"{cell(s['other_drop'])} | {ratio} | {cell(s['top_share'])} |"
        )
    (output / "part_reliance.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    plot_part_reliance({label: s for label, (_, s) in results.items()}, output / "part_reliance.png")
    return data
