"""Pictures of an error analysis (:mod:`iadet.evaluation.tide`): where AP is lost, and on what.

* :func:`plot_error_breakdown` — TIDE's bars: the dAP of each error type (and of the two special
  ones), one bar per detector;
* :func:`plot_pr_curves` — the precision-recall curve of every class, small multiples, one line per
  detector;
* :func:`plot_confusion_matrix` — ground-truth class (rows, + background) against detected class
  (columns, + background), counts written in the cells, colour by row share;
* :func:`error_sheet` — a contact sheet of detections (A-Fast-RCNN's Fig. 6, the top false positives
  of one detector that the other does not make): each tile a square crop around the detection (red)
  and the ground-truth box it concerns (green), captioned with the error kind, class and score.

The plots take the plain dicts of the analysis (or the ``errors.json`` that ``iadet analyze
errors`` writes), draw with matplotlib's object API (no pyplot state, no display) and write a
PNG of ``figsize * dpi`` pixels; the sheet is a Pillow image on the layout of
:class:`~iadet.visualization.heatmaps.Grid`, so its size is known in advance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from iadet.evaluation.tide import ERROR_TYPES, SHORT_NAMES, SPECIAL_TYPES
from iadet.plotting import new_figure, save_figure
from iadet.visualization.heatmaps import Grid

__all__ = ["error_sheet", "plot_confusion_matrix", "plot_error_breakdown", "plot_pr_curves"]

DETECTION = (230, 30, 30)
GROUND_TRUTH = (40, 200, 60)


def _by_detector(value: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``{label: value}`` from one result (which has ``key``) or a mapping of several."""
    return {"": value} if key in value else dict(value)


def plot_error_breakdown(breakdowns: Mapping[str, Any], path: str | Path, *, title: str = "") -> Path:
    """Bars of the overall dAP (AP points) of TIDE's six error types and its two special ones.

    Args:
        breakdowns: one :meth:`~iadet.evaluation.tide.ErrorAnalysis.breakdown` or ``{label: breakdown}``
            for several detectors (grouped bars, labels in the legend with each one's AP).
    """
    runs = _by_detector(breakdowns, "dap")
    figure = new_figure(8.0, 3.6)
    main, special = figure.subplots(
        1, 2, gridspec_kw={"width_ratios": [len(ERROR_TYPES), len(SPECIAL_TYPES) + 1]}
    )
    width = 0.8 / max(len(runs), 1)
    for axes, group, types in ((main, "dap", ERROR_TYPES), (special, "special", SPECIAL_TYPES)):
        x = np.arange(len(types))
        for i, (label, breakdown) in enumerate(runs.items()):
            values = [100.0 * breakdown[group][t]["overall"] for t in types]
            name = f"{label} (AP {100 * breakdown['ap']['overall']:.1f})" if label else None
            bars = axes.bar(x + (i - (len(runs) - 1) / 2) * width, values, width, label=name)
            axes.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
        axes.set_xticks(x, [SHORT_NAMES[t] for t in types])
        axes.margins(y=0.15)
        axes.grid(axis="y", alpha=0.3)
    main.set_ylabel("dAP (AP points gained by fixing)")
    main.set_title("main errors", fontsize=10)
    special.set_title("special", fontsize=10)
    if len(runs) > 1 or next(iter(runs)):
        main.legend(fontsize=8)
    elif runs:
        (only,) = runs.values()
        main.set_title(f"main errors (AP {100 * only['ap']['overall']:.1f})", fontsize=10)
    if title:
        figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_pr_curves(
    curves: Mapping[str, Any], path: str | Path, *, classes: Sequence[str] | None = None, columns: int = 5
) -> Path:
    """One panel per class with its precision-recall curve(s), AP in the legend.

    Args:
        curves: :meth:`~iadet.evaluation.tide.ErrorAnalysis.pr_curves` (``{class: {"recall",
            "precision", "ap", ...}}``) or ``{label: pr_curves}`` for several detectors.
        classes: the classes to draw, in order (default: all of the first detector's).
    """
    first = next(iter(curves.values()), {})
    runs = {"": curves} if isinstance(first, Mapping) and "recall" in first else dict(curves)
    names = list(classes) if classes is not None else list(next(iter(runs.values())))
    columns = max(1, min(columns, len(names)))
    rows = max(1, math.ceil(len(names) / columns))
    figure = new_figure(2.4 * columns, 2.2 * rows + 0.2)
    axes = np.atleast_1d(figure.subplots(rows, columns, sharex=True, sharey=True, squeeze=False)).ravel()
    for ax, name in zip(axes, names):
        for label, run in runs.items():
            curve = run[name]
            text = f"{label} {100 * curve['ap']:.1f}".strip()
            few = len(curve["recall"]) < 20  # a handful of points: show them
            ax.plot(
                curve["recall"], curve["precision"], linewidth=1.2, label=text, marker="." if few else None
            )
        ax.set_title(name, fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower left", title="AP", title_fontsize=6)
        ax.tick_params(labelsize=7)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    for ax in axes[(rows - 1) * columns :]:
        ax.set_xlabel("recall", fontsize=8)
    for ax in axes[::columns]:
        ax.set_ylabel("precision", fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_confusion_matrix(confusion: Mapping[str, Any], path: str | Path, *, title: str = "") -> Path:
    """Heat-map of :func:`~iadet.evaluation.confusion.confusion_matrix`: counts in the cells, colour by the
    share of the row (how each ground-truth class was detected; the background row by column share
    of all background false positives)."""
    labels = list(confusion["labels"])
    matrix = np.asarray(confusion["matrix"], dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    size = 1.6 + 0.5 * len(labels)
    figure = new_figure(size + 1.2, size)
    ax = figure.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the row")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("detected as")
    ax.set_ylabel("ground truth")
    for (r, c), count in np.ndenumerate(matrix):
        if count:
            ax.text(c, r, f"{int(count)}", ha="center", va="center", fontsize=7,
                    color="white" if share[r, c] > 0.5 else "black")  # fmt: skip
    heading = title or "confusion matrix"
    ax.set_title(
        f"{heading} (IoU > {confusion['iou']:g}, score ≥ {confusion['score_threshold']:g})", fontsize=9
    )
    figure.tight_layout()
    return save_figure(figure, path)


def _square_around(boxes: Sequence[Sequence[float]], context: float) -> tuple[float, float, float, float]:
    """The square that holds ``boxes`` (0-based inclusive) with ``context`` of their extent added on each side."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x1, y1 = b[:, 0].min(), b[:, 1].min()
    x2, y2 = b[:, 2].max() + 1.0, b[:, 3].max() + 1.0
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * context)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    return cx - side / 2.0, cy - side / 2.0, cx + side / 2.0, cy + side / 2.0


def error_tile(
    image: np.ndarray, error: Mapping[str, Any], tile: int, *, context: float = 0.25
) -> np.ndarray:
    """``tile x tile x 3`` uint8: the square around the detection and its ground-truth box, both drawn."""
    boxes = [error["box"]] + ([error["gt_box"]] if error.get("gt_box") is not None else [])
    x1, y1, x2, y2 = _square_around(boxes, context)
    scale = tile / (x2 - x1)
    crop = Image.fromarray(np.ascontiguousarray(image)).convert("RGB")
    crop = crop.crop((round(x1), round(y1), round(x2), round(y2))).resize((tile, tile), Image.BILINEAR)
    draw = ImageDraw.Draw(crop)

    def rect(box: Sequence[float], colour: tuple[int, int, int]) -> None:
        bx1, by1, bx2, by2 = box
        draw.rectangle(
            ((bx1 - x1) * scale, (by1 - y1) * scale, (bx2 + 1 - x1) * scale - 1, (by2 + 1 - y1) * scale - 1),
            outline=colour,
            width=2,
        )

    if error.get("gt_box") is not None:
        rect(error["gt_box"], GROUND_TRUTH)
    rect(error["box"], DETECTION)
    return np.asarray(crop)


def error_caption(error: Mapping[str, Any]) -> str:
    """``"Cls a->b .80"``: the error kind, the detected class (``->`` the box's class when they differ), the score."""
    kind = SHORT_NAMES.get(error["kind"], error["kind"])
    name = error["class"]
    if error.get("gt_class") and error["gt_class"] != name:
        name = f"{name}->{error['gt_class']}"
    return f"{kind} {name} {error['score']:.2f}".replace(" 0.", " .")


def error_sheet(
    errors: Sequence[Mapping[str, Any]],
    load_image: Callable[[Any], np.ndarray],
    *,
    columns: int = 6,
    tile: int = 128,
    title: str = "",
    context: float = 0.25,
) -> Image.Image:
    """A contact sheet of detections, in the given order (e.g. by descending score).

    Args:
        errors: entries of :meth:`~iadet.evaluation.tide.ErrorAnalysis.detection` (``image_id``,
            ``box``, ``class``, ``score``, ``kind``, ``gt_box``, ``gt_class``), e.g. from
            :func:`~iadet.evaluation.tide.errors_not_made_by`.
        load_image: image id -> ``H x W x 3`` uint8 image.
        columns: tiles per row; rows are labelled with the ranks they hold.
        context: margin around the boxes, as a fraction of their extent, on each side.

    Returns:
        A Pillow image of ``Grid(rows, columns, tile).size``; one row saying so when ``errors`` is empty.
    """
    columns = max(1, columns)
    rows = max(1, math.ceil(len(errors) / columns))
    ranks = (
        [f"#{r * columns + 1}-{min((r + 1) * columns, len(errors))}" for r in range(rows)] if errors else []
    )
    if not errors:
        title = f"{title}: none" if title else "no errors to show"
    grid = Grid(rows, columns, tile, title=title, row_labels=ranks)
    cache: dict[Any, np.ndarray] = {}
    for k, error in enumerate(errors):
        image_id = error["image_id"]
        if image_id not in cache:
            cache[image_id] = np.asarray(load_image(image_id))
        grid.put(
            k // columns,
            k % columns,
            error_tile(cache[image_id], error, tile, context=context),
            error_caption(error),
        )
    return grid.image
