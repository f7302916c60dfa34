"""The evaluation loops of ``iadet robustness``: the corruption benchmark and the occlusion sweep.

Both run a detector over a split whose images are changed on the fly, before the detector's
own resizing, inside the data-loader workers (``predict(..., image_transform=...)``), and score
each pass with :func:`iadet.engine.inference.score`:

* :func:`corruption_summary` — every (corruption, severity) cell of Michaelis et al. (2019),
  "Benchmarking Robustness in Object Detection", summarised as P, mPC and rPC
  (:func:`iadet.robustness.metrics.performance_under_corruption`);
* :func:`occlusion_curve` — mAP against the fraction of every ground-truth box hidden by
  pasted occluders (textures from a held-out source).

Every image is changed with a seed derived from the run's seed and the image's id
(:func:`iadet.robustness.corruptions.image_seed`), so reruns, worker counts and different
checkpoints all see the same pixels. :func:`corruption_summary` can keep the corrupted images in a
:class:`~iadet.robustness.cache.CorruptionCache` directory, which a second detector then reuses.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from iadet.data.images import load_image
from iadet.data.occluders import paste_occluders
from iadet.data.records import DatasetSplit, ImageRecord
from iadet.engine.inference import default_metric, evaluate, predict, score
from iadet.errors import ConfigError
from iadet.robustness.cache import CorruptionCache, image_digest
from iadet.robustness.corruptions import SEVERITIES, corrupt, image_seed, prepare, resolve_corruptions
from iadet.robustness.metrics import performance_under_corruption

__all__ = [
    "CorruptImage",
    "OccludeImage",
    "Occluder",
    "corruption_summaries",
    "corruption_summary",
    "default_metric",
    "default_occluder",
    "evaluate",
    "measure_coverage",
    "occlusion_curve",
    "parse_fractions",
    "parse_severities",
    "summary_table",
]

Occluder = Callable[[np.ndarray, np.ndarray, float, np.random.Generator], tuple[np.ndarray, np.ndarray]]
"""``occluder(image HxWx3 uint8, boxes (K, 4) 0-based xyxy, fraction, rng) -> (image, covered (K,))``:
pastes occluders over about ``fraction`` of each box and returns the new image and the fraction of
each box actually covered. The built-in one is ``paste_occluders(..., source="heldout")``."""


# ----------------------------------------------------------------------------------------------
# image transforms (run in the data-loader workers, so they are plain picklable objects)


class CorruptImage:
    """``predict``'s ``image_transform``: corruption ``name`` at ``severity``, seeded per image.

    With a ``cache``, a corrupted image already there is read instead of computed, and one
    computed is stored (see :mod:`iadet.robustness.cache`).
    """

    def __init__(self, name: str, severity: int, seed: int = 0, cache: CorruptionCache | None = None) -> None:
        self.name, self.severity, self.seed, self.cache = name, severity, seed, cache

    def __call__(self, image: np.ndarray, record: ImageRecord, index: int) -> np.ndarray:
        seed = image_seed(self.seed, record.image_id)
        if self.cache is None:
            return corrupt(image, self.name, self.severity, seed=seed)
        path = self.cache.path(image_digest(image), self.name, self.severity, seed)
        out = self.cache.load(path, (*image.shape[:2], 3))
        if out is None:
            out = corrupt(image, self.name, self.severity, seed=seed)
            self.cache.save(path, out)
        return out


class OccludeImage:
    """``predict``'s ``image_transform``: occluders over ``fraction`` of every ground-truth box.

    The occluder's generator is seeded with ``image_seed(seed, image_id)``: the same image gets
    the same occluders whichever checkpoint is evaluated. ``fraction == 0`` leaves images as they are.
    """

    def __init__(self, fraction: float, seed: int, occluder: Occluder) -> None:
        self.fraction, self.seed, self.occluder = fraction, seed, occluder

    def occlude(self, image: np.ndarray, record: ImageRecord) -> tuple[np.ndarray, np.ndarray]:
        """``(occluded image, covered fraction per box (K,))``."""
        if self.fraction <= 0 or len(record.boxes) == 0:
            return image, np.zeros(len(record.boxes), np.float64)
        rng = np.random.default_rng(image_seed(self.seed, record.image_id))
        out, covered = self.occluder(np.array(image, copy=True), record.boxes.copy(), self.fraction, rng)
        return out, np.asarray(covered, np.float64)

    def __call__(self, image: np.ndarray, record: ImageRecord, index: int) -> np.ndarray:
        return self.occlude(image, record)[0]


def default_occluder() -> Occluder:
    """The built-in data's :func:`~iadet.data.occluders.paste_occluders` with occluder textures from
    the held-out source (never used by the built-in training data)."""
    return functools.partial(paste_occluders, source="heldout")


# ----------------------------------------------------------------------------------------------
# arguments


def parse_severities(text: str | Iterable[int]) -> list[int]:
    """``"1,2,3,4,5"`` (or ints) -> sorted distinct severities in 1..5."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[int] = []
    for item in items:
        try:
            value = int(str(item).strip())
        except ValueError:
            raise ConfigError(f"--severities: '{item}' is not an integer (severities are 1 to 5)") from None
        if value not in SEVERITIES:
            raise ConfigError(f"--severities: {value} is outside 1 to 5")
        if value not in out:
            out.append(value)
    if not out:
        raise ConfigError("--severities is empty: give e.g. 1,2,3,4,5")
    return sorted(out)


def parse_fractions(text: str | Iterable[float]) -> list[float]:
    """``"0,0.1,0.2"`` (or floats) -> distinct occluded fractions in [0, 1], in the order given."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[float] = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        try:
            value = float(str(item).strip())
        except ValueError:
            raise ConfigError(f"--occlusion: '{item}' is not a number (fractions are in [0, 1])") from None
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"--occlusion: fraction {value} is outside [0, 1]")
        if value not in out:
            out.append(value)
    if not out:
        raise ConfigError("--occlusion is empty: give fractions such as 0,0.1,0.2,0.3")
    return out


# ----------------------------------------------------------------------------------------------
# loops


def _images(split: DatasetSplit, max_images: int | None) -> int:
    return len(split.records[:max_images] if max_images else split.records)


def corruption_summary(
    model: nn.Module,
    split: DatasetSplit,
    device: torch.device | str,
    corruptions: str | Sequence[str] = "benchmark",
    severities: Sequence[int] = SEVERITIES,
    *,
    metric: str | None = None,
    max_images: int | None = None,
    batch_size: int = 4,
    num_workers: int = 2,
    seed: int = 0,
    clean: float | None = None,
    progress: bool = False,
    on_cell: Callable[[str, int, float], None] | None = None,
    proposals: Any = None,
    cache: CorruptionCache | str | Path | None = None,
) -> dict[str, Any]:
    """The corruption benchmark of one detector: P, mPC, rPC and the table behind them.

    Args:
        model: a torchvision detector (its mode is restored afterwards).
        split: the split to evaluate (``max_images`` first images of it).
        corruptions: a ``--corruptions`` spec (``benchmark``, ``all``, a group, ``fog,snow``) or names.
        severities: a subset of 1..5; with fewer than five the means are over the cells run and
            ``"complete"`` is False.
        metric: ``voc07`` / ``voc`` / ``coco``; default :func:`default_metric`.
        seed: the base of the per-image corruption seeds (:func:`image_seed`).
        clean: P when already known (e.g. from :func:`occlusion_curve` at fraction 0), else measured.
        progress: tqdm bars (one over the cells, one per pass).
        on_cell: called with ``(name, severity, mAP)`` after each cell (e.g. to save partial results).
        proposals: for a Fast R-CNN model, see :func:`iadet.engine.inference.evaluate`.
        cache: a directory (or :class:`CorruptionCache`) of corrupted images to read from and add to.

    The corruptions run in the data-loader workers (``num_workers``), overlapping with inference;
    the corruption library is prepared (numba's compile) in this process first, so forked workers
    inherit it. :func:`corruption_summaries` scores one pass with several metrics.

    Returns:
        :func:`performance_under_corruption`'s dict ``{"P", "mPC", "rPC", "corruptions": {name:
        {"1": mAP, ...}}, "groups", "complete"}`` plus ``metric``, ``split``, ``images``, ``seed``
        and ``severities``; mAPs in 0-1.
    """
    metric = metric or default_metric(split)
    return corruption_summaries(
        model,
        split,
        device,
        corruptions,
        severities,
        metrics=[metric],
        max_images=max_images,
        batch_size=batch_size,
        num_workers=num_workers,
        seed=seed,
        clean=None if clean is None else {metric: clean},
        progress=progress,
        on_cell=None
        if on_cell is None
        else lambda name, severity, maps: on_cell(name, severity, maps[metric]),
        proposals=proposals,
        cache=cache,
    )[metric]


def corruption_summaries(
    model: nn.Module,
    split: DatasetSplit,
    device: torch.device | str,
    corruptions: str | Sequence[str] = "benchmark",
    severities: Sequence[int] = SEVERITIES,
    *,
    metrics: Sequence[str],
    max_images: int | None = None,
    batch_size: int = 4,
    num_workers: int = 2,
    seed: int = 0,
    clean: Mapping[str, float] | None = None,
    progress: bool = False,
    on_cell: Callable[[str, int, dict[str, float]], None] | None = None,
    proposals: Any = None,
    cache: CorruptionCache | str | Path | None = None,
) -> dict[str, dict[str, Any]]:
    """:func:`corruption_summary` under several metrics at the cost of one: every pass's detections
    are scored with each of ``metrics`` (e.g. ``["coco", "voc07"]``), so the detector runs once per
    cell. ``clean`` maps each metric to its P when known; ``on_cell`` gets ``(name, severity,
    {metric: mAP})``. Returns ``{metric: corruption_summary's dict}``, identical to separate calls
    (inference is deterministic in eval mode)."""
    if not metrics:
        raise ConfigError("corruption_summaries: give at least one metric")
    metrics = list(dict.fromkeys(metrics))
    names = resolve_corruptions(corruptions if isinstance(corruptions, str) else ",".join(corruptions))
    severities = parse_severities(severities)
    if cache is not None and not isinstance(cache, CorruptionCache):
        cache = CorruptionCache(cache)
    prepare(names)
    common = dict(
        max_images=max_images,
        batch_size=batch_size,
        num_workers=num_workers,
        progress=progress,
        proposals=proposals,
    )

    def scored(image_transform: CorruptImage | None, desc: str) -> dict[str, float]:
        detections = predict(
            model, split, torch.device(device), image_transform=image_transform, desc=desc, **common
        )
        return {m: score(detections, split, m)["mAP"] for m in metrics}

    clean_maps = dict(clean) if clean is not None and set(metrics) <= set(clean) else scored(None, "clean")
    tables: dict[str, dict[str, dict[int, float]]] = {m: {} for m in metrics}
    cells = [(name, severity) for name in names for severity in severities]
    bar = tqdm(cells, desc="corruptions", unit="cell", disable=not progress, dynamic_ncols=True)
    for name, severity in bar:
        bar.set_postfix_str(f"{name} {severity}", refresh=True)
        maps = scored(CorruptImage(name, severity, seed, cache), f"{name} {severity}")
        for m in metrics:
            tables[m].setdefault(name, {})[severity] = maps[m]
        if on_cell is not None:
            on_cell(name, severity, maps)
    bar.close()
    partial = tuple(severities) != SEVERITIES
    return {
        m: {
            **performance_under_corruption(clean_maps[m], tables[m], allow_partial=partial),
            "metric": m,
            "split": split.name,
            "images": _images(split, max_images),
            "seed": seed,
            "severities": list(severities),
        }
        for m in metrics
    }


def measure_coverage(
    split: DatasetSplit,
    fractions: Sequence[float],
    *,
    seed: int = 0,
    occluder: Occluder | None = None,
    max_images: int | None = None,
) -> list[float | None]:
    """The mean fraction of the ground-truth boxes actually covered, per requested fraction.

    Runs the occluder exactly as the sweep does (same seeds) without a detector; ``None`` where
    the split has no boxes.
    """
    occluder = occluder or default_occluder()
    records = split.records[:max_images] if max_images else split.records
    totals = np.zeros(len(fractions))
    count = 0
    for record in records:
        if len(record.boxes) == 0:
            continue
        image = np.asarray(load_image(record.path))
        for i, fraction in enumerate(fractions):
            totals[i] += OccludeImage(fraction, seed, occluder).occlude(image, record)[1].sum()
        count += len(record.boxes)
    return [float(t / count) if count else None for t in totals]


def occlusion_curve(
    model: nn.Module,
    split: DatasetSplit,
    device: torch.device | str,
    fractions: Sequence[float],
    *,
    metric: str | None = None,
    max_images: int | None = None,
    batch_size: int = 4,
    num_workers: int = 2,
    seed: int = 0,
    occluder: Occluder | None = None,
    clean: float | None = None,
    coverage: bool = True,
    progress: bool = False,
    proposals: Any = None,
) -> dict[str, Any]:
    """mAP of one detector with occluders pasted over ``fraction`` of every ground-truth box.

    Args:
        fractions: occluded fractions in [0, 1]; 0 is the clean split (``clean`` is used for it
            when given).
        occluder: default :func:`default_occluder` (held-out occluder textures).
        seed: the base of the per-image occluder seeds; every checkpoint run with the same seed
            sees the same occluded images.
        coverage: also report the covered fraction actually achieved (:func:`measure_coverage`).
        proposals: for a Fast R-CNN model, see :func:`iadet.engine.inference.evaluate`.

    Returns:
        ``{"fractions": [...], "mAP": [...], "coverage": [...] | None, "metric", "split", "images",
        "seed"}``, lists aligned with ``fractions``, mAPs in 0-1.
    """
    fractions = parse_fractions(fractions)
    metric = metric or default_metric(split)
    occluder = occluder or default_occluder()
    values: list[float] = []
    bar = tqdm(fractions, desc="occlusion", unit="fraction", disable=not progress, dynamic_ncols=True)
    for fraction in bar:
        if fraction == 0 and clean is not None:
            values.append(float(clean))
            continue
        result = evaluate(
            model,
            split,
            device,
            metric=metric,
            image_transform=None if fraction == 0 else OccludeImage(fraction, seed, occluder),
            max_images=max_images,
            batch_size=batch_size,
            num_workers=num_workers,
            progress=progress,
            desc=f"occluded {fraction:g}",
            proposals=proposals,
        )
        values.append(float(result["mAP"]))
    bar.close()
    return {
        "fractions": list(fractions),
        "mAP": values,
        "coverage": (
            measure_coverage(split, fractions, seed=seed, occluder=occluder, max_images=max_images)
            if coverage
            else None
        ),
        "metric": metric,
        "split": split.name,
        "images": _images(split, max_images),
        "seed": seed,
    }


def summary_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """A Markdown table of several detectors' corruption summaries (P, mPC, rPC and the groups), in %."""
    groups = [
        g
        for g in ("noise", "blur", "weather", "digital", "extra")
        if any(g in r["groups"] for r in results.values())
    ]
    header = ["method", "P", "mPC", "rPC", *groups]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}"

    for label, r in results.items():
        cells = [label, pct(r["P"]), pct(r["mPC"]), pct(r["rPC"]), *(pct(r["groups"].get(g)) for g in groups)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
