import math

import pytest

from iadet.comparison.stats import paired_difference, summarize, t_half_width


def test_summary_uses_the_sample_std():
    s = summarize([0.5, 0.7, 0.6])
    assert s.mean == pytest.approx(0.6)
    assert s.std == pytest.approx(0.1)  # sqrt(((-.1)^2 + .1^2 + 0) / 2)
    assert summarize([0.4]).std == 0.0


def test_paired_difference_by_hand():
    # differences 0.02, 0.04, 0.06: mean 0.04, sd 0.02, se 0.02/sqrt(3); t(0.975, 2) = 4.302653
    d = paired_difference([0.52, 0.64, 0.76], [0.50, 0.60, 0.70])
    assert d.mean == pytest.approx(0.04)
    assert d.std == pytest.approx(0.02)
    half = 4.302652729911275 * 0.02 / math.sqrt(3)
    assert d.ci_low == pytest.approx(0.04 - half) and d.ci_high == pytest.approx(0.04 + half)
    assert not d.significant  # half = 0.0497 > 0.04: the interval crosses 0
    assert paired_difference([0.52, 0.64, 0.76, 0.88], [0.50, 0.60, 0.70, 0.80]).significant
    # t = 0.04 / (0.02 / sqrt 3) = 3.464 -> two-sided p = 0.0742 with 2 dof
    assert d.p_value == pytest.approx(0.07418, abs=1e-4)


def test_single_seed_has_no_interval():
    d = paired_difference([0.6], [0.5])
    assert d.mean == pytest.approx(0.1) and d.ci_low is None and d.p_value is None and not d.significant


def test_t_half_width_by_hand():
    assert t_half_width(0.02, 3) == pytest.approx(4.302652729911275 * 0.02 / math.sqrt(3))
    assert t_half_width(1.0, 5) == pytest.approx(2.7764451051977987 / math.sqrt(5))
    assert t_half_width(1.0, 1) is None


def test_lengths_must_match():
    with pytest.raises(ValueError, match="differ in length"):
        paired_difference([0.1, 0.2], [0.1])


def test_holm_adjustment_by_hand():
    from iadet.comparison.stats import holm_adjusted

    # sorted 0.01, 0.02, 0.04 -> 3 * 0.01, max(0.03, 2 * 0.02), max(0.04, 1 * 0.04); None is not a test
    assert holm_adjusted([0.04, None, 0.01, 0.02]) == pytest.approx([0.04, None, 0.03, 0.04])
    assert holm_adjusted([0.5, 0.6]) == [1.0, 1.0]  # capped at 1, and monotone
    assert holm_adjusted([]) == []
