"""AP tables: a run's per-class results as text, and the IA paper's Table 4 layout in Markdown.

:func:`format_table` takes ``eval.json`` dicts as ``iadet eval`` writes them::

    {"metric": "voc07", "split": "test", "mAP": 0.703, "ap": {"aeroplane": 0.771, ...},
     "method": "ia", "train_set": "07+12", "backbone": "vgg16", "checkpoint": "...", ...}

and lays them out one row per run: method, train set, backbone, mAP, then one column per class,
in percent with one decimal, the best value of each column in bold.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iadet.errors import DataError
from iadet.evaluation.voc import VOCResult

# The column headers the VOC papers use.
SHORT_NAMES = {
    "aeroplane": "aero", "bicycle": "bike", "diningtable": "table", "motorbike": "mbike",
    "pottedplant": "plant", "tvmonitor": "tv",
}  # fmt: skip

_MISSING = "–"


def read_eval(path: str | Path) -> dict[str, Any]:
    """Load one ``eval.json``, checking that it has a numeric ``mAP`` and an ``ap`` dict."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"eval file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read eval file {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    problem = _check_eval(data)
    if problem:
        raise DataError(f"{path}: {problem}")
    return data


def read_eval_files(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """:func:`read_eval` of each path, in order."""
    return [read_eval(path) for path in paths]


def format_table(evals: Sequence[dict[str, Any]], *, short_names: bool = True) -> str:
    """Markdown table of several runs' results, in the style of the IA paper's Table 4.

    Args:
        evals: ``eval.json`` dicts (``mAP`` and ``ap`` in 0-1; ``method``, ``train_set``,
            ``backbone``, ``metric`` and ``split`` optional). Those that name a metric must
            name the same one.
        short_names: head the VOC classes' columns with the papers' abbreviations (aero, bike, ...).

    Returns:
        The table, then a one-line caption. Classes are columns in the order they first appear;
        a run without a class shows "–". A value is bold when it is the column's best (ties
        included) and the column has at least two values.
    """
    if not evals:
        raise DataError("no results to tabulate")
    for k, data in enumerate(evals, start=1):
        problem = _check_eval(data)
        if problem:
            method = data.get("method", "no method") if isinstance(data, dict) else type(data).__name__
            raise DataError(f"result {k} ({method}): {problem}")
    metrics = {str(data["metric"]) for data in evals if data.get("metric")}
    if len(metrics) > 1:
        raise DataError(
            f"results use different metrics ({', '.join(sorted(metrics))}); tabulate them separately"
        )

    classes: list[str] = []
    for data in evals:
        classes += [name for name in data["ap"] if name not in classes]
    header = ["Method", "Train set", "Backbone", "mAP"] + [
        SHORT_NAMES.get(c, c) if short_names else c for c in classes
    ]

    rows = [[_percent(data["mAP"])] + [_percent(data["ap"].get(c)) for c in classes] for data in evals]
    for column in range(len(rows[0])):
        values = [float(row[column]) for row in rows if row[column] != _MISSING]
        if len(values) < 2:
            continue
        best = max(values)
        for row in rows:
            if row[column] != _MISSING and float(row[column]) == best:
                row[column] = f"**{row[column]}**"

    lines = [_row(header), _row(["---"] * 3 + ["---:"] * (len(header) - 3))]
    for data, values in zip(evals, rows):
        text = [_cell(data.get(key)) for key in ("method", "train_set", "backbone")]
        lines.append(_row(text + values))
    metric = metrics.pop() if metrics else "unknown"
    splits = sorted({str(data.get("split")) for data in evals if data.get("split")})
    caption = f"AP (%) per class, {metric} metric" + (f", {'/'.join(splits)} split" if splits else "")
    return "\n".join(lines) + f"\n\n{caption}; best of each column in bold.\n"


def format_result(result: VOCResult) -> str:
    """Plain-text per-class table of a :class:`VOCResult`: positives, detections and AP in percent."""
    return format_summary(
        {"mAP": result.map, "ap": result.ap, "npos": result.npos, "detections": result.num_detections}
    )


def format_summary(summary: dict[str, Any]) -> str:
    """Plain-text per-class table of an ``eval.json``-style summary (VOC or COCO metrics).

    Columns ``npos`` and ``dets`` appear when the summary has them (the VOC evaluator's);
    COCO's six numbers follow the classes; pycocotools' -1 (undefined) prints as ``n/a``.
    """
    ap = summary.get("ap", {})
    npos, dets = summary.get("npos"), summary.get("detections")
    width = max(len("class"), len("mAP"), *(len(name) for name in ap)) if ap else len("class")
    counts = npos is not None and dets is not None
    header = f"{'class':<{width}}" + (f"  {'npos':>6}  {'dets':>8}" if counts else "") + f"  {'AP':>6}"
    lines = [header]
    for name, value in ap.items():
        middle = f"  {npos[name]:>6}  {dets[name]:>8}" if counts else ""
        lines.append(f"{name:<{width}}{middle}  {_percent_or_na(value):>6}")
    blank = f"  {'':>6}  {'':>8}" if counts else ""
    lines.append(f"{'mAP':<{width}}{blank}  {_percent_or_na(summary['mAP']):>6}")
    for key in ("AP", "AP50", "AP75", "APs", "APm", "APl"):
        if key in summary:
            lines.append(f"{key:<{width}}{blank}  {_percent_or_na(summary[key]):>6}")
    return "\n".join(lines)


def _percent_or_na(value: float | None) -> str:
    return "n/a" if value is None or value < 0 else f"{100 * value:.1f}"


def _check_eval(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "expected a JSON object"
    if not _is_number(data.get("mAP")):
        return "no numeric 'mAP'"
    ap = data.get("ap")
    if not isinstance(ap, dict) or not all(_is_number(v) for v in ap.values()):
        return "'ap' must map class names to numbers"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _percent(value: float | None) -> str:
    return _MISSING if value is None else f"{100 * value:.1f}"


def _cell(value: Any) -> str:
    return _MISSING if value in (None, "") else str(value).replace("|", "\\|").replace("\n", " ")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"
