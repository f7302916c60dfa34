"""Drawing blocks of the ``compare`` report: method families, one colour per method, rows of intervals, heat maps.

Every figure of a report takes its colours from one :func:`method_colours` call over the report's methods, so a
method has the same colour everywhere. Colours come in hue families, one per :data:`FAMILIES` entry (IA in blues,
the random controls in purples, A-Fast-RCNN in reds, the image-space baselines in greens, DropBlock and the rest
in browns, the baseline in black), with the members of a family spread over shades of its hue; the rows of the
charts are labelled directly, so no legend covers the data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "FAMILIES",
    "Interval",
    "draw_heatmap",
    "draw_intervals",
    "compact_number",
    "family_rows",
    "family_starts",
    "method_colours",
    "method_family",
]

BASELINE = "none"

FAMILIES: dict[str, str] = {
    "baseline": "",
    "Inverted Attention": "Blues",
    "random controls": "Purples",
    "A-Fast-RCNN": "Reds",
    "image space": "Greens",
    "DropBlock and others": "YlOrBr",
}
"""The method families in the order the rows are drawn, each with the matplotlib colour map of its hue."""

_RANDOM_CONTROLS = {"random-dropout"}
_AFAST = {"asdn", "fixed-asdn", "astn", "asdn+astn", "hard-dropout", "jitter"}
_IMAGE_SPACE = {"random-erasing", "hide-and-seek", "cutout", "gridmask"}
BASELINE_COLOUR = (0.1, 0.1, 0.1, 1.0)
_SHADE_ORDER = ("ia", "ia-code", "random-dropout", "asdn", "fixed-asdn", "astn", "asdn+astn", "hard-dropout",
                "jitter", "random-erasing", "hide-and-seek", "cutout", "gridmask", "dropblock", "ohem")  # fmt: skip
"""The order in which a family's members take its shades (dark first), whatever order a report lists them in."""


def _shade_key(label: str) -> tuple[int, int, str]:
    name, *params = label.split(":")
    known = _SHADE_ORDER.index(name) if name in _SHADE_ORDER else len(_SHADE_ORDER)
    return known, len(params), label


def method_family(label: str) -> str:
    """The :data:`FAMILIES` entry of a method or variant label (``"ia:strategy=random"`` is a random control:
    IA's masking with the attention replaced by chance)."""
    name, *params = label.split(":")
    if name == BASELINE:
        return "baseline"
    if name in ("ia", "ia-code"):
        return "random controls" if "strategy=random" in params else "Inverted Attention"
    if name in _RANDOM_CONTROLS:
        return "random controls"
    if name in _AFAST:
        return "A-Fast-RCNN"
    if name in _IMAGE_SPACE:
        return "image space"
    return "DropBlock and others"


def family_rows(methods: Sequence[str]) -> dict[str, list[str]]:
    """``{family: [methods]}`` in :data:`FAMILIES`'s order, each family's methods in the given order; families
    without a method are left out."""
    out: dict[str, list[str]] = {f: [] for f in FAMILIES}
    for m in methods:
        out[method_family(m)].append(m)
    return {f: ms for f, ms in out.items() if ms}


def family_starts(groups: Mapping[str, Sequence[Any]]) -> list[int]:
    """The row index where each family after the first starts, for rows laid out family after family."""
    starts, k = [], 0
    for members in groups.values():
        if k:
            starts.append(k)
        k += len(members)
    return starts


def method_colours(methods: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    """One RGBA colour per method, from its family's hue: the ``k`` members of a family get ``k`` shades spread
    from dark to light (0.95 to 0.5 of the colour map; 0.75 for a lone member), in a fixed order of the methods
    (not the order given). Compute it once per report and pass it to every figure, so that a method keeps its
    colour across them."""
    from matplotlib import colormaps

    colours: dict[str, tuple[float, float, float, float]] = {}
    for family, members in family_rows(list(dict.fromkeys(methods))).items():
        if family == "baseline":
            colours.update({m: BASELINE_COLOUR for m in members})
            continue
        cmap = colormaps[FAMILIES[family]]
        members = sorted(members, key=_shade_key)
        shades = [0.75] if len(members) == 1 else np.linspace(0.95, 0.5, len(members))
        for m, shade in zip(members, shades):
            colours[m] = tuple(float(c) for c in cmap(float(shade)))  # type: ignore[assignment]
    return colours


@dataclass
class Interval:
    """One row of :func:`draw_intervals`: a point and its interval (None bounds: no interval, e.g. one seed)."""

    label: str
    value: float
    low: float | None = None
    high: float | None = None

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def row_positions(groups: Mapping[str, Sequence[Any]], gap: float = 0.8) -> tuple[list[float], list[float]]:
    """y of each member (top to bottom, one unit apart, ``gap`` more between groups) and y of each group's
    header, in the order given; y grows downwards (the axes are inverted by :func:`draw_intervals`)."""
    rows, headers, y = [], [], 0.0
    for members in groups.values():
        headers.append(y)
        y += 0.9
        for _ in members:
            rows.append(y)
            y += 1.0
        y += gap
    return rows, headers


def draw_intervals(
    ax: Any,
    groups: Mapping[str, Sequence[Interval]],
    colours: Mapping[str, Any],
    *,
    reference: float | None = 0.0,
    mark_excluding_zero: bool = True,
    labels: bool = True,
    label_colours: bool = True,
) -> list[Any]:
    """A forest of horizontal intervals on ``ax``: one row per :class:`Interval`, grouped under bold family
    headers, each in its method's colour; a vertical line at ``reference`` (None: none).

    With ``mark_excluding_zero``, an interval that excludes 0 is drawn thick with a filled marker, the others thin
    with an open marker. Returns the marker artists in row order (filled or not is what the tests read).
    """
    rows, headers = row_positions(groups)
    markers: list[Any] = []
    ticks, tick_labels, tick_kinds = [], [], []
    flat = [(family, item) for family, items in groups.items() for item in items]
    for y_head, family in zip(headers, groups):
        ticks.append(y_head)
        tick_labels.append(family)
        tick_kinds.append(None)
    for y, (_, item) in zip(rows, flat):
        colour = colours.get(item.label.split(" (")[0], BASELINE_COLOUR)
        strong = item.excludes_zero if mark_excluding_zero else True
        if item.low is not None and item.high is not None:
            ax.hlines(y, item.low, item.high, color=colour, linewidth=2.6 if strong else 1.4)
        (marker,) = ax.plot(
            [item.value], [y], marker="o", markersize=7 if strong else 6, linestyle="none",
            markerfacecolor=colour if strong else "white", markeredgecolor=colour, markeredgewidth=1.6,
            gid=item.label.split(" (")[0],
        )  # fmt: skip
        markers.append(marker)
        ticks.append(y)
        tick_labels.append(item.label)
        tick_kinds.append(colour)
    if reference is not None:
        ax.axvline(reference, color="black", linewidth=0.9, zorder=0)
    ax.set_ylim(max(rows + headers) + 0.7, min(headers) - 0.7)
    ax.margins(x=0.08)
    ax.grid(axis="x", alpha=0.3)
    ax.tick_params(axis="y", length=0)
    ax.set_yticks(ticks)
    if labels:
        ax.set_yticklabels(tick_labels)
        for text, kind in zip(ax.get_yticklabels(), tick_kinds):
            if kind is None:
                text.set_fontweight("bold")
                text.set_fontsize(text.get_fontsize() * 0.95)
            elif label_colours:
                text.set_color(_darker(kind))
    else:
        ax.set_yticklabels([])
    for y_head in headers[1:]:
        ax.axhline(y_head - 0.45, color="0.8", linewidth=0.6, zorder=0)
    return markers


def compact_number(value: float) -> str:
    """A heat-map cell: one decimal below 10 in magnitude, none from 10 (``-16``, ``2.1``; the colour gives the
    sign's meaning, the text keeps it)."""
    if abs(value) >= 9.95:
        return f"{round(value) + 0:.0f}"
    return f"{round(value, 1) + 0.0:.1f}"  # + 0.0: no '-0.0'


def _darker(colour: Any, factor: float = 0.75) -> tuple[float, float, float]:
    """``colour`` darkened (light shades stay readable as text)."""
    from matplotlib.colors import to_rgb

    return tuple(factor * c for c in to_rgb(colour))  # type: ignore[return-value]


def draw_heatmap(
    ax: Any,
    values: np.ndarray,
    rows: Sequence[str],
    columns: Sequence[str],
    *,
    cmap: str,
    vmin: float,
    vmax: float,
    marked: np.ndarray | None = None,
    fmt: str | Callable[[float], str] = "{:+.1f}",
    fontsize: float = 7.5,
    row_colours: Mapping[str, Any] | None = None,
    separators: Sequence[int] = (),
) -> Any:
    """A ``len(rows) x len(columns)`` heat map of ``values`` (NaN: a blank cell) with each value written in its
    cell; ``marked`` cells get a frame and bold text; a line above each row index in ``separators`` (e.g.
    where a method family starts). Returns the image (for a colour bar)."""
    from matplotlib.patches import Rectangle

    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    norm = image.norm
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            if not np.isfinite(v):
                continue
            strong = marked is not None and bool(marked[i, j])
            rgba = image.cmap(norm(v))
            light = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] > 0.55
            text = fmt(v) if callable(fmt) else fmt.format(v)
            ink = "black" if light else "white"
            ax.text(
                j, i, text.replace("-", "−"), ha="center", va="center", fontsize=fontsize, color=ink,
                fontweight="bold" if strong else "normal",
            )  # fmt: skip
            if strong:  # framed in the text's ink, so that a frame shows on dark cells too
                ax.add_patch(Rectangle((j - 0.42, i - 0.42), 0.84, 0.84, fill=False, edgecolor=ink,
                                       linewidth=1.6))  # fmt: skip
    ax.set_xticks(range(len(columns)), columns, fontsize=7.5)
    ax.set_yticks(range(len(rows)), rows, fontsize=8.5)
    if row_colours:
        for text, name in zip(ax.get_yticklabels(), rows):
            if name in row_colours:
                text.set_color(_darker(row_colours[name]))
    ax.tick_params(length=0)
    ax.set_xticks(np.arange(-0.5, len(columns)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(rows)), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.0)
    ax.tick_params(which="minor", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    for row in separators:
        ax.axhline(row - 0.5, color="0.25", linewidth=1.2)
    return image
