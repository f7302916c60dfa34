"""Statistics for method comparisons over seeds: mean ± std, and paired differences with a 95% CI.

Runs of two methods with the same seed share data, data order and initialisation, so the
honest comparison is paired: ``d_s = score(method, s) - score(baseline, s)``, its mean, and a
Student-t confidence interval ``mean(d) ± t(0.975, n-1) · sd(d) / sqrt(n)`` (``sd`` with n-1).
With one seed there is no interval (it is reported as undefined, not as zero).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from scipy import stats as scipy_stats


@dataclass
class Summary:
    mean: float
    std: float
    runs: list[float]

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class PairedDifference:
    """``method - baseline`` over paired seeds."""

    mean: float
    std: float
    n: int
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    """Two-sided paired t-test; None with fewer than 2 pairs or zero spread."""

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def significant(self) -> bool:
        return self.ci_low is not None and (self.ci_low > 0 or self.ci_high < 0)


def summarize(values: Sequence[float]) -> Summary:
    """Mean and sample standard deviation (n-1; 0 for a single run)."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        raise ValueError("no values to summarize")
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return Summary(mean, std, values)


def t_half_width(std: float, n: int, confidence: float = 0.95) -> float | None:
    """Half-width of the Student-t interval of a mean of ``n`` values with sample std ``std``:
    ``t(0.5 + confidence / 2, n - 1) · std / sqrt(n)``; None with fewer than 2 values."""
    if n < 2:
        return None
    return float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)


def paired_difference(
    method: Sequence[float], baseline: Sequence[float], confidence: float = 0.95
) -> PairedDifference:
    """Mean paired difference with a Student-t confidence interval."""
    if len(method) != len(baseline):
        raise ValueError(f"paired samples differ in length: {len(method)} vs {len(baseline)}")
    diffs = [float(a) - float(b) for a, b in zip(method, baseline)]
    s = summarize(diffs)
    n = len(diffs)
    if n < 2:
        return PairedDifference(s.mean, s.std, n, None, None, None)
    half = t_half_width(s.std, n, confidence)
    if s.std > 0:
        t = s.mean / (s.std / math.sqrt(n))
        p = float(2 * scipy_stats.t.sf(abs(t), n - 1))
    else:
        p = None
    return PairedDifference(s.mean, s.std, n, float(s.mean - half), float(s.mean + half), p)


def holm_adjusted(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of several p-values tested together (None stays None, and is not counted).

    Comparing many methods to one baseline, some nominal "significant" differences are expected by chance;
    the adjusted p-values keep the family-wise error rate at the nominal level (Holm 1979)."""
    known = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(known):
        running = max(running, min(1.0, (len(known) - rank) * p))
        out[i] = running
    return out
