"""``report.md`` of a comparison's ``results.json``: its Markdown tables and the page that puts them together with
the figures (:mod:`iadet.comparison.report_figures`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iadet.comparison.plots import (
    method_colours,
)
from iadet.comparison.report_figures import (
    plot_error_types,
    plot_forest,
    plot_parts,
    plot_per_class_deltas,
    plot_results,
)
from iadet.comparison.stats import holm_adjusted
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


def spread_cell(value: dict[str, Any], scale: float = 100.0, digits: int = 1) -> str:
    """``mean ± std`` of a summary, scaled (100: percent); ``mean (1 seed)`` when it is one run, whose spread
    was never measured."""
    mean = "n/a" if value["mean"] is None else f"{scale * value['mean']:.{digits}f}"
    if seeds_of(value) == 1 or value.get("std") is None:
        return f"{mean} (1 seed)" if seeds_of(value) == 1 else mean
    return f"{mean} ± {scale * value['std']:.{digits}f}"


def _mark(d: dict[str, Any]) -> str:
    return " *" if excludes_zero(d) else ""


def interval_cell(d: dict[str, Any], scale: float = 100.0, digits: int = 1) -> str:
    """A paired difference (``PairedDifference.to_json()``) as ``+0.6 [-0.3, +1.4]``, scaled (100: points of a
    fraction); the mean alone when there is no interval (one seed)."""
    ci = (
        ""
        if d["ci_low"] is None
        else f" [{scale * d['ci_low']:+.{digits}f}, {scale * d['ci_high']:+.{digits}f}]"
    )
    return f"{scale * d['mean']:+.{digits}f}{ci}"


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
        lines.append(f"| {m} | " + " | ".join(pct(errors[k]["mean"]) for k in kinds) + " |")
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
        cells = [pct(results["methods"][m]["per_class"][split][c]["mean"]) for m in methods]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
