"""Tests of iadet.robustness.metrics: P, mPC, rPC and the robustness.json summary."""

from __future__ import annotations

import json

import pytest

from iadet.errors import ConfigError
from iadet.robustness.corruptions import BENCHMARK
from iadet.robustness.metrics import performance_under_corruption

# A hand-made table: mean of fog = 0.5, of snow = 0.3, of saturate = 0.7.
TABLE = {
    "fog": {1: 0.7, 2: 0.6, 3: 0.5, 4: 0.4, 5: 0.3},
    "snow": {"1": 0.5, "2": 0.4, "3": 0.3, "4": 0.2, "5": 0.1},
    "saturate": {5: 0.7, 4: 0.7, 3: 0.7, 2: 0.7, 1: 0.7},
}


def test_mpc_and_rpc_from_a_hand_made_table() -> None:
    result = performance_under_corruption(0.75, TABLE)
    assert result["P"] == 0.75
    assert result["mPC"] == pytest.approx((0.5 + 0.3 + 0.7) / 3)
    assert result["rPC"] == pytest.approx(0.5 / 0.75)
    assert result["groups"] == pytest.approx({"weather": 0.4, "extra": 0.7})
    assert result["complete"] is True


def test_summary_has_the_robustness_json_layout() -> None:
    result = performance_under_corruption(0.75, TABLE)
    assert list(result) == ["P", "mPC", "rPC", "corruptions", "groups", "complete"]
    assert list(result["corruptions"]) == ["fog", "snow", "saturate"]
    assert list(result["corruptions"]["saturate"]) == ["1", "2", "3", "4", "5"]
    assert result["corruptions"]["snow"]["2"] == 0.4
    assert json.loads(json.dumps(result, allow_nan=False)) == result


def test_reference_figures_of_the_paper() -> None:
    # Faster R-CNN R50-FPN on Pascal-C: P 80.5, mPC 48.6 -> rPC 60.4 %.
    table = {name: dict.fromkeys(range(1, 6), 48.6) for name in BENCHMARK}
    result = performance_under_corruption(80.5, table)
    assert round(result["mPC"], 1) == 48.6
    assert round(100 * result["rPC"], 1) == 60.4
    assert set(result["groups"]) == {"noise", "blur", "weather", "digital"}


def test_zero_clean_performance_gives_no_rpc() -> None:
    result = performance_under_corruption(0, {"fog": dict.fromkeys(range(1, 6), 0.0)})
    assert result["mPC"] == 0 and result["rPC"] is None
    assert json.dumps(result, allow_nan=False)


def test_missing_severities_are_named() -> None:
    table = {**TABLE, "fog": {1: 0.7, 2: 0.6, 3: 0.5}, "snow": {"5": 0.1, **{str(s): 0.2 for s in (1, 2, 3)}}}
    with pytest.raises(
        ConfigError, match=r"missing corruption results: fog \(severities 4, 5\); snow \(severities 4\)"
    ):
        performance_under_corruption(0.75, table)


def test_allow_partial_averages_what_is_given() -> None:
    result = performance_under_corruption(0.8, {"fog": {1: 0.6, 3: 0.2}}, allow_partial=True)
    assert result["mPC"] == pytest.approx(0.4)
    assert result["corruptions"] == {"fog": {"1": 0.6, "3": 0.2}}
    assert result["complete"] is False


@pytest.mark.parametrize(
    ("clean", "table", "message"),
    [
        (0.5, {}, "no corruption results"),
        (0.5, {"fgo": {1: 0.1}}, "unknown corruption 'fgo' in the results \\(did you mean 'fog'\\?\\)"),
        (0.5, {"fog": {0: 0.1}}, "corruption 'fog' has severity 0"),
        (0.5, {"fog": {"six": 0.1}}, "corruption 'fog' has severity 'six'"),
        (0.5, {"fog": {1.0: 0.1}}, "corruption 'fog' has severity 1.0"),
        (0.5, {"fog": {1: 0.1, "1": 0.2}}, "severity 1 twice"),
        (0.5, {"fog": {1: float("nan")}}, "result of 'fog' at severity 1 must be a finite number"),
        (0.5, {"fog": {1: -0.1}}, "must not be negative"),
        (0.5, {"fog": {1: None}}, "finite number"),
        (0.5, {"fog": {}}, "corruption 'fog' has no results"),
        (float("inf"), TABLE, "clean performance P must be a finite number"),
        (True, TABLE, "clean performance P"),
    ],
)
def test_bad_tables_raise_config_error(clean: float, table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        performance_under_corruption(clean, table, allow_partial=True)
