"""``report.md`` and plots of a comparison's ``results.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

BASELINE = "none"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def results_table(results: dict[str, Any]) -> str:
    """Markdown: mAP mean ± std per method and split (percent), with the number of seeds."""
    splits = results["splits"]
    n = len(results["seeds"])
    lines = [
        "| method | " + " | ".join(f"{s} mAP (%)" for s in splits) + " |",
        "|---|" + "---|" * len(splits),
    ]
    for m, entry in results["methods"].items():
        cells = [f"{_pct(entry['splits'][s]['mean'])} ± {_pct(entry['splits'][s]['std'])}" for s in splits]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"mean ± sample std over {n} seed(s), VOC07 11-point mAP.")
    return "\n".join(lines)


def paired_table(results: dict[str, Any]) -> str:
    """Markdown: each method's paired difference to `none` (points of mAP) with a 95% CI."""
    splits = results["splits"]
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
            d = entry.get("paired_vs_none", {}).get(k)
            if d is None:
                cells.append("n/a")
                continue
            ci = "n/a" if d["ci_low"] is None else f"[{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}]"
            mark = " *" if d["ci_low"] is not None and (d["ci_low"] > 0 or d["ci_high"] < 0) else ""
            cells.append(f"{100 * d['mean']:+.1f} {ci}{mark}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Δ = method − none on the same seed (same data order and initialisation), averaged over seeds; "
        "the interval is Student-t; * marks an interval that excludes 0."
    )
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


def write_report(results: dict[str, Any], output: Path) -> Path:
    """Write ``report.md`` and the plots into ``output``; returns the report's path."""
    parts = ["# Comparison", "", results_table(results), "", "## Paired differences to `none`", ""]
    if BASELINE in results["methods"]:
        parts += [paired_table(results), ""]
    else:
        parts += ["(no `none` run: no paired differences)", ""]
    robust = robustness_table(results)
    if robust:
        parts += ["## Robustness to corruptions", "", robust, ""]
    for split in results["splits"]:
        parts += [f"## AP per class on `{split}` (%)", "", per_class_table(results, split), ""]
    plots = plot_results(results, output)
    parts += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    path = output / "report.md"
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def plot_results(results: dict[str, Any], output: Path) -> list[Path]:
    methods = list(results["methods"])
    splits = results["splits"]
    paths = []

    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(methods) * len(splits) / 2, 3.6))
    width = 0.8 / len(methods)
    x = np.arange(len(splits))
    for i, m in enumerate(methods):
        entry = results["methods"][m]["splits"]
        means = [100 * entry[s]["mean"] for s in splits]
        stds = [100 * entry[s]["std"] for s in splits]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, means, width, yerr=stds, capsize=3, label=m)
    ax.set_xticks(x, splits)
    ax.set_ylabel("VOC07 mAP (%)")
    ax.set_title(f"mean ± std over {len(results['seeds'])} seed(s)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(output / "map_by_split.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    split = splits[0]
    classes = list(results["methods"][methods[0]]["per_class"].get(split, {}))
    if classes:
        fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(classes) + 1), 3.6))
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
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)

    curves = {m: e["occlusion"] for m, e in results["methods"].items() if e.get("occlusion")}
    if curves:
        fig, ax = plt.subplots(figsize=(5, 3.6))
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
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths
