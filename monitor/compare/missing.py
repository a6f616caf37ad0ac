"""Comparison of how often a feature is missing (any kind of feature)."""

from __future__ import annotations

import math
from typing import Any

from scipy import special

from monitor.compare.results import MAX_EFFECT, TestName, TestResult

__all__ = ["missing_rate"]


def _unusable_and_total(stats: Any) -> tuple[int, int]:
    missing = int(stats.missing) + int(getattr(stats, "nonfinite", 0))
    return missing, int(stats.count) + missing


def missing_rate(*, reference: Any, current: Any) -> TestResult:
    """Two-proportion z-test on the missing share.

    share = missing / (count + missing), where for numeric features "missing" also counts
    the non-finite values (+-inf), which are as unusable to the model as a null.
    z = (s_cur - s_ref) / sqrt(s (1 - s) (1/N_ref + 1/N_cur)) with the pooled share
    s = (x_ref + x_cur) / (N_ref + N_cur); two-sided p = 2 Phi(-|z|) (equal to Pearson's
    chi-square on the 2x2 table without continuity correction).
    statistic = z; effect = |s_cur - s_ref| (absolute change in missing share).
    Accepts any statistics object or view with ``count`` and ``missing``.
    """
    x_r, n_r = _unusable_and_total(reference)
    x_c, n_c = _unusable_and_total(current)
    if n_r == 0 or n_c == 0:
        return TestResult(test=TestName.MISSING_RATE, statistic=0.0, p_value=None, effect=0.0,
                          n_reference=n_r, n_current=n_c, note="empty window", computed=False)
    s_r, s_c = x_r / n_r, x_c / n_c
    pooled = (x_r + x_c) / (n_r + n_c)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_r + 1.0 / n_c))
    diff = s_c - s_r
    if se > 0.0:
        z = diff / se
        p = float(2.0 * special.ndtr(-abs(z)))
    else:  # nothing missing anywhere, or everything missing everywhere
        z, p = 0.0, 1.0
    return TestResult(
        test=TestName.MISSING_RATE, statistic=max(-MAX_EFFECT, min(MAX_EFFECT, z)), p_value=p,
        effect=abs(diff), n_reference=n_r, n_current=n_c,
        details=(("share_reference", s_r), ("share_current", s_c)),
    )
