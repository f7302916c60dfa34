"""The figures of a comparison's report (matplotlib): the forest plot of paired differences, the per-split
means, the per-class heat map, the error types and the part-reliance chart; one colour per method throughout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from iadet.comparison.plots import (
    Interval,
    compact_number,
    draw_heatmap,
    draw_intervals,
    family_rows,
    family_starts,
    method_colours,
)
from iadet.comparison.stats import t_half_width
from iadet.comparison.summaries import (
    BASELINE,
    METRIC_NAMES,
    METRIC_TITLES,
    excludes_zero,
    pct,
    per_class_deltas,
    primary_metric,
    primary_paired,
    primary_summary,
    row_label,
    seeds_of,
)
from iadet.plotting import new_figure, save_figure
from iadet.robustness.plots import plot_part_reliance

REPORT_DPI = 120


def plot_parts(results: dict[str, Any], output: Path, colours: dict[str, Any] | None = None) -> Path | None:
    """``part_reliance.png``: per method, the mean over seeds of the top part's drop, the other parts' and the
    top part's share (:func:`iadet.robustness.plots.plot_part_reliance`), whiskers the 95% Student-t interval
    over seeds (none with one seed); None when no method has part reliance."""
    summaries: dict[str, dict[str, Any]] = {}
    for m, entry in results["methods"].items():
        parts = entry.get("parts") or {}
        if parts.get("top_drop") is None or parts.get("other_drop") is None:
            continue
        summary: dict[str, Any] = {"objects": len(parts["top_drop"].get("runs") or [])}  # runs, not objects
        for key in ("top_drop", "other_drop", "top_share"):
            value = parts.get(key)
            if value is not None:
                n = len(value.get("runs") or [])
                summary[key] = {"mean": value["mean"], "ci95": t_half_width(value.get("std") or 0.0, n)}
        summaries[m] = summary
    if not summaries:
        return None
    return plot_part_reliance(summaries, output / "part_reliance.png", colours=_colours(results, colours))


def _colours(results: dict[str, Any], colours: dict[str, Any] | None) -> dict[str, Any]:
    return colours if colours is not None else method_colours(list(results["methods"]))


def _interval_of_mean(value: dict[str, Any], scale: float = 100.0) -> Interval:
    """The mean of a summary and its 95% Student-t interval over seeds (none with one seed)."""
    n = seeds_of(value) or 0
    half = t_half_width(value.get("std") or 0.0, n)
    mean = scale * value["mean"]
    return Interval(
        "", mean, None if half is None else mean - scale * half, None if half is None else mean + scale * half
    )


def _n_seeds_note(n: int) -> str:
    return "one seed, no intervals" if n == 1 else f"mean over {n} seeds, 95% Student-t intervals"


def forest_figure(results: dict[str, Any], colours: dict[str, Any] | None = None) -> Any | None:
    """The headline picture: per method (rows grouped by family) and split (panels), the paired difference to
    `none` on the primary metric, averaged over seeds, with its 95% interval; a line at 0; an interval that
    excludes 0 drawn thick with a filled dot. None without a `none` run or another method."""
    methods = [m for m in results["methods"] if m != BASELINE]
    if BASELINE not in results["methods"] or not methods:
        return None
    colours = _colours(results, colours)
    metric = primary_metric(results)
    splits = results["splits"]
    n = len(results["seeds"])
    groups = {f: ms for f, ms in family_rows(methods).items()}
    rows = sum(len(ms) + 0.9 for ms in groups.values()) + 0.8 * (len(groups) - 1)
    width = min(11.0, 2.2 + 3.0 * len(splits))
    panels: dict[str, dict[str, list[Interval]]] = {}
    for split in splits:
        panel: dict[str, list[Interval]] = {}
        for family, members in groups.items():
            for m in members:
                d = primary_paired(results["methods"][m], split, metric)
                if d is None:
                    continue
                low = None if d["ci_low"] is None else 100 * d["ci_low"]
                high = None if d["ci_high"] is None else 100 * d["ci_high"]
                label = row_label(m, d.get("n"), n)
                panel.setdefault(family, []).append(Interval(label, 100 * d["mean"], low, high))
        if panel:
            panels[split] = panel
    if not panels:
        return None
    splits = list(panels)
    fig = new_figure(width, 1.35 + 0.25 * rows, dpi=REPORT_DPI)
    axes = fig.subplots(1, len(splits), squeeze=False)[0]
    for k, (ax, split) in enumerate(zip(axes, splits)):
        draw_intervals(ax, panels[split], colours, labels=k == 0)
        base = primary_summary(results["methods"][BASELINE], split, metric)
        ax.set_title(f"{split}\n(none: {pct(base['mean'])})", fontsize=10)
        ax.set_xlabel(f"Δ {METRIC_NAMES[metric]} vs none (points)", fontsize=9)
        ax.tick_params(axis="x", labelsize=8.5)
    fig.suptitle(
        f"Paired difference to `none`, {METRIC_TITLES[metric]}: " + _n_seeds_note(n),
        fontsize=10.5,
    )
    fig.text(
        0.5, 0.01,
        "● filled, thick: the interval excludes 0    ○ open: it does not (same seed = same data order and "
        "initialisation)" if n > 1 else "one seed: each dot is one draw of the seed-to-seed noise",
        ha="center", va="bottom", fontsize=8.5, color="0.25",
    )  # fmt: skip
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def plot_forest(results: dict[str, Any], output: Path, colours: dict[str, Any] | None = None) -> Path | None:
    """Write :func:`forest_figure` as ``forest.png``; None when there is nothing to draw."""
    fig = forest_figure(results, colours)
    return None if fig is None else save_figure(fig, output / "forest.png")


def split_figure(results: dict[str, Any], colours: dict[str, Any] | None = None) -> Any:
    """Per split (panels) and method (rows by family), the primary metric's mean over seeds with its 95%
    interval; the dashed line is `none`'s mean."""
    colours = _colours(results, colours)
    metric = primary_metric(results)
    splits = results["splits"]
    n = len(results["seeds"])
    groups = family_rows(list(results["methods"]))
    rows = sum(len(ms) + 0.9 for ms in groups.values()) + 0.8 * (len(groups) - 1)
    fig = new_figure(min(11.0, 2.2 + 3.0 * len(splits)), 1.2 + 0.25 * rows, dpi=REPORT_DPI)
    axes = fig.subplots(1, len(splits), squeeze=False)[0]
    for k, (ax, split) in enumerate(zip(axes, splits)):
        panel: dict[str, list[Interval]] = {}
        for family, members in groups.items():
            for m in members:
                value = primary_summary(results["methods"][m], split, metric)
                interval = _interval_of_mean(value)
                interval.label = row_label(m, seeds_of(value), n)
                panel.setdefault(family, []).append(interval)
        base = results["methods"].get(BASELINE)
        reference = None if base is None else 100 * primary_summary(base, split, metric)["mean"]
        draw_intervals(ax, panel, colours, reference=None, mark_excluding_zero=False, labels=k == 0)
        if reference is not None:
            ax.axvline(reference, color="0.3", linewidth=0.9, linestyle="--", zorder=0)
        ax.set_title(split, fontsize=10)
        ax.set_xlabel(f"{METRIC_NAMES[metric]} (%)", fontsize=9)
        ax.tick_params(axis="x", labelsize=8.5)
    fig.suptitle(f"{METRIC_TITLES[metric]}: {_n_seeds_note(n)}; dashed: none", fontsize=10.5)
    fig.tight_layout()
    return fig


def per_class_heatmap_figure(results: dict[str, Any], colours: dict[str, Any] | None = None) -> Any | None:
    """AP per class (VOC07, the per-class metric the runs record): method × class heat maps, one per split,
    each cell the mean over seeds (sequential colours). None without per-class APs."""
    methods = list(results["methods"])
    splits = [s for s in results["splits"] if results["methods"][methods[0]]["per_class"].get(s)]
    if not splits:
        return None
    colours = _colours(results, colours)
    groups = family_rows(methods)
    ordered = [m for ms in groups.values() for m in ms]
    classes = list(results["methods"][methods[0]]["per_class"][splits[0]])
    fig = new_figure(min(11.5, 2.8 + 0.5 * len(classes) * len(splits)), 1.5 + 0.3 * len(ordered),
                     dpi=REPORT_DPI)  # fmt: skip
    fig.set_layout_engine("constrained")
    axes = fig.subplots(1, len(splits), squeeze=False)[0]
    image = None
    for k, (ax, split) in enumerate(zip(axes, splits)):
        values = np.array(
            [[100 * results["methods"][m]["per_class"][split].get(c, {"mean": np.nan})["mean"] for c in classes]
             for m in ordered]
        )  # fmt: skip
        image = draw_heatmap(ax, values, ordered if k == 0 else [""] * len(ordered), classes, cmap="viridis",
                             vmin=0.0, vmax=100.0, fmt="{:.0f}", row_colours=colours,
                             separators=family_starts(groups))  # fmt: skip
        ax.set_title(split, fontsize=10)
        ax.tick_params(axis="x", rotation=45)
    fig.colorbar(image, ax=list(axes), shrink=0.8, pad=0.01, aspect=30, label="AP (%)")
    n = len(results["seeds"])
    fig.suptitle(f"VOC07 AP per class (%), mean over {n} seed" + ("s" if n > 1 else ""), fontsize=10.5)
    return fig


def plot_results(results: dict[str, Any], output: Path, colours: dict[str, Any] | None = None) -> list[Path]:
    """``map_by_split.png`` (:func:`split_figure`), ``ap_per_class.png`` (:func:`per_class_heatmap_figure`) and,
    with an occlusion sweep, ``occlusion_curve.png``; returns their paths."""
    colours = _colours(results, colours)
    paths = [save_figure(split_figure(results, colours), output / "map_by_split.png")]
    fig = per_class_heatmap_figure(results, colours)
    if fig is not None:
        paths.append(save_figure(fig, output / "ap_per_class.png"))

    curves = {m: e["occlusion"] for m, e in results["methods"].items() if e.get("occlusion")}
    if curves:
        fig = new_figure(6, 4, dpi=REPORT_DPI)
        ax = fig.subplots()
        for m, c in curves.items():
            means = np.array([100 * v["mean"] for v in c["mAP"]])
            halves = np.array([t_half_width(v.get("std") or 0.0, seeds_of(v) or 0) or 0.0 for v in c["mAP"]])
            ax.plot(c["fractions"], means, marker="o", label=m, color=colours.get(m), gid=m)
            ax.fill_between(c["fractions"], means - 100 * halves, means + 100 * halves, alpha=0.15,
                            color=colours.get(m))  # fmt: skip
        ax.set_xlabel("occluded fraction of every box")
        ax.set_ylabel("VOC07 mAP (%)")
        ax.set_title(f"{_n_seeds_note(len(results['seeds']))}", fontsize=10)
        ax.legend(fontsize=8, loc="lower left")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        paths.append(save_figure(fig, output / "occlusion_curve.png"))
    return paths


def errors_figure(results: dict[str, Any], colours: dict[str, Any] | None = None) -> Any | None:
    """TIDE's dAP per error type: one panel per split (rows of panels) and error type (columns), one row per
    method with its mean over seeds and 95% interval; the dashed line is `none`'s mean. None when no run has the
    breakdown."""
    splits = [
        s for s in results["splits"] if any(s in e.get("errors", {}) for e in results["methods"].values())
    ]
    if not splits:
        return None
    colours = _colours(results, colours)
    n = len(results["seeds"])
    methods = [
        m for m in results["methods"] if all(s in results["methods"][m].get("errors", {}) for s in splits)
    ]
    groups = family_rows(methods)
    kinds = list(results["methods"][methods[0]]["errors"][splits[0]])
    rows = sum(len(ms) + 0.9 for ms in groups.values()) + 0.8 * (len(groups) - 1)
    fig = new_figure(min(11.5, 2.0 + 1.55 * len(kinds)), 0.6 + len(splits) * (0.7 + 0.14 * rows),
                     dpi=REPORT_DPI)  # fmt: skip
    fig.set_layout_engine("constrained")
    axes = fig.subplots(len(splits), len(kinds), squeeze=False)
    for i, split in enumerate(splits):
        for j, kind in enumerate(kinds):
            ax = axes[i][j]
            panel: dict[str, list[Interval]] = {}
            for family, members in groups.items():
                for m in members:
                    interval = _interval_of_mean(results["methods"][m]["errors"][split][kind])
                    interval.label = m
                    panel.setdefault(family, []).append(interval)
            draw_intervals(ax, panel, colours, reference=None, mark_excluding_zero=False, labels=j == 0)
            if BASELINE in results["methods"]:
                base = results["methods"][BASELINE]["errors"][split][kind]["mean"]
                ax.axvline(100 * base, color="0.3", linewidth=0.9, linestyle="--", zorder=0)
            if j == 0:
                ax.tick_params(axis="y", labelsize=7.5)
                ax.set_ylabel(split, fontsize=10, fontweight="bold")
            ax.tick_params(axis="x", labelsize=7.5)
            if i == 0:
                ax.set_title(kind, fontsize=10)
    fig.suptitle(
        f"Where AP is lost (TIDE dAP, AP points gained by fixing the error type): {_n_seeds_note(n)}; "
        "dashed: none",
        fontsize=10,
    )
    return fig


def plot_error_types(
    results: dict[str, Any], output: Path, colours: dict[str, Any] | None = None
) -> Path | None:
    """Write :func:`errors_figure` as ``errors_by_type.png``; None when no run has the breakdown."""
    fig = errors_figure(results, colours)
    return None if fig is None else save_figure(fig, output / "errors_by_type.png")


def per_class_delta_figure(results: dict[str, Any], colours: dict[str, Any] | None = None) -> Any | None:
    """A-Fast-RCNN's Fig. 5 as a heat map: method × class, one panel per split, each cell the mean paired
    change of AP against `none` (points), diverging around 0 on one scale for every panel; a framed cell in bold
    has a 95% interval that excludes 0. Each class is headed by `none`'s AP. None without a `none` run or
    another method."""
    splits = [s for s in results["splits"] if per_class_deltas(results, s)]
    if not splits:
        return None
    colours = _colours(results, colours)
    first = per_class_deltas(results, splits[0])
    groups = family_rows(list(first))
    methods = [m for ms in groups.values() for m in ms]
    classes = list(next(iter(first.values())))
    tables = {}
    for split in splits:
        deltas = per_class_deltas(results, split)
        values = np.full((len(methods), len(classes)), np.nan)
        marked = np.zeros_like(values, dtype=bool)
        for i, m in enumerate(methods):
            for j, c in enumerate(classes):
                d = deltas.get(m, {}).get(c)
                if d is not None:
                    values[i, j] = 100 * d["mean"]
                    marked[i, j] = excludes_zero(d)
        tables[split] = (values, marked)
    limit = max(1.0, float(np.nanmax([np.nanmax(np.abs(v)) for v, _ in tables.values()])))
    fig = new_figure(min(11.5, 2.8 + 0.5 * len(classes) * len(splits)), 1.7 + 0.3 * len(methods),
                     dpi=REPORT_DPI)  # fmt: skip
    fig.set_layout_engine("constrained")
    axes = fig.subplots(1, len(splits), squeeze=False)[0]
    image = None
    for k, (ax, split) in enumerate(zip(axes, splits)):
        values, marked = tables[split]
        base = results["methods"][BASELINE]["per_class"][split]
        columns = [f"{c}\n{pct(base[c]['mean'])}" for c in classes]
        image = draw_heatmap(ax, values, methods if k == 0 else [""] * len(methods), columns, cmap="RdBu",
                             vmin=-limit, vmax=limit, marked=marked, fmt=compact_number, fontsize=7,
                             row_colours=colours, separators=family_starts(groups))  # fmt: skip
        ax.set_title(split, fontsize=10)
    fig.colorbar(image, ax=list(axes), shrink=0.8, pad=0.01, aspect=30, label=f"Δ AP vs {BASELINE} (points)")
    n = len(results["seeds"])
    fig.suptitle(
        f"Change of VOC07 AP per class against `none` (under each class: none's AP), mean over {n} seed"
        + ("s" if n > 1 else "")
        + ("; framed, bold: the 95% interval excludes 0" if n > 1 else ""),
        fontsize=10,
    )
    return fig


def plot_per_class_deltas(
    results: dict[str, Any], output: Path, colours: dict[str, Any] | None = None
) -> Path | None:
    """Write :func:`per_class_delta_figure` as ``delta_ap_per_class.png``; None without a `none` run or another
    method."""
    fig = per_class_delta_figure(results, colours)
    return None if fig is None else save_figure(fig, output / "delta_ap_per_class.png")
