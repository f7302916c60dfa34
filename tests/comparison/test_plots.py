"""The report's figures: one colour per method everywhere, the forest plot's marks, the per-class heat map, and
what one seed or a row with fewer seeds prints."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from iadet.comparison.compare import run_scores
from iadet.comparison.plots import family_rows, method_colours, method_family
from iadet.comparison.report import metrics_table, paired_table, results_table, write_report
from iadet.comparison.report_figures import errors_figure, forest_figure, per_class_delta_figure, split_figure
from iadet.comparison.stats import paired_difference, summarize

KEYS = ("voc07", "voc", "AP", "AP50", "AP75")
KINDS = ("cls", "loc", "both", "dupe", "bkg", "missed")
SPLITS = ("test", "test_occluded")


def make_results(
    ap: dict[str, list[float]], per_class: dict[str, dict[str, list[float]]] | None = None
) -> dict:
    """Results on two splits where every metric, every error type and every class is ``ap`` per seed (or
    ``per_class``), paired to `none` as :func:`iadet.comparison.compare.aggregate` does."""
    seeds = list(range(max(len(v) for v in ap.values())))
    out = {"methods": {}, "seeds": seeds, "splits": list(SPLITS), "primary": "AP"}
    for m, runs in ap.items():
        classes = (per_class or {}).get(m, {"cat": runs, "dog": runs})
        entry = {
            "splits": {s: summarize(runs).to_json() for s in SPLITS},
            "per_class": {s: {c: summarize(v).to_json() for c, v in classes.items()} for s in SPLITS},
            "paired_vs_none": {},
            "metrics": {s: {k: summarize(runs).to_json() for k in KEYS} for s in SPLITS},
            "errors": {s: {k: summarize([r / 10 for r in runs]).to_json() for k in KINDS} for s in SPLITS},
        }
        if m != "none" and "none" in ap:
            base = ap["none"][: len(runs)]
            entry["paired_vs_none"] = {s: paired_difference(runs, base).to_json() for s in SPLITS}
            entry["paired_metrics_vs_none"] = {
                s: {k: paired_difference(runs, base).to_json() for k in KEYS} for s in SPLITS
            }
        out["methods"][m] = entry
    return out


ALL = ["none", "ia", "ia-code", "ia:strategy=random", "ia:strategy=hard", "asdn", "fixed-asdn", "astn",
       "asdn+astn", "random-dropout", "hard-dropout", "jitter", "ohem", "dropblock", "random-erasing",
       "hide-and-seek", "cutout", "gridmask"]  # fmt: skip


def test_families_group_the_methods_as_the_papers_do() -> None:
    assert method_family("ia:strategy=random") == "random controls" == method_family("random-dropout")
    assert method_family("ia:strategy=hard") == "Inverted Attention" == method_family("ia-code")
    assert method_family("asdn:pretrain_fraction=0") == "A-Fast-RCNN"
    assert method_family("cutout") == "image space" and method_family("dropblock") == "DropBlock and others"
    groups = family_rows(["cutout", "ia", "none", "dropblock", "asdn", "random-dropout"])
    assert list(groups) == ["baseline", "Inverted Attention", "random controls", "A-Fast-RCNN", "image space",
                            "DropBlock and others"]  # fmt: skip


def test_colours_are_distinct_for_every_method_and_share_a_hue_within_a_family() -> None:
    assert len(ALL) >= 16
    colours = method_colours(ALL)
    rgb = {m: np.array(to_rgba(c)[:3]) for m, c in colours.items()}
    closest = min(np.linalg.norm(rgb[a] - rgb[b]) for a, b in itertools.combinations(ALL, 2))
    assert closest > 0.1  # no two methods share a colour (Matplotlib's ten default colours repeat from 11)
    # the order of the list does not change a method's colour
    assert method_colours(list(reversed(ALL))) == colours
    # a family's hue: IA's blues have more blue than red, A-Fast-RCNN's reds the other way round
    assert all(rgb[m][2] > rgb[m][0] for m in ("ia", "ia-code"))
    assert all(rgb[m][0] > rgb[m][2] for m in ("asdn", "astn", "asdn+astn"))


def _marker_colours(figure) -> dict[str, set[tuple[float, ...]]]:
    out: dict[str, set[tuple[float, ...]]] = {}
    for line in figure.findobj(Line2D):
        if line.get_gid():
            out.setdefault(line.get_gid(), set()).add(tuple(np.round(to_rgba(line.get_markeredgecolor()), 4)))
    return out


def test_a_method_has_the_same_colour_in_every_figure() -> None:
    data = make_results({"none": [0.50, 0.52, 0.54], "ia": [0.53, 0.54, 0.58], "cutout": [0.40, 0.45, 0.50],
                         "asdn": [0.45, 0.47, 0.49]})  # fmt: skip
    colours = method_colours(list(data["methods"]))
    seen: dict[str, set] = {}
    for figure in (forest_figure(data), split_figure(data), errors_figure(data)):
        for m, c in _marker_colours(figure).items():
            seen.setdefault(m, set()).update(c)
    assert set(seen) == set(data["methods"])
    for m, found in seen.items():
        assert found == {tuple(np.round(to_rgba(colours[m]), 4))}, m


def test_forest_marks_exactly_the_intervals_that_exclude_zero() -> None:
    data = make_results({
        "none": [0.50, 0.52, 0.54, 0.56],
        "ia": [0.53, 0.54, 0.58, 0.59],  # +3, +2, +4, +3: the interval excludes 0
        "asdn": [0.49, 0.53, 0.53, 0.57],  # -1, +1, -1, +1: it does not
        "cutout": [0.45, 0.48, 0.48, 0.52],  # -5, -4, -6, -4: it does, below 0
    })  # fmt: skip
    figure = forest_figure(data)
    axes = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title().split("\n")[0] for ax in axes] == list(SPLITS)  # one panel per split
    for ax in axes:
        filled = {
            line.get_gid(): to_rgba(line.get_markerfacecolor()) != to_rgba("white")
            for line in ax.get_lines()
            if line.get_gid()
        }
        assert filled == {"ia": True, "asdn": False, "cutout": True}
        assert any(line.get_xdata()[0] == 0 for line in ax.get_lines() if not line.get_gid())  # the line at 0
    assert not figure.legends and not any(ax.get_legend() for ax in figure.axes)  # rows are labelled directly
    assert forest_figure(make_results({"ia": [0.5, 0.6]})) is None  # no baseline, no forest


def test_per_class_heat_map_frames_the_cells_whose_interval_excludes_zero() -> None:
    per_class = {
        "none": {"cat": [0.5, 0.6, 0.7], "dog": [0.4, 0.4, 0.4]},
        "ia": {"cat": [0.6, 0.7, 0.8], "dog": [0.3, 0.5, 0.4]},  # cat: +0.1 each seed (framed); dog: not
        "asdn": {"cat": [0.5, 0.6, 0.7], "dog": [0.2, 0.25, 0.3]},  # cat: 0 (not); dog: -0.2, -0.15, -0.1
    }
    data = make_results({m: [0.5, 0.5, 0.5] for m in per_class}, per_class)
    figure = per_class_delta_figure(data)
    panels = [ax for ax in figure.axes if ax.get_images()]
    assert len(panels) == len(SPLITS)
    for ax in panels:
        frames = [p for p in ax.patches if isinstance(p, Rectangle)]
        # rows: ia, asdn (by family); columns: cat, dog; a frame's centre is its cell
        cells = {
            (round(p.get_y() + p.get_height() / 2), round(p.get_x() + p.get_width() / 2)) for p in frames
        }
        assert cells == {(0, 0), (1, 1)}
        image = ax.get_images()[0]
        low, high = image.get_clim()
        assert low == -high  # diverging around 0
        assert ax.get_xticklabels()[0].get_text() == "cat\n60.0"  # the baseline's AP under the class


def test_one_seed_prints_no_spread_and_draws_no_interval(tmp_path: Path) -> None:
    data = make_results({"none": [0.5], "ia": [0.56]})
    table = results_table(data)
    assert "±" not in table and "| none | 50.0 (1 seed) | 50.0 (1 seed) |" in table
    assert "no spread was measured" in table
    assert "±" not in metrics_table(data, "test") and "±" not in paired_table(data)
    for figure in (forest_figure(data), split_figure(data)):
        assert not any(ax.collections for ax in figure.axes)  # no interval lines, dots only
    report = write_report(data, tmp_path).read_text()
    assert re.search(r"\d ± \d", report) is None  # "mean ± std" only as words, never as a value


def test_a_row_with_fewer_seeds_says_so() -> None:
    data = make_results({"none": [0.50, 0.52, 0.54], "ia": [0.53, 0.54, 0.58], "asdn": [0.45, 0.47]})
    assert "| asdn (2 of 3 seeds) | 46.0 ± 1.4 |" in results_table(data)
    assert "| ia | 55.0 ± 2.6 |" in results_table(data)
    assert "| asdn (2 of 3 seeds) |" in paired_table(data)
    labels = [t.get_text() for t in forest_figure(data).axes[0].get_yticklabels()]
    assert "asdn (2 of 3 seeds)" in labels and "ia" in labels


def test_the_per_run_line_names_each_metric_primary_first() -> None:
    evals = {
        "test": {"mAP": 0.783, "metrics": {"voc07": 0.783, "AP": 0.561}},
        "test_occluded": {"mAP": 0.240, "metrics": {"voc07": 0.240, "AP": 0.139}},
    }
    assert (
        run_scores(evals, "AP")
        == "COCO AP test 56.1, test_occluded 13.9; VOC07 mAP test 78.3, test_occluded 24.0"
    )
    assert run_scores(evals, "voc07") == "VOC07 mAP test 78.3, test_occluded 24.0"
    assert run_scores({"test": {"mAP": 0.5}}, "AP") == "VOC07 mAP test 50.0"  # an old run without metrics
    with pytest.raises(AssertionError):
        assert "mAP test" in run_scores(evals, "AP").split(";")[0]
