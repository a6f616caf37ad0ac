"""Divergences between two share vectors over the same bins (numeric bins or categories).

Shared by the numeric and categorical comparisons so PSI and JSD mean the same thing on
both kinds of feature. Neither carries a p-value: their large-sample chi-square forms
(PSI / (1/n_ref + 1/n_cur) ~ chi2(B - 1), Yurdakul 2018) were measured to be badly
anti-conservative here (bin shares read from a bucketed summary carry its rank error, and
PSI's smoothing of empty bins inflates it), so their noise on small samples is handled by
the ``min_count`` rule of :mod:`monitor.decide` instead; ks and chi_squared are the
significance tests for the same data.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from monitor.compare.results import TestName, TestResult

__all__ = ["PSI_EPSILON", "psi_from_shares", "jsd_from_shares", "js_divergence", "chi2_sf"]

#: Additive smoothing of shares in PSI: s' = (s + eps) / (1 + B eps), so an empty bin on
#: one side gives a large but finite term.
PSI_EPSILON = 1e-4


def chi2_sf(statistic: float, bins: int) -> float:
    """P(X >= statistic) for X ~ chi2(bins - 1); 1.0 when there is a single bin."""
    return 1.0 if bins < 2 else float(special.chdtrc(bins - 1, statistic))


def psi_from_shares(ref: np.ndarray, cur: np.ndarray, *, n_reference: int, n_current: int,
                    test: TestName) -> TestResult:
    """Population stability index of two share vectors over the same B bins.

    PSI = sum_i (c_i - r_i) ln(c_i / r_i) on shares smoothed with PSI_EPSILON
    (s' = (s + eps) / (1 + B eps)). statistic = effect = PSI, no p-value.
    """
    b = len(ref)
    r = (ref + PSI_EPSILON) / (1.0 + b * PSI_EPSILON)
    c = (cur + PSI_EPSILON) / (1.0 + b * PSI_EPSILON)
    value = max(float(np.sum((c - r) * np.log(c / r))), 0.0)
    return TestResult(test=test, statistic=value, p_value=None, effect=value,
                      n_reference=n_reference, n_current=n_current, details=(("bins", float(b)),))


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits of two share vectors (each summing to 1).

    JSD = 1/2 KL(P || M) + 1/2 KL(Q || M), M = (P + Q) / 2, with 0 log 0 = 0; in [0, 1].
    """
    m = 0.5 * (p + q)
    total = 0.0
    for x in (p, q):
        nz = x > 0
        total += 0.5 * float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))
    return min(max(total, 0.0), 1.0)


def jsd_from_shares(ref: np.ndarray, cur: np.ndarray, *, n_reference: int, n_current: int,
                    test: TestName) -> TestResult:
    """JSD of two share vectors: statistic = effect = JSD (bits), no p-value."""
    value = js_divergence(ref, cur)
    return TestResult(test=test, statistic=value, p_value=None, effect=value,
                      n_reference=n_reference, n_current=n_current,
                      details=(("bins", float(np.count_nonzero(ref + cur))),))
