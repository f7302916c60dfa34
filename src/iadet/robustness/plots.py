"""Plots of the robustness results: mAP against severity, the corruption summary, the occlusion curve.

Every function takes the plain dicts of :mod:`iadet.robustness.evaluate` (or the JSON files
``iadet robustness`` writes), draws with matplotlib's object API (no pyplot state, no display
needed) and writes a PNG of ``figsize * dpi`` pixels. Functions for several detectors take
``{label: result}``; one detector is a mapping with one entry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from iadet.plotting import new_figure, save_figure
from iadet.robustness.corruptions import EXTRA, GROUPS, SEVERITIES

__all__ = [
    "plot_corruption_summary",
    "plot_occlusion",
    "plot_part_reliance",
    "plot_severity",
    "plot_severity_comparison",
]


def _percent(value: float | None) -> float:
    return math.nan if value is None else 100.0 * value


def _curve(result: Mapping[str, Any], name: str) -> tuple[list[int], list[float]]:
    """Severity 0 (clean P) followed by the severities run for ``name``."""
    row = result["corruptions"][name]
    severities = [0, *sorted(int(s) for s in row)]
    return severities, [_percent(result["P"]), *(_percent(row[str(s)]) for s in severities[1:])]


def _mean_curve(result: Mapping[str, Any]) -> tuple[list[int], list[float]]:
    """Clean P, then per severity the mean over the corruptions run at it (severities not run are left out)."""
    x, y = [0], [_percent(result["P"])]
    for s in SEVERITIES:
        cells = [row[str(s)] for row in result["corruptions"].values() if str(s) in row]
        if cells:
            x.append(s)
            y.append(_percent(sum(cells) / len(cells)))
    return x, y


def _metric_label(result: Mapping[str, Any]) -> str:
    return {"voc07": "VOC07 mAP@0.5 (%)", "voc": "VOC mAP@0.5 (%)", "coco": "COCO AP (%)"}.get(
        str(result.get("metric")), "mAP (%)"
    )


def _groups_present(names: Sequence[str]) -> dict[str, list[str]]:
    groups = {**GROUPS, "extra": EXTRA}
    return {
        g: [n for n in members if n in names]
        for g, members in groups.items()
        if any(n in names for n in members)
    }


def plot_severity(result: Mapping[str, Any], path: str | Path, *, title: str | None = None) -> Path:
    """One detector: mAP against severity (0 = clean), one panel per group, one line per corruption.

    ``result`` is a ``robustness.json`` dict. Width ``4 * panels`` inches, height 3.6, at 100 dpi.
    """
    groups = _groups_present(list(result["corruptions"]))
    figure = new_figure(4.0 * len(groups), 3.6)
    axes = figure.subplots(1, len(groups), sharey=True, squeeze=False)[0]
    for ax, (group, names) in zip(axes, groups.items()):
        for name in names:
            x, y = _curve(result, name)
            ax.plot(x, y, marker="o", markersize=3, label=name.replace("_", " "))
        ax.set_title(group)
        ax.set_xlabel("severity (0 = clean)")
        ax.set_xticks([0, *SEVERITIES])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    axes[0].set_ylabel(_metric_label(result))
    axes[0].set_ylim(bottom=0)
    rpc = result.get("rPC")
    summary = (
        f"P {_percent(result['P']):.1f}   mPC {_percent(result['mPC']):.1f}   "
        f"rPC {'-' if rpc is None else f'{100 * rpc:.1f} %'}"
    )
    figure.suptitle(f"{title}: {summary}" if title else summary, fontsize=10)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_severity_comparison(
    results: Mapping[str, Mapping[str, Any]], path: str | Path, *, columns: int = 4
) -> Path:
    """Several detectors: one panel per corruption (and one for the mean), one line per detector.

    Panels ``3.2 x 2.6`` inches in a grid of ``columns``, at 100 dpi.
    """
    names: list[str] = []
    for r in results.values():
        names.extend(n for n in r["corruptions"] if n not in names)
    panels = [*names, "mean"]
    rows = math.ceil(len(panels) / columns)
    figure = new_figure(3.2 * columns, 2.6 * rows)
    axes = figure.subplots(rows, columns, sharey=True, squeeze=False).ravel()
    for ax, panel in zip(axes, panels):
        for label, result in results.items():
            if panel == "mean":
                x, y = _mean_curve(result)
            elif panel in result["corruptions"]:
                x, y = _curve(result, panel)
            else:
                continue
            ax.plot(x, y, marker="o", markersize=3, label=label)
        ax.set_title("mean over corruptions" if panel == "mean" else panel.replace("_", " "), fontsize=9)
        ax.set_xticks([0, *SEVERITIES])
        ax.grid(alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    axes[0].set_ylim(bottom=0)
    axes[len(panels) - 1].legend(fontsize=7)
    for r in range(rows):
        axes[r * columns].set_ylabel(_metric_label(next(iter(results.values()))), fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_corruption_summary(results: Mapping[str, Mapping[str, Any]], path: str | Path) -> Path:
    """Bars per detector: P, mPC and the mPC of each group; rPC in the legend. 7 x 3.6 inches, 100 dpi."""
    groups = [
        g
        for g in ("noise", "blur", "weather", "digital", "extra")
        if any(g in r["groups"] for r in results.values())
    ]
    categories = ["P", "mPC", *groups]
    figure = new_figure(7.0, 3.6)
    ax = figure.subplots()
    width = 0.8 / max(len(results), 1)
    for k, (label, r) in enumerate(results.items()):
        values = [_percent(r["P"]), _percent(r["mPC"]), *(_percent(r["groups"].get(g)) for g in groups)]
        positions = [i + (k - (len(results) - 1) / 2) * width for i in range(len(categories))]
        rpc = r.get("rPC")
        ax.bar(
            positions, values, width, label=f"{label} (rPC {'-' if rpc is None else f'{100 * rpc:.1f} %'})"
        )
    ax.set_xticks(range(len(categories)), categories)
    ax.set_ylabel(_metric_label(next(iter(results.values()))))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("performance under corruption (mPC = mean over corruptions and severities)", fontsize=9)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_occlusion(curves: Mapping[str, Mapping[str, Any]], path: str | Path) -> Path:
    """mAP against the occluded fraction of every ground-truth box, one line per detector.

    ``curves`` maps a label to :func:`iadet.robustness.evaluate.occlusion_curve`'s dict. When the
    curves carry the achieved coverage, a second x-axis on top shows it. 6 x 4 inches, 100 dpi.
    """
    figure = new_figure(6.0, 4.0)
    ax = figure.subplots()
    first = next(iter(curves.values()))
    for label, curve in curves.items():
        ax.plot(
            [100 * f for f in curve["fractions"]],
            [_percent(v) for v in curve["mAP"]],
            marker="o",
            label=label,
        )
    ax.set_xlabel("occluded fraction of each ground-truth box, requested (%)")
    ax.set_ylabel(_metric_label(first))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    coverage = first.get("coverage")
    if coverage and all(c is not None for c in coverage):
        top = ax.secondary_xaxis("top")
        top.set_xticks([100 * f for f in first["fractions"]], [f"{100 * c:.0f}" for c in coverage])
        top.set_xlabel("covered, measured (%)", fontsize=8)
        top.tick_params(labelsize=7)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_part_reliance(
    summaries: Mapping[str, Mapping[str, Any]],
    path: str | Path,
    *,
    colours: Mapping[str, Any] | None = None,
) -> Path:
    """Per detector: the mean drop of the ground-truth probability when the most relied-on part is
    hidden next to the mean of the other three (left), and the top part's share (right), with 95%
    intervals. ``summaries`` maps a label to :func:`iadet.robustness.part_reliance.summarize`'s dict;
    ``colours`` (label -> colour, e.g. a compare report's) colours each detector's share bar and its labels.
    9 x 4 inches, 100 dpi, wider and with slanted labels for more than four detectors."""
    labels = [label for label, s in summaries.items() if s.get("objects")]
    many = len(labels) > 4
    figure = new_figure(max(9.0, 0.75 * len(labels) + 3.0), 4.8 if many else 4.0)
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    tick = (
        {"fontsize": 8, "rotation": 45, "ha": "right", "rotation_mode": "anchor"} if many else {"fontsize": 8}
    )
    x = list(range(len(labels)))
    width = 0.38
    # with method colours, the two kinds of part in greys, so that no bar reads as a method's hue
    for offset, key, name, grey in (
        (-width / 2, "top_drop", "most relied-on part", "0.3"),
        (width / 2, "other_drop", "other parts", "0.7"),
    ):
        means = [summaries[label][key]["mean"] for label in labels]
        errors = [summaries[label][key]["ci95"] or 0.0 for label in labels]
        left.bar([i + offset for i in x], means, width, yerr=errors, capsize=3, label=name,
                 color=grey if colours else None)  # fmt: skip
    left.set_xticks(x, labels, **tick)
    left.set_ylabel("drop of p(ground-truth class) when hidden")
    left.axhline(0, color="black", linewidth=0.5)
    left.grid(axis="y", alpha=0.3)
    left.legend(fontsize=8)
    shares = [summaries[label].get("top_share") or {"mean": math.nan, "ci95": 0.0} for label in labels]
    right.bar(
        x,
        [s["mean"] for s in shares],
        0.6,
        yerr=[s["ci95"] or 0.0 for s in shares],
        capsize=3,
        color=[colours.get(label, "tab:gray") for label in labels] if colours else "tab:gray",
    )
    right.axhline(0.25, color="black", linewidth=0.8, linestyle="--")
    right.set_xticks(x, labels, **tick)
    right.set_ylim(0, 1)
    right.set_ylabel("top part's share of the drops (0.25 = even)")
    if colours:
        from matplotlib.colors import to_rgb

        for ax in (left, right):
            for text, label in zip(ax.get_xticklabels(), labels):
                if label in colours:
                    text.set_color(tuple(0.75 * c for c in to_rgb(colours[label])))
    right.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return save_figure(figure, path)
