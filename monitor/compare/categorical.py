"""Comparisons of one categorical feature: reference value counts vs current value counts.

Every function is pure, takes keyword-only ``reference=`` and ``current=`` (a
``monitor.stats.CategoricalStats`` or a :class:`~monitor.compare.views.CategoricalView`)
and returns a :class:`~monitor.compare.results.TestResult`. Sample sizes are the
non-missing counts. Both summaries are compared on their common partition
(:func:`monitor.compare.views.aligned`): value by value while both are exact; beyond a capacity,
hashed buckets of three or more values count as one category each (so every test still sees
every value, and shares sum to one).
"""

from __future__ import annotations

import numpy as np

from scipy import special

from monitor.compare.results import TestName, TestResult
from monitor.compare.shares import chi2_sf, psi_from_shares
from monitor.compare.views import CategoricalInput, CategoricalView, aligned, categorical_view
from monitor.errors import ConfigError

__all__ = ["MIN_EXPECTED", "UNSEEN_PSEUDO_COUNT", "linf", "chi_squared", "psi_categorical", "unseen_share"]

#: chi_squared pools categories whose expected count is below this (Cochran's rule of 5).
MIN_EXPECTED = 5.0
#: Pseudo-count given to the pooled unseen categories in the reference (Jeffreys' 1/2),
#: so values never seen in the reference have a small but non-zero expected share.
UNSEEN_PSEUDO_COUNT = 0.5


def _insufficient(test: TestName, r: CategoricalView, c: CategoricalView, note: str) -> TestResult:
    return TestResult(test=test, statistic=0.0, p_value=None, effect=0.0,
                      n_reference=r.count, n_current=c.count, note=note, computed=False)


def _label(key: object) -> str:
    return key if isinstance(key, str) else str(key)


def linf(*, reference: CategoricalInput, current: CategoricalInput) -> TestResult:
    """L-infinity distance between the normalised value counts, as TFDV's ``infinity_norm``.

    Each side's counts are divided by their own total (TFDV's kSeparateTotal), a value
    absent on one side counts 0 there, and L_inf = max_v |p_ref(v) - p_cur(v)| over the
    union of values. statistic = effect = L_inf; details["value"] is the value that moved
    most. No p-value (chi_squared is the significance test for the same data).
    """
    r, c = categorical_view(reference), categorical_view(current)
    if r.count == 0 or c.count == 0:
        return _insufficient(TestName.LINF, r, c, "empty window")
    a = aligned(r, c)
    diffs = np.abs(a.reference / a.reference.sum() - a.current / a.current.sum())
    at = int(np.argmax(diffs))
    value = float(diffs[at])
    note = "hashed buckets compared as one category each" if a.approximate else None
    return TestResult(test=TestName.LINF, statistic=value, p_value=None, effect=value,
                      n_reference=r.count, n_current=c.count, details=(("value", _label(a.keys[at])),), note=note)


def chi_squared(*, reference: CategoricalInput, current: CategoricalInput,
                min_expected: float = MIN_EXPECTED) -> TestResult:
    """Pearson chi-square goodness of fit of the current counts to the reference shares.

    Expected E_v = n_cur * p_ref(v). Values the reference never saw are pooled into one
    bucket whose reference share comes from a pseudo-count of UNSEEN_PSEUDO_COUNT
    (p_ref(v) = n_ref(v) / (n_ref + 1/2), p_unseen = (1/2) / (n_ref + 1/2)); categories with
    E_v < min_expected join that pooled bucket. X^2 = sum (O - E)^2 / E over the B buckets,
    p = P(chi2(B - 1) >= X^2) (Pearson 1900). statistic = X^2; effect = the largest share
    change max_b |O_b - E_b| / n_cur over the same buckets (an L_inf, floor as for linf).
    """
    if not (isinstance(min_expected, (int, float)) and min_expected >= 0):
        raise ConfigError(f"must be a number >= 0, got {min_expected!r}", field="min_expected")
    r, c = categorical_view(reference), categorical_view(current)
    if r.count == 0 or c.count == 0:
        return _insufficient(TestName.CHI_SQUARED, r, c, "empty window")
    a = aligned(r, c)
    absent = a.reference == 0
    unseen = float(a.current[absent].sum())
    denominator = r.count + (UNSEEN_PSEUDO_COUNT if unseen else 0.0)
    e_all = c.count * a.reference[~absent] / denominator
    o_all = a.current[~absent]
    small = e_all < min_expected
    pooled_obs = unseen + float(o_all[small].sum())
    pooled_exp = (c.count * UNSEEN_PSEUDO_COUNT / denominator if unseen else 0.0) + float(e_all[small].sum())
    observed, expected = o_all[~small].tolist(), e_all[~small].tolist()
    if pooled_exp > 0.0:
        observed.append(pooled_obs)
        expected.append(pooled_exp)
    if len(observed) < 2:
        return TestResult(test=TestName.CHI_SQUARED, statistic=0.0, p_value=1.0, effect=0.0,
                          n_reference=r.count, n_current=c.count, note="single category")
    obs, exp = np.array(observed), np.array(expected)
    x2 = float(np.sum((obs - exp) ** 2 / exp))
    return TestResult(
        test=TestName.CHI_SQUARED, statistic=x2, p_value=chi2_sf(x2, len(obs)),
        effect=float(np.max(np.abs(obs - exp)) / c.count), n_reference=r.count, n_current=c.count,
        details=(("buckets", float(len(obs))), ("pooled_observed", pooled_obs)),
    )


def psi_categorical(*, reference: CategoricalInput, current: CategoricalInput,
                    min_expected: float = MIN_EXPECTED) -> TestResult:
    """Population stability index over the union of values (one bin per value).

    Same definition and smoothing as the numeric ``psi``
    (:func:`monitor.compare.shares.psi_from_shares`); a value unseen on one side gets the
    smoothed share there. Values rare on both sides (expected and observed current count below
    ``min_expected``, as chi_squared pools them) share one bin: over a long tail of thousands of
    values seen a few times each, per-value smoothed shares would make PSI measure the tail's
    sampling noise (and its bin count), not a change. statistic = effect = PSI; no p-value
    (chi_squared is the test).
    """
    r, c = categorical_view(reference), categorical_view(current)
    if r.count == 0 or c.count == 0:
        return _insufficient(TestName.PSI_CATEGORICAL, r, c, "empty window")
    a = aligned(r, c)
    ref, cur = a.reference, a.current
    rare = (c.count * ref / r.count < min_expected) & (cur < min_expected)
    if int(rare.sum()) >= 2:
        ref = np.append(ref[~rare], ref[rare].sum())
        cur = np.append(cur[~rare], cur[rare].sum())
    return psi_from_shares(ref / r.count, cur / c.count, n_reference=r.count, n_current=c.count,
                           test=TestName.PSI_CATEGORICAL)


def unseen_share(*, reference: CategoricalInput, current: CategoricalInput) -> TestResult:
    """Share of the current non-missing values whose value the reference never saw.

    share = sum_{v not in ref} n_cur(v) / n_cur; statistic = effect = share.
    p-value: one-sided binomial test of k unseen values among n_cur against the probability
    the reference leaves for unseen values, its Good-Turing missing mass p0 = N1 / N (N1 values
    seen exactly once among N), at least 0.5 / (N + 1): P(X >= k), X ~ Binomial(n_cur, p0).
    A reference that saw every category many times leaves almost no room for a new one, so
    even a few unseen values in a small window are significant (they alert only if their share
    also reaches the floor).
    details: "distinct" (number of unseen values), "top" (the most frequent one), "p0".
    Beyond a capacity (hashed buckets) a current value counts as unseen only when the reference
    is known not to hold it (its bucket is empty there, or knows all its values by name); N1 is
    then at least ``2 D - N`` (D the estimated distinct values: N >= N1 + 2 (D - N1)).
    """
    r, c = categorical_view(reference), categorical_view(current)
    if r.count == 0 or c.count == 0:
        return _insufficient(TestName.UNSEEN_SHARE, r, c, "empty window")
    a = aligned(r, c)
    unseen = a.unseen
    k = sum(unseen.values())
    share = k / c.count
    singletons = float(sum(1 for n in r.counts.values() if n == 1))
    if not r.is_exact:
        singletons = max(singletons, 2.0 * float(r.stats.distinct_estimate) - r.count)
    p0 = min(1.0, max(singletons / r.count, 0.5 / (r.count + 1)))
    p_value = 1.0 if k == 0 else float(special.bdtrc(k - 1, c.count, p0))  # P(X >= k)
    details: tuple = (("distinct", float(len(unseen))), ("p0", p0))
    if unseen:
        details += (("top", max(unseen, key=lambda key: (unseen[key], key))),)
    note = "hashed buckets: only values known to be absent from the reference count" if a.approximate else None
    return TestResult(test=TestName.UNSEEN_SHARE, statistic=share, p_value=p_value, effect=share,
                      n_reference=r.count, n_current=c.count, details=details, note=note)
