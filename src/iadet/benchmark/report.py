"""``report.md`` and plots of a comparison's ``results.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from iadet.benchmark.stats import holm_adjusted, paired_difference, t_half_width
from iadet.figures import new_figure, save_figure
from iadet.robustness.plots import plot_part_reliance

BASELINE = "none"
REPORT_DPI = 120


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


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
        cells = [
            f"{_pct(v['mean'])} ± {_pct(v['std'])}"
            for v in (primary_summary(entry, s, metric) for s in splits)
        ]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"mean ± sample std over {n} seed(s), {METRIC_TITLES[metric]} (the primary metric).")
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
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
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
            cell = f"{_pct(value['mean'])} ± {_pct(value['std'])}"
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
            cell = (
                f"{value['mean']:.3f} ± {value['std']:.3f}"
                if value.get("std") is not None
                else f"{value['mean']:.3f}"
            )
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
        cells = [
            f"{_pct(r[k]['mean'])} ± {_pct(r[k]['std'])}" if k in r else "n/a" for k in ("P", "mPC", "rPC")
        ]
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


def plot_parts(results: dict[str, Any], output: Path) -> Path | None:
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
    return plot_part_reliance(summaries, output / "part_reliance.png")


def write_report(results: dict[str, Any], output: Path) -> Path:
    """Write ``report.md`` and the plots into ``output``; returns the report's path."""
    parts = ["# Comparison", "", results_table(results), ""]
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
    chart = plot_error_types(results, output)
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
        chart = plot_parts(results, output)
        if chart is not None:
            parts += [f"![{chart.stem}]({chart.name})", ""]
    robust = robustness_table(results)
    if robust:
        parts += ["## Robustness to corruptions", "", robust, ""]
    for split in results["splits"]:
        parts += [f"## AP per class on `{split}` (%)", "", per_class_table(results, split), ""]
    delta = plot_per_class_deltas(results, output)
    if delta is not None:
        parts += [f"## Change of AP per class against `{BASELINE}`", ""]
        for split in results["splits"]:
            parts += [f"On `{split}`, points of AP:", "", per_class_delta_table(results, split), ""]
        parts += [
            f"Δ = method − {BASELINE} on the same seed, averaged over seeds; "
            "* marks a 95% Student-t interval that excludes 0 (A-Fast-RCNN's Fig. 5).",
            "",
            f"![{delta.stem}]({delta.name})",
            "",
        ]
    plots = plot_results(results, output)
    parts += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    path = output / "report.md"
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def plot_results(results: dict[str, Any], output: Path) -> list[Path]:
    methods = list(results["methods"])
    splits = results["splits"]
    paths = []

    fig = new_figure(1.6 + 1.3 * len(methods) * len(splits) / 2, 3.6, dpi=REPORT_DPI)
    ax = fig.subplots()
    width = 0.8 / len(methods)
    x = np.arange(len(splits))
    metric = primary_metric(results)
    for i, m in enumerate(methods):
        values = [primary_summary(results["methods"][m], s, metric) for s in splits]
        means = [100 * v["mean"] for v in values]
        stds = [100 * v["std"] for v in values]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, means, width, yerr=stds, capsize=3, label=m)
    ax.set_xticks(x, splits)
    ax.set_ylabel(f"{METRIC_TITLES[metric]} (%)")
    ax.set_title(f"mean ± std over {len(results['seeds'])} seed(s)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(output / "map_by_split.png")
    save_figure(fig, paths[-1])

    split = splits[0]
    classes = list(results["methods"][methods[0]]["per_class"].get(split, {}))
    if classes:
        fig = new_figure(max(5.0, 0.9 * len(classes) + 1), 3.6, dpi=REPORT_DPI)
        ax = fig.subplots()
        x = np.arange(len(classes))
        for i, m in enumerate(methods):
            pc = results["methods"][m]["per_class"][split]
            ax.bar(
                x + (i - (len(methods) - 1) / 2) * width,
                [100 * pc[c]["mean"] for c in classes],
                width,
                yerr=[100 * pc[c]["std"] for c in classes],
                capsize=2,
                label=m,
            )
        ax.set_xticks(x, classes, rotation=30, ha="right")
        ax.set_ylabel(f"AP on {split} (%)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(output / "ap_per_class.png")
        save_figure(fig, paths[-1])

    curves = {m: e["occlusion"] for m, e in results["methods"].items() if e.get("occlusion")}
    if curves:
        fig = new_figure(5, 3.6, dpi=REPORT_DPI)
        ax = fig.subplots()
        for m, c in curves.items():
            means = np.array([100 * v["mean"] for v in c["mAP"]])
            stds = np.array([100 * v["std"] for v in c["mAP"]])
            ax.plot(c["fractions"], means, marker="o", label=m)
            ax.fill_between(c["fractions"], means - stds, means + stds, alpha=0.2)
        ax.set_xlabel("occluded fraction of every box")
        ax.set_ylabel("VOC07 mAP (%)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(output / "occlusion_curve.png")
        save_figure(fig, paths[-1])
    return paths


def per_class_deltas(results: dict[str, Any], split: str) -> dict[str, dict[str, dict[str, Any]]]:
    """``{method: {class: paired difference}}`` of each method's per-class AP against `none` on ``split``,
    paired by seed (:func:`~iadet.benchmark.stats.paired_difference`, in 0-1); ``{}`` without a `none` run
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
    lines = ["| class | " + " | ".join(f"Δ {m}" for m in methods) + " |", "|---|" + "---|" * len(methods)]
    for c in classes:
        cells = []
        for m in methods:
            d = deltas[m].get(c)
            if d is None:
                cells.append("n/a")
                continue
            cells.append(f"{round(100 * d['mean'], 1) + 0.0:+.1f}{_mark(d)}")  # + 0.0: no '-0.0'
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_error_types(results: dict[str, Any], output: Path) -> Path | None:
    """TIDE's dAP per error type (mean over seeds, whiskers the std), one bar per method, one panel per split.
    Writes ``errors_by_type.png``; None when no run has the breakdown."""
    splits = [s for s in results["splits"] if errors_table(results, s)]
    if not splits:
        return None
    fig = new_figure(4.5 * len(splits), 3.6, dpi=REPORT_DPI)
    axes = fig.subplots(1, len(splits), squeeze=False)
    for ax, split in zip(axes[0], splits):
        rows = {m: e["errors"][split] for m, e in results["methods"].items() if split in e.get("errors", {})}
        kinds = list(next(iter(rows.values())))
        width = 0.8 / len(rows)
        for i, (m, errors) in enumerate(rows.items()):
            x = np.arange(len(kinds)) + (i - (len(rows) - 1) / 2) * width
            ax.bar(x, [100 * errors[k]["mean"] for k in kinds], width,
                   yerr=[100 * (errors[k]["std"] or 0.0) for k in kinds], capsize=2, label=m)  # fmt: skip
        ax.set_xticks(np.arange(len(kinds)), kinds)
        ax.set_title(split, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("dAP (AP points gained by fixing)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    path = output / "errors_by_type.png"
    save_figure(fig, path)
    return path


def plot_per_class_deltas(results: dict[str, Any], output: Path) -> Path | None:
    """A-Fast-RCNN's Fig. 5: per class, the change of AP of every method against `none`, one panel per split.

    Bars are the mean paired difference over seeds (AP points), whiskers its 95% interval (with two or
    more seeds). Writes ``delta_ap_per_class.png``; None without a `none` run or another method.
    """
    splits = [s for s in results["splits"] if per_class_deltas(results, s)]
    if not splits:
        return None
    first = per_class_deltas(results, splits[0])
    methods = list(first)
    classes = list(next(iter(first.values())))
    width = 0.8 / len(methods)
    fig = new_figure(max(5.0, 0.55 * len(classes) * max(1, len(methods)) ** 0.5 + 1.5), 2.8 * len(splits),
                     dpi=REPORT_DPI)  # fmt: skip
    axes = fig.subplots(len(splits), 1, squeeze=False)
    for ax, split in zip(axes[:, 0], splits):
        deltas = per_class_deltas(results, split)
        x = np.arange(len(classes))
        for i, m in enumerate(methods):
            values = [deltas.get(m, {}).get(c) for c in classes]
            means = np.array([100 * d["mean"] if d else np.nan for d in values])
            low = np.array(
                [100 * (d["mean"] - d["ci_low"]) if d and d["ci_low"] is not None else 0 for d in values]
            )
            high = np.array(
                [100 * (d["ci_high"] - d["mean"]) if d and d["ci_high"] is not None else 0 for d in values]
            )
            errors = np.vstack([low, high]) if (low.any() or high.any()) else None
            ax.bar(x + (i - (len(methods) - 1) / 2) * width, means, width, yerr=errors, capsize=2, label=m)
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(x, classes, rotation=30, ha="right")
        ax.set_ylabel(f"Δ AP vs {BASELINE} (points)")
        ax.set_title(f"{split}: mean over {len(results['seeds'])} seed(s)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = output / "delta_ap_per_class.png"
    save_figure(fig, path)
    return path
