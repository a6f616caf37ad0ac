"""A monotone trend in one test's effect series across windows: Mann-Kendall with Sen's slope.

The series is a base test's ``effect`` in consecutive windows against one fixed reference (the
training baseline, a seasonal slot, a pinned window), oldest first, the current window last.
Nothing is assumed about its distribution, only that windows are independent when nothing
changes: a reference's own sampling error adds the same offset to every window and so cannot
make a trend.

* Mann (1945), Kendall (1975): ``S = sum_{i<j} sign(e_j - e_i)``, ``Var S = (n(n-1)(2n+5) -
  sum_t t(t-1)(2t+5)) / 18`` over groups of ``t`` tied values, ``z = (S - 1) / sqrt(Var S)`` for
  ``S > 0``; one-sided p = P(Z >= z) (only a *rising* effect is drift). Valid from about 8 points.
* Sen (1968): the slope is the median of ``(e_j - e_i) / (j - i)``; the line passes through the
  median of ``e_i - slope * i``. ``effect`` is the line's value at the current window (the drift
  accumulated so far, on the base test's own scale); ``details["slope"]`` is per window.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import special

from monitor.compare.results import TestName, TestResult

__all__ = ["MIN_TREND_WINDOWS", "mann_kendall", "trend", "trends"]

#: Fewest windows (the current one included) for which the normal approximation is used.
MIN_TREND_WINDOWS = 8


def mann_kendall(series: Sequence[float]) -> tuple[float, float]:
    """(S, one-sided p-value for an increasing trend) of ``series``."""
    e = np.asarray(series, dtype=np.float64)
    n = e.shape[0]
    if n < 2:
        return 0.0, 1.0
    diff = np.sign(e[None, :] - e[:, None])
    s = float(np.triu(diff, k=1).sum())
    _, ties = np.unique(e, return_counts=True)
    return s, _p_rising(s, n, float(np.sum(ties * (ties - 1) * (2 * ties + 5))))


def _p_rising(s: float, n: int, ties: float) -> float:
    """One-sided p of Mann-Kendall S for ``n`` points (continuity-corrected normal approximation);
    ``ties``: the sum over tie groups of t(t-1)(2t+5)."""
    var = (n * (n - 1) * (2 * n + 5) - ties) / 18.0
    if s <= 0 or var <= 0:
        return 1.0
    return float(special.ndtr(-((s - 1.0) / math.sqrt(var))))


def _sen_result(test: TestName, s: float, p: float, slope: float, intercept: float, n: int, first: float,
                last: float, n_current: int, n_reference: int) -> TestResult:
    """The trend result: effect = Sen's line at the current (last) window, never below 0."""
    level = max(intercept + slope * (n - 1), 0.0)
    return TestResult(test=test, statistic=s, p_value=p, effect=level, n_reference=n_reference, n_current=n_current,
                      details=(("slope", slope), ("windows", float(n)), ("first", first), ("last", last)))


def trend(*, test: TestName, effects: Sequence[float], n_current: int, n_reference: int) -> TestResult:
    """The trend result for the effect series of ``test`` (oldest first, current last).

    statistic = Mann-Kendall S, p-value one-sided (rising), effect = Sen's line at the current
    window (>= 0). Fewer than :data:`MIN_TREND_WINDOWS` points: not computed.
    """
    e = np.asarray(effects, dtype=np.float64)
    n = e.shape[0]
    if n < MIN_TREND_WINDOWS:
        return TestResult(test=test, statistic=0.0, p_value=None, effect=0.0, n_reference=n_reference,
                          n_current=n_current, computed=False,
                          note=f"{n} windows of history, needs {MIN_TREND_WINDOWS}")
    s, p = mann_kendall(e)
    i, j = np.triu_indices(n, k=1)
    slope = float(np.median((e[j] - e[i]) / (j - i)))
    intercept = float(np.median(e - slope * np.arange(n)))
    return _sen_result(test, s, p, slope, intercept, n, float(e[0]), float(e[-1]), n_current, n_reference)


def trends(items: Sequence[tuple[TestName, Sequence[float], int, int]]) -> list[TestResult]:
    """``[trend(test=t, effects=e, n_current=c, n_reference=r) for t, e, c, r in items]``, the series of
    one length computed together as arrays (a window has a trend per feature and test: one at a time,
    small numpy calls were most of it). Same values bit for bit: sums of signs and tie counts are
    integers, and each row's medians are the same order statistics."""
    out: list[TestResult | None] = [None] * len(items)
    by_length: dict[int, list[int]] = {}
    for i, (test, effects, n_current, n_reference) in enumerate(items):
        e = np.asarray(effects, dtype=np.float64)
        if e.shape[0] < MIN_TREND_WINDOWS or not np.isfinite(e).all():
            out[i] = trend(test=test, effects=effects, n_current=n_current, n_reference=n_reference)
        else:
            by_length.setdefault(e.shape[0], []).append(i)
    for n, rows in by_length.items():
        e = np.array([items[i][1] for i in rows], dtype=np.float64)  # (k, n)
        upper = np.triu(np.ones((n, n), dtype=bool), k=1)
        s = np.sign(e[:, None, :] - e[:, :, None])[:, upper].sum(axis=1)
        # ties: sum over tie groups of t(t-1)(2t+5) = sum over values of (c-1)(2c+5), c = values equal to it
        c = (e[:, :, None] == e[:, None, :]).sum(axis=2)
        ties = ((c - 1) * (2 * c + 5)).sum(axis=1)
        i_idx, j_idx = np.triu_indices(n, k=1)
        slopes = np.median((e[:, j_idx] - e[:, i_idx]) / (j_idx - i_idx), axis=1)
        intercepts = np.median(e - slopes[:, None] * np.arange(n), axis=1)
        for r, i in enumerate(rows):
            test, _effects, n_current, n_reference = items[i]
            s_r = float(s[r])
            out[i] = _sen_result(test, s_r, _p_rising(s_r, n, float(ties[r])), float(slopes[r]), float(intercepts[r]),
                                 n, float(e[r, 0]), float(e[r, -1]), n_current, n_reference)
    return out  # type: ignore[return-value]
