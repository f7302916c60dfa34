"""The IA paper's per-class table (Markdown) and the per-class text table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from iadet.errors import DataError
from iadet.evaluation.table import format_result, format_table, read_eval, read_eval_files
from iadet.evaluation.voc import VOCResult


def run(method, m, ap, **extra):
    return {"metric": "voc07", "split": "test", "mAP": m, "ap": ap, "method": method,
            "train_set": "07+12", "backbone": "vgg16", "checkpoint": "x.pt", **extra}  # fmt: skip


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_layout_percent_and_bold_best_per_column():
    table = format_table(
        [
            run("baseline", 0.7012, {"aeroplane": 0.771, "bicycle": 0.8, "person": 0.5}),
            run("ia", 0.7234, {"aeroplane": 0.76, "bicycle": 0.80049, "person": 0.61}, backbone="res101"),
        ]
    )
    lines = table.splitlines()
    assert cells(lines[0]) == ["Method", "Train set", "Backbone", "mAP", "aero", "bike", "person"]
    assert cells(lines[1]) == ["---", "---", "---", "---:", "---:", "---:", "---:"]
    assert cells(lines[2]) == ["baseline", "07+12", "vgg16", "70.1", "**77.1**", "**80.0**", "50.0"]
    # bike: 80.0 and 80.049 both show as 80.0, a tie, both bold
    assert cells(lines[3]) == ["ia", "07+12", "res101", "**72.3**", "76.0", "**80.0**", "**61.0**"]
    assert lines[5] == "AP (%) per class, voc07 metric, test split; best of each column in bold."


def test_missing_classes_and_fields_show_a_dash_and_a_lone_value_is_not_bold():
    table = format_table([run("a", 0.5, {"dog": 0.5}), {"mAP": 0.25, "ap": {"dog": 0.25, "cat": 0.125}}])
    lines = table.splitlines()
    assert cells(lines[0])[3:] == ["mAP", "dog", "cat"]
    assert cells(lines[2]) == ["a", "07+12", "vgg16", "**50.0**", "**50.0**", "–"]
    assert cells(lines[3]) == ["–", "–", "–", "25.0", "25.0", "12.5"]  # the only cat value: plain


def test_full_names_and_escaped_pipes():
    table = format_table([run("a|b", 0.5, {"aeroplane": 0.5})], short_names=False)
    assert "| aeroplane |" in table and "a\\|b" in table


def test_mixed_metrics_and_bad_entries_are_errors():
    with pytest.raises(DataError, match="different metrics"):
        format_table([run("a", 0.5, {}), run("b", 0.5, {}, metric="voc")])
    with pytest.raises(DataError, match="no results"):
        format_table([])
    with pytest.raises(DataError, match="result 2 \\(b\\): 'ap' must map"):
        format_table([run("a", 0.5, {}), run("b", 0.5, {"dog": "high"})])


def test_read_eval(tmp_path):
    good = tmp_path / "eval.json"
    good.write_text(json.dumps(run("a", 0.5, {"dog": 0.5})))
    assert read_eval_files([good, good]) == [read_eval(good)] * 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"mAP": 0.5,\n "ap": }')
    with pytest.raises(DataError, match="bad.json:2: not valid JSON"):
        read_eval(bad)
    bad.write_text('{"ap": {}}')
    with pytest.raises(DataError, match="bad.json: no numeric 'mAP'"):
        read_eval(bad)
    with pytest.raises(DataError, match="eval file not found"):
        read_eval(tmp_path / "none.json")


def test_format_result():
    result = VOCResult(
        map=0.5,
        ap={"dog": 0.75, "pottedplant": 0.25},
        npos={"dog": 3, "pottedplant": 0},
        num_detections={"dog": 10, "pottedplant": 2},
        precision={},
        recall={},
    )
    lines = format_result(result).splitlines()
    assert [line.split() for line in lines] == [
        ["class", "npos", "dets", "AP"],
        ["dog", "3", "10", "75.0"],
        ["pottedplant", "0", "2", "25.0"],
        ["mAP", "50.0"],
    ]
    assert len({len(line) for line in lines}) == 1  # aligned columns
    assert np.isclose(result.to_json()["mAP"], 0.5)
