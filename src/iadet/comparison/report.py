"""``report.md`` and plots of a comparison's ``results.json``."""

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
from iadet.comparison.stats import holm_adjusted, paired_difference, t_half_width
from iadet.plotting import new_figure, save_figure
from iadet.robustness.plots import plot_part_reliance

BASELINE = "none"
REPORT_DPI = 120


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def seeds_of(value: dict[str, Any]) -> int | None:
    """How many runs a summary (``{"mean", "std", "runs"}``) or a paired difference (``"n"``) is over; None
    when the results do not say."""
    if "runs" in value and value["runs"] is not None:
        return len(value["runs"])
    return value.get("n")


def spread_cell(value: dict[str, Any], scale: float = 100.0, digits: int = 1) -> str:
    """``mean ± std`` of a summary, scaled (100: percent); ``mean (1 seed)`` when it is one run, whose spread
    was never measured."""
    mean = "n/a" if value["mean"] is None else f"{scale * value['mean']:.{digits}f}"
    if seeds_of(value) == 1 or value.get("std") is None:
        return f"{mean} (1 seed)" if seeds_of(value) == 1 else mean
    return f"{mean} ± {scale * value['std']:.{digits}f}"


def row_label(method: str, seeds: int | None, all_seeds: int) -> str:
    """The method's name, with ``(k of n seeds)`` when its row is over fewer seeds than the comparison's."""
    return method if seeds is None or seeds >= all_seeds else f"{method} ({seeds} of {all_seeds} seeds)"


def _excludes_zero(d: dict[str, Any]) -> bool:
    return d["ci_low"] is not None and (d["ci_low"] > 0 or d["ci_high"] < 0)


def _mark(d: dict[str, Any]) -> str:
    return " *" if _excludes_zero(d) else ""


def interval_cell(d: dict[str, Any], scale: float = 100.0, digits: int = 1) -> str:
    """A paired difference (``PairedDifference.to_json()``) as ``+0.6 [-0.3, +1.4]``, scaled (100: points of a
    fraction); the mean alone when there is no interval (one seed)."""
    ci = (
        ""
        if d["ci_low"] is None
        else f" [{scale * d['ci_low']:+.{digits}f}, {scale * d['ci_high']:+.{digits}f}]"
    )
    return f"{scale * d['mean']:+.{digits}f}{ci}"


METRIC_NAMES = {"voc07": "VOC07", "voc": "VOC area", "AP": "AP", "AP50": "AP50", "AP75": "AP75"}
METRIC_TITLES = {
    "voc07": "VOC07 11-point mAP",
    "voc": "VOC area mAP",
    "AP": "COCO AP@[.5:.95]",
    "AP50": "COCO AP50",
    "AP75": "COCO AP75",
}


def primary_metric(results: dict[str, Any]) -> str:
    """The comparison's primary metric (``results["primary"]``; VOC07 mAP in results without one)."""
    return results.get("primary", "voc07")


def primary_summary(entry: dict[str, Any], split: str, metric: str) -> dict[str, Any]:
    """A method's ``{"mean", "std", "runs"}`` of ``metric`` on ``split`` (VOC07 is also ``entry["splits"]``)."""
    if split in entry.get("metrics", {}):
        return entry["metrics"][split][metric]
    if metric != "voc07":
        raise KeyError(f"no {metric} on {split} in these results")
    return entry["splits"][split]


def primary_paired(entry: dict[str, Any], split: str, metric: str) -> dict[str, Any] | None:
    """A method's paired difference to `none` on ``metric`` and ``split``; None for `none` itself."""
    paired = entry.get("paired_metrics_vs_none", {}).get(split, {})
    if metric in paired:
        return paired[metric]
    return entry.get("paired_vs_none", {}).get(split) if metric == "voc07" else None


def results_table(results: dict[str, Any]) -> str:
    """Markdown: the primary metric's mean ± std per method and split (percent), with the number of seeds."""
    splits = results["splits"]
    metric = primary_metric(results)
    n = len(results["seeds"])
    lines = [
        "| method | " + " | ".join(f"{s} {METRIC_NAMES[metric]} (%)" for s in splits) + " |",
        "|---|" + "---|" * len(splits),
    ]
    for m, entry in results["methods"].items():
        values = [primary_summary(entry, s, metric) for s in splits]
        cells = [spread_cell(v) for v in values]
        seeds = min((k for k in map(seeds_of, values) if k is not None), default=None)
        lines.append(f"| {row_label(m, seeds, n)} | " + " | ".join(cells) + " |")
    lines.append("")
    if n == 1:
        lines.append(
            f"One seed, {METRIC_TITLES[metric]} (the primary metric): no spread was measured (it needs two seeds "
            "or more), and a difference between two rows is one draw of the seed-to-seed noise."
        )
    else:
        lines.append(f"mean ± sample std over {n} seeds, {METRIC_TITLES[metric]} (the primary metric).")
    return "\n".join(lines)


def pending_line(results: dict[str, Any]) -> str:
    """The methods left out because some of their seeds have not finished (``compare --finished-only``)."""
    n = len(results["seeds"])
    listed = "; ".join(
        f"`{m}` ({len(done)} of {n}" + (f": seeds {', '.join(map(str, done))})" if done else ")")
        for m, done in results.get("pending", {}).items()
    )
    return f"Not in these tables, fewer seeds finished than asked: {listed}."


def paired_table(results: dict[str, Any]) -> str:
    """Markdown: each method's paired difference to `none` on the primary metric (points) with a 95% CI."""
    splits = results["splits"]
    metric = primary_metric(results)
    keys = list(splits)
    if any("mPC" in e.get("paired_vs_none", {}) for e in results["methods"].values()):
        keys.append("mPC")
    lines = [
        "| method | " + " | ".join(f"Δ {k} (points) [95% CI]" for k in keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for m, entry in results["methods"].items():
        if m == BASELINE:
            continue
        cells = []
        for k in keys:
            d = entry["paired_vs_none"].get(k) if k == "mPC" else primary_paired(entry, k, metric)
            if d is None:
                cells.append("n/a")
                continue
            ci = "n/a" if d["ci_low"] is None else f"[{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}]"
            cells.append(f"{100 * d['mean']:+.1f} {ci}{_mark(d)}")
        seeds = min(
            (d["n"] for k in keys if (d := primary_paired(entry, k, metric)) and "n" in d), default=None
        )
        lines.append(f"| {row_label(m, seeds, len(results['seeds']))} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Δ = method − none in {METRIC_TITLES[metric]} on the same seed (same data order and initialisation), "
        "averaged over seeds; the interval is Student-t; * marks an interval that excludes 0."
    )
    return "\n".join(lines)


def power_table(results: dict[str, Any]) -> str | None:
    """Markdown: per method and split, the spread of the paired differences on the primary metric, the
    half-width of their 95% interval (the smallest effect these seeds tell apart from 0 at this spread) and
    the paired t-test's p-value, Holm-adjusted over the methods compared to `none` on that split."""
    splits = results["splits"]
    metric = primary_metric(results)
    methods = [m for m in results["methods"] if m != BASELINE]
    paired = {m: {s: primary_paired(results["methods"][m], s, metric) for s in splits} for m in methods}
    if not any(d and d["ci_low"] is not None for row in paired.values() for d in row.values()):
        return None
    adjusted = {
        s: dict(zip(methods, holm_adjusted([(paired[m][s] or {}).get("p_value") for m in methods])))
        for s in splits
    }
    lines = [
        "| method | " + " | ".join(f"{s}: sd(Δ) · ±95% · p (Holm)" for s in splits) + " |",
        "|---|" + "---|" * len(splits),
    ]
    for m in methods:
        cells = []
        for s in splits:
            d = paired[m][s]
            if d is None or d["ci_low"] is None:
                cells.append("n/a")
                continue
            p = adjusted[s][m]
            cells.append(
                f"{100 * d['std']:.1f} · ±{100 * (d['ci_high'] - d['ci_low']) / 2:.1f} · "
                + ("n/a" if p is None else f"{p:.2f}")
            )
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def metrics_table(results: dict[str, Any], split: str) -> str | None:
    """Markdown: every metric of ``split`` per method (mean ± std, percent) and its paired Δ to `none`."""
    rows = [(m, e) for m, e in results["methods"].items() if split in e.get("metrics", {})]
    if not rows:
        return None
    keys = list(METRIC_NAMES)
    lines = [
        "| method | " + " | ".join(f"{METRIC_NAMES[k]}" for k in keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for m, entry in rows:
        cells = []
        for k in keys:
            value = entry["metrics"][split][k]
            cell = spread_cell(value)
            d = entry.get("paired_metrics_vs_none", {}).get(split, {}).get(k)
            if d is not None:
                cell += f" ({100 * d['mean']:+.1f}{_mark(d)})"
            cells.append(cell)
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def errors_table(results: dict[str, Any], split: str) -> str | None:
    """Markdown: TIDE's dAP per error type (points of area AP gained by fixing it), per method."""
    rows = [(m, e["errors"][split]) for m, e in results["methods"].items() if split in e.get("errors", {})]
    if not rows:
        return None
    kinds = list(rows[0][1])
    lines = ["| method | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for m, errors in rows:
        lines.append(f"| {m} | " + " | ".join(_pct(errors[k]["mean"]) for k in kinds) + " |")
    return "\n".join(lines)


def parts_table(results: dict[str, Any]) -> str | None:
    """Markdown: part reliance per method (mean over seeds of each run's mean), with paired Δ to `none`."""
    rows = [(m, e) for m, e in results["methods"].items() if e.get("parts")]
    if not rows:
        return None
    keys = [("probability", "p intact"), ("top_drop", "top drop"), ("other_drop", "other drops"),
            ("top_share", "top part's share")]  # fmt: skip
    lines = ["| method | " + " | ".join(name for _, name in keys) + " |", "|---|" + "---|" * len(keys)]
    for m, entry in rows:
        cells = []
        for key, _ in keys:
            value = entry["parts"].get(key)
            if value is None:
                cells.append("n/a")
                continue
            cell = spread_cell(value, scale=1.0, digits=3)
            d = entry.get("paired_parts_vs_none", {}).get(key)
            if d is not None:
                cell += f" ({d['mean']:+.3f}{_mark(d)})"
            cells.append(cell)
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def robustness_table(results: dict[str, Any]) -> str | None:
    rows = [(m, e["robustness"]) for m, e in results["methods"].items() if e.get("robustness")]
    if not rows:
        return None
    lines = ["| method | P (%) | mPC (%) | rPC (%) |", "|---|---|---|---|"]
    for m, r in rows:
        cells = [spread_cell(r[k]) if k in r else "n/a" for k in ("P", "mPC", "rPC")]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_class_table(results: dict[str, Any], split: str) -> str:
    methods = list(results["methods"])
    classes = list(results["methods"][methods[0]]["per_class"].get(split, {}))
    lines = ["| class | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for c in classes:
        cells = [_pct(results["methods"][m]["per_class"][split][c]["mean"]) for m in methods]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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


def write_report(results: dict[str, Any], output: Path) -> Path:
    """Write ``report.md`` and the plots into ``output``; returns the report's path.

    The headline picture, :func:`plot_forest` (``forest.png``), comes first; every figure takes its colours
    from one :func:`~iadet.comparison.plots.method_colours` over the report's methods."""
    colours = method_colours(list(results["methods"]))
    parts = ["# Comparison", ""]
    forest = plot_forest(results, output, colours)
    if forest is not None:
        parts += [f"![{forest.stem}]({forest.name})", ""]
    parts += [results_table(results), ""]
    if results.get("pending"):
        parts += [pending_line(results), ""]
    parts += ["## Paired differences to `none`", ""]
    if BASELINE in results["methods"]:
        parts += [paired_table(results), ""]
        power = power_table(results)
        if power:
            parts += [
                "## Seed spread and the smallest detectable effect",
                "",
                power,
                "",
                f"On the primary metric, in points: sd(Δ) is the spread over seeds of the paired differences to "
                f"`{BASELINE}`, ±95% the half-width of their interval — with {len(results['seeds'])} seeds, a mean "
                "difference must exceed it to exclude 0 — and p the paired t-test's p-value, "
                f"Holm-adjusted over the {len(results['methods']) - 1} method(s) compared to `{BASELINE}` on that "
                "split (with many methods, some unadjusted intervals exclude 0 by chance).",
                "",
            ]
    else:
        parts += ["(no `none` run: no paired differences)", ""]
    for split in results["splits"]:
        table = metrics_table(results, split)
        if table:
            parts += [
                f"## Every metric on `{split}` (%)",
                "",
                table,
                "",
                "VOC07: 11-point mAP; VOC area: the devkit's area AP; AP, AP50, AP75: pycocotools (AP over IoU "
                f".5:.95); the primary is {METRIC_NAMES[primary_metric(results)]}. Mean ± sample std over seeds; in "
                "brackets the paired Δ to `none`, * when its 95% interval excludes 0.",
                "",
            ]
    for split in results["splits"]:
        table = errors_table(results, split)
        if table:
            parts += [
                f"## Where AP is lost on `{split}` (TIDE, points)",
                "",
                table,
                "",
                "dAP of each error type (Bolya et al. 2020) on the devkit's area AP at IoU 0.5, mean over seeds; "
                "`iadet analyze errors` has the per-class breakdown, PR curves and confusion matrices.",
                "",
            ]
    chart = plot_error_types(results, output, colours)
    if chart is not None:
        parts += [f"![{chart.stem}]({chart.name})", ""]
    parts_md = parts_table(results)
    if parts_md:
        parts += [
            "## Part reliance",
            "",
            parts_md,
            "",
            "Drop of p(ground-truth class) when the most relied-on part of an object is hidden (top) and the mean "
            "of the other three, and the top part's share of the drops (0.25 = even); per run the mean over the "
            "test objects whose four parts are visible, then mean ± std over seeds; in brackets the paired Δ to "
            "`none`, * when its 95% interval excludes 0 (`iadet analyze parts`).",
            "",
        ]
        chart = plot_parts(results, output, colours)
        if chart is not None:
            parts += [f"![{chart.stem}]({chart.name})", ""]
    robust = robustness_table(results)
    if robust:
        parts += ["## Robustness to corruptions", "", robust, ""]
    for split in results["splits"]:
        parts += [f"## AP per class on `{split}` (%)", "", per_class_table(results, split), ""]
    delta = plot_per_class_deltas(results, output, colours)
    if delta is not None:
        parts += [f"## Change of AP per class against `{BASELINE}`", ""]
        for split in results["splits"]:
            parts += [f"On `{split}`, points of AP:", "", per_class_delta_table(results, split), ""]
        parts += [
            f"VOC07 AP per class; `{BASELINE} AP` is the baseline's mean ± std over seeds, Δ = method − "
            f"{BASELINE} on the same seed, averaged over seeds; * marks a 95% Student-t interval that excludes 0 "
            "(A-Fast-RCNN's Fig. 5).",
            "",
            f"![{delta.stem}]({delta.name})",
            "",
        ]
    plots = plot_results(results, output, colours)
    parts += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    path = output / "report.md"
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


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
        ax.set_title(f"{split}\n(none: {_pct(base['mean'])})", fontsize=10)
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


def per_class_deltas(results: dict[str, Any], split: str) -> dict[str, dict[str, dict[str, Any]]]:
    """``{method: {class: paired difference}}`` of each method's per-class AP against `none` on ``split``,
    paired by seed (:func:`~iadet.comparison.stats.paired_difference`, in 0-1); ``{}`` without a `none` run
    or without the per-seed APs."""
    methods = results["methods"]
    base = methods.get(BASELINE, {}).get("per_class", {}).get(split)
    if not base:
        return {}
    out = {}
    for m, entry in methods.items():
        mine = entry.get("per_class", {}).get(split)
        if m == BASELINE or not mine:
            continue
        out[m] = {
            c: paired_difference(mine[c]["runs"], base[c]["runs"]).to_json()
            for c in base
            if c in mine and "runs" in mine[c] and "runs" in base[c]
        }
    return out


def per_class_delta_table(results: dict[str, Any], split: str) -> str:
    """Markdown: per class, each method's mean paired ΔAP against `none` (points), * where the CI excludes 0."""
    deltas = per_class_deltas(results, split)
    methods = list(deltas)
    classes = list(next(iter(deltas.values()), {}))
    base = results["methods"][BASELINE]["per_class"][split] if methods else {}
    lines = [
        f"| class | {BASELINE} AP | " + " | ".join(f"Δ {m}" for m in methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    for c in classes:
        cells = [spread_cell(base[c])]
        for m in methods:
            d = deltas[m].get(c)
            if d is None:
                cells.append("n/a")
                continue
            cells.append(f"{round(100 * d['mean'], 1) + 0.0:+.1f}{_mark(d)}")  # + 0.0: no '-0.0'
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def errors_figure(results: dict[str, Any], colours: dict[str, Any] | None = None) -> Any | None:
    """TIDE's dAP per error type: one panel per split (rows of panels) and error type (columns), one row per
    method with its mean over seeds and 95% interval; the dashed line is `none`'s mean. None when no run has the
    breakdown."""
    splits = [s for s in results["splits"] if errors_table(results, s)]
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
                    marked[i, j] = _excludes_zero(d)
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
        columns = [f"{c}\n{_pct(base[c]['mean'])}" for c in classes]
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
