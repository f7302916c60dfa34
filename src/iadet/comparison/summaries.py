"""What a comparison's ``results.json`` says, read the same way by the report's tables and its figures: the
primary metric, a method's summary and paired difference on a split, per-class differences, seed counts."""

from __future__ import annotations

from typing import Any

from iadet.comparison.stats import paired_difference

BASELINE = "none"


def seeds_of(value: dict[str, Any]) -> int | None:
    """How many runs a summary (``{"mean", "std", "runs"}``) or a paired difference (``"n"``) is over; None
    when the results do not say."""
    if "runs" in value and value["runs"] is not None:
        return len(value["runs"])
    return value.get("n")


def excludes_zero(d: dict[str, Any]) -> bool:
    """Whether a paired difference's 95% interval excludes 0 (False without an interval)."""
    return d["ci_low"] is not None and (d["ci_low"] > 0 or d["ci_high"] < 0)


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


def pct(x: float | None) -> str:
    """A fraction in percent with one decimal, ``n/a`` for None."""
    return "n/a" if x is None else f"{100 * x:.1f}"


def row_label(method: str, seeds: int | None, all_seeds: int) -> str:
    """The method's name, with ``(k of n seeds)`` when its row is over fewer seeds than the comparison's."""
    return method if seeds is None or seeds >= all_seeds else f"{method} ({seeds} of {all_seeds} seeds)"
