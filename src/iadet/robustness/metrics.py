"""Robustness metrics of Michaelis et al. (2019), "Benchmarking Robustness in Object Detection".

With P the metric on clean data (mAP@0.5 on Pascal VOC) and CP(c, s) the metric under
corruption c at severity s:

* mPC = mean of CP(c, s) over the corruptions c in the table and the severities s = 1..5;
* rPC = mPC / P, a fraction (the paper prints it in percent).

Reference, Faster R-CNN R50-FPN on Pascal-C: P 80.5, mPC 48.6, rPC 60.4 %. mPC is comparable
with the paper's figures only when the table holds exactly the 15 benchmark corruptions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from iadet.errors import ConfigError, closest
from iadet.robustness.corruptions import ALL, EXTRA, GROUPS, SEVERITIES

__all__ = ["performance_under_corruption"]


def _value(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{what} must be a finite number, got {value!r}")
    if value < 0:
        raise ConfigError(f"{what} must not be negative, got {value!r}")
    return float(value)


def _severity(key: object, corruption: str) -> int:
    try:
        severity = int(key) if isinstance(key, (int, str)) and not isinstance(key, bool) else None
    except ValueError:
        severity = None
    if severity not in SEVERITIES:
        raise ConfigError(
            f"corruption '{corruption}' has severity {key!r}; severities are 1 to 5 "
            "(the clean result is passed separately)"
        )
    return severity


def performance_under_corruption(
    clean: float,
    table: Mapping[str, Mapping[int | str, float]],
    *,
    allow_partial: bool = False,
) -> dict[str, Any]:
    """Summarise a corruption benchmark run as ``robustness.json`` holds it.

    Args:
        clean: P, the metric on clean data.
        table: ``{corruption: {severity: metric}}``; severities as ints or strings ``"1"``-``"5"``.
        allow_partial: when False (default) every corruption must have all five severities,
            else a ConfigError names the missing ones; when True the means are taken over the
            cells given and ``"complete"`` says whether any were missing.

    Returns:
        ``{"P", "mPC", "rPC", "corruptions", "groups", "complete"}``: ``corruptions`` is the
        table with severities as strings ``"1"``-``"5"`` in order (JSON keys); ``groups`` is the
        mean over the cells of each category (``noise``, ``blur``, ``weather``, ``digital``,
        and ``extra`` for the 4 held-out ones) that has corruptions in the table. ``rPC`` is
        None when P is 0, where it is undefined (None becomes ``null`` in JSON, which has no NaN).

    Raises:
        ConfigError: empty table, unknown corruption, bad severity key or value, missing
            severities (unless ``allow_partial``), naming the culprit.
    """
    p = _value(clean, "clean performance P")
    if not table:
        raise ConfigError("no corruption results to summarise")
    corruptions: dict[str, dict[str, float]] = {}
    missing: list[str] = []
    for name, row in table.items():
        if name not in ALL:
            hint = closest(str(name), ALL) or f"; valid: {', '.join(ALL)}"
            raise ConfigError(f"unknown corruption '{name}' in the results{hint}")
        cells: dict[int, float] = {}
        for key, value in row.items():
            severity = _severity(key, name)
            if severity in cells:
                raise ConfigError(f"corruption '{name}' has severity {severity} twice")
            cells[severity] = _value(value, f"result of '{name}' at severity {severity}")
        if not cells:
            raise ConfigError(f"corruption '{name}' has no results")
        absent = [s for s in SEVERITIES if s not in cells]
        if absent and not allow_partial:
            missing.append(f"{name} (severities {', '.join(map(str, absent))})")
        corruptions[name] = {str(s): cells[s] for s in sorted(cells)}
    if missing:
        raise ConfigError(f"missing corruption results: {'; '.join(missing)}")

    def mean(names: list[str]) -> float:
        values = [v for n in names for v in corruptions[n].values()]
        return sum(values) / len(values)

    mpc = mean(list(corruptions))
    categories = {**GROUPS, "extra": EXTRA}
    groups = {
        group: mean(present)
        for group, members in categories.items()
        if (present := [n for n in members if n in corruptions])
    }
    complete = all(len(row) == len(SEVERITIES) for row in corruptions.values())
    return {
        "P": p,
        "mPC": mpc,
        "rPC": mpc / p if p > 0 else None,
        "corruptions": corruptions,
        "groups": groups,
        "complete": complete,
    }
