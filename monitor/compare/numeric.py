"""Comparisons of one numeric feature: reference summary vs current summary.

Every function is pure, takes keyword-only ``reference=`` and ``current=`` (a
``monitor.stats.NumericStats`` or a :class:`~monitor.compare.views.NumericView`), and
returns a :class:`~monitor.compare.results.TestResult`. Sample sizes are the finite,
non-missing counts; missing values are the business of ``missing_rate``.

Robustness. Moments are exact but one extreme row can move them arbitrarily far, so
``mean_shift`` and ``variance_ratio`` work by default on *trimmed* moments read off the
quantile grid, and ``wasserstein`` integrates only the central part of the quantile
functions. The summaries' quantiles always lie inside the bucket holding their rank (an
extreme value keeps its own exact count), so no extra trim is needed for sketch error.
``trim=0`` on exact summaries gives the classical statistics (oracle-tested against scipy).

P-values and sketch error. ``mean_shift``, ``variance_ratio`` and ``ks`` have p-values;
``wasserstein``, ``psi`` and ``jsd`` do not (distances; see :mod:`monitor.compare.shares`).
Only ``ks`` folds the summaries' error into its p-value: D is evaluated at every point where a
summary's CDF bends (exact on exact summaries) and reduced by the summaries' hard rank-error
bounds. The trimmed ``mean_shift``/``variance_ratio`` read trimmed moments off the grid and
treat them as exact: measured at n = 20,000 vs 5,000 with no change, the trimmed mean_shift
rejects ~3% at the 1% level (untrimmed: 1.75%; variance_ratio: 1%), while the effect stays
far below its floor (99th percentile 0.05 baseline sd vs floor 0.2), which is why a
finding also needs its effect to clear a practical floor (see :mod:`monitor.decide`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

from monitor.compare.results import MAX_EFFECT, TestName, TestResult
from monitor.compare.shares import jsd_from_shares, psi_from_shares
from monitor.compare.views import GRID, GRID_SIZE, NumericInput, NumericView, numeric_view
from monitor.errors import ConfigError

__all__ = [
    "DEFAULT_TRIM",
    "PSI_BINS",
    "mean_shift",
    "variance_ratio",
    "ks",
    "wasserstein",
    "psi",
    "jsd",
]

#: Default share trimmed from each tail by mean_shift, variance_ratio and wasserstein.
DEFAULT_TRIM = 0.01
_MAX_TRIM = 0.25
#: Number of baseline-quantile bins used by psi and jsd (plus two out-of-range bins).
PSI_BINS = 10
#: ks evaluates both CDFs at every breakpoint of both summaries up to this many points; past it,
#: at every breakpoint of the smaller one and the quantile grid of the larger (error 1/GRID_SIZE).
KS_EXACT_POINTS = 20_000


def _insufficient(test: TestName, r: NumericView, c: NumericView, note: str) -> TestResult:
    return TestResult(test=test, statistic=0.0, p_value=None, effect=0.0,
                      n_reference=r.count, n_current=c.count, note=note, computed=False)


def _check_trim(trim: float) -> float:
    if not (isinstance(trim, (int, float)) and 0.0 <= trim <= _MAX_TRIM):
        raise ConfigError(f"must be a number in [0, {_MAX_TRIM}], got {trim!r}", field="trim")
    return float(trim)


def _alpha(trim: float, r: NumericView, c: NumericView) -> float:
    return trim


def _ratio(numerator: float, scale: float) -> float:
    """numerator / scale for a non-negative numerator; 0/0 -> 0, x/0 -> MAX_EFFECT."""
    if numerator == 0.0:
        return 0.0
    if scale <= 0.0 or not math.isfinite(numerator / scale):
        return MAX_EFFECT
    return min(numerator / scale, MAX_EFFECT)


#: Magnitudes from 2**480 (about 3e144) on, or below 2**-480, are compared in units of a power of two:
#: squares and sums of a thousand such values would leave the float range (inf, or 0).
_SCALE_FROM = 480


def _scale_exp(r: NumericView, c: NumericView) -> int:
    """The power of two both summaries' values are divided by before moments are taken: 0 (none) for every
    everyday feature; for values past 2**480 or all below 2**-480 (a client may send any finite number,
    up to 1.8e308), the exponent of the largest magnitude of both, which brings it near 1. Every moment
    test is scale-free (t, F, effects in baseline sd), so only its reported values are scaled back."""
    big = max(abs(r.minimum), abs(r.maximum), abs(c.minimum), abs(c.maximum))
    if big == 0.0:
        return 0
    exp = math.frexp(big)[1]
    return exp if not -_SCALE_FROM < exp <= _SCALE_FROM else 0


def _scaled(values: np.ndarray, exp: int) -> np.ndarray:
    return values if exp == 0 else np.ldexp(values, -exp)


def _unscaled(value: float, exp: int) -> float:
    """``value * 2**exp``; +-inf past the float range (a reported value, not one computed with)."""
    try:
        return math.ldexp(value, exp)
    except OverflowError:
        return math.copysign(math.inf, value)


def _trimmed(v: NumericView, alpha: float, exp: int = 0) -> tuple[float, float, int]:
    """(alpha-trimmed mean, squared deviations of the winsorized sample / n, h = n - 2g), of the values
    divided by ``2**exp`` (see :func:`_scale_exp`).

    Read off the quantile function on the rank grid: the trimmed mean is the average of
    Q(u) over alpha <= u <= 1 - alpha, the winsorized sample clips Q to its values at the
    ends of that range (Tukey & McLaughlin 1963; Yuen 1974).
    """

    def compute() -> tuple[float, float, int]:
        grid = _scaled(v.grid, exp)
        core = grid[(GRID >= alpha) & (GRID <= 1.0 - alpha)]
        wins = np.clip(grid, core[0], core[-1])
        h = v.count - 2 * int(math.floor(alpha * v.count))
        return float(core.mean()), float(wins.var()), h

    return v.memo(("trimmed", alpha, exp), compute)


def mean_shift(*, reference: NumericInput, current: NumericInput, trim: float = DEFAULT_TRIM) -> TestResult:
    """Shift of the (trimmed) mean, in baseline standard deviations.

    effect    = |m_cur - m_ref| / sd_ref       (sd_ref: the reference's exact sample sd)
    statistic = (m_cur - m_ref) / sqrt(d_ref + d_cur), two-sided p from Student's t with
                Welch-Satterthwaite df = (d_ref + d_cur)^2 / (d_ref^2/(h_ref-1) + d_cur^2/(h_cur-1))
    With ``trim == 0``: m = mean, d = s^2 / n, h = n (Welch 1947; a z-test for large n).
    With ``trim > 0`` (Yuen 1974): m = alpha-trimmed mean, d = SS_w / (h (h - 1)) with SS_w
    the sum of squared deviations of the winsorized sample and h = n - 2 floor(alpha n).
    A constant reference whose value moved gives effect = MAX_EFFECT.
    """
    trim = _check_trim(trim)
    r, c = numeric_view(reference), numeric_view(current)
    if r.count < 2 or c.count < 2:
        return _insufficient(TestName.MEAN_SHIFT, r, c, "fewer than 2 values")
    exp = _scale_exp(r, c)
    if trim == 0.0:
        m_r, m_c = math.ldexp(r.mean, -exp), math.ldexp(c.mean, -exp)
        d_r, d_c = r.variance_at(exp) / r.count, c.variance_at(exp) / c.count
        h_r, h_c, alpha = r.count, c.count, 0.0
    else:
        alpha = _alpha(trim, r, c)
        m_r, ss_r, h_r = _trimmed(r, alpha, exp)
        m_c, ss_c, h_c = _trimmed(c, alpha, exp)
        d_r = ss_r * r.count / (h_r * (h_r - 1))
        d_c = ss_c * c.count / (h_c * (h_c - 1))
    diff = m_c - m_r
    se2 = d_r + d_c
    if se2 > 0.0:
        t = diff / math.sqrt(se2)
        spread = d_r * d_r / (h_r - 1) + d_c * d_c / (h_c - 1)
        df = se2 * se2 / spread if spread > 0.0 else math.inf  # (squares of tiny d underflow: the normal limit)
        p = float(2.0 * special.stdtr(df if df == df else math.inf, -abs(t)))
    else:  # both samples constant
        t = 0.0 if diff == 0.0 else math.copysign(MAX_EFFECT, diff)
        p = 1.0 if diff == 0.0 else 0.0
    note = "constant reference" if r.std == 0.0 and diff != 0.0 else None
    return TestResult(
        test=TestName.MEAN_SHIFT, statistic=t, p_value=p, effect=_ratio(abs(diff), r.std_at(exp)),
        n_reference=r.count, n_current=c.count, note=note,
        details=(("mean_reference", _unscaled(m_r, exp)), ("mean_current", _unscaled(m_c, exp)), ("trim", alpha)),
    )


def variance_ratio(*, reference: NumericInput, current: NumericInput, trim: float = DEFAULT_TRIM) -> TestResult:
    """Change of spread: F = var_cur / var_ref.

    statistic = F; p = 2 min(P(F' <= F), P(F' >= F)) for F' ~ F(h_cur - 1, h_ref - 1)
    (two-sided F-test); effect = |ln F|, so a ratio r and 1/r weigh the same.
    With ``trim > 0`` the variances are winsorized variances SS_w / (n - 1) with h - 1
    degrees of freedom (Tukey & McLaughlin 1963); ``trim == 0`` uses the exact sample
    variances and n - 1. One side constant and the other not gives effect = MAX_EFFECT.
    """
    trim = _check_trim(trim)
    r, c = numeric_view(reference), numeric_view(current)
    if r.count < 2 or c.count < 2:
        return _insufficient(TestName.VARIANCE_RATIO, r, c, "fewer than 2 values")
    exp = _scale_exp(r, c)
    if trim == 0.0:
        v_r, v_c, h_r, h_c = r.variance_at(exp), c.variance_at(exp), r.count, c.count
    else:
        alpha = _alpha(trim, r, c)
        _, ss_r, h_r = _trimmed(r, alpha, exp)
        _, ss_c, h_c = _trimmed(c, alpha, exp)
        v_r, v_c = ss_r * r.count / (r.count - 1), ss_c * c.count / (c.count - 1)
    if v_r == 0.0 and v_c == 0.0:
        return TestResult(test=TestName.VARIANCE_RATIO, statistic=1.0, p_value=1.0, effect=0.0,
                          n_reference=r.count, n_current=c.count, note="both samples constant")
    if v_r == 0.0 or v_c == 0.0:
        f = MAX_EFFECT if v_r == 0.0 else 0.0
        return TestResult(test=TestName.VARIANCE_RATIO, statistic=f, p_value=0.0, effect=MAX_EFFECT,
                          n_reference=r.count, n_current=c.count,
                          note="constant reference" if v_r == 0.0 else "constant current")
    f = v_c / v_r  # 0 or inf when the spreads are further apart than the float range: ln F still is not
    lower = float(special.fdtr(h_c - 1, h_r - 1, f))
    upper = float(special.fdtrc(h_c - 1, h_r - 1, f))
    return TestResult(
        test=TestName.VARIANCE_RATIO, statistic=f, p_value=min(1.0, 2.0 * min(lower, upper)),
        effect=abs(math.log(v_c) - math.log(v_r)), n_reference=r.count, n_current=c.count,
        details=(("variance_reference", _unscaled(v_r, 2 * exp)), ("variance_current", _unscaled(v_c, 2 * exp))),
    )


def _ks_sf(d: float, n_r: int, n_c: int) -> float:
    """P(D >= d) for the two-sample KS statistic, Smirnov's asymptotic form.

    With en = n_r n_c / (n_r + n_c): scipy's ``kstwo.sf(d, round(en))`` (what
    ``ks_2samp(method="asymp")`` uses) for en < 100; above that Stephens' (1970)
    approximation Q_KS((sqrt(en) + 0.12 + 0.11 / sqrt(en)) d), within ~3% of it and ~100x
    cheaper. One value each side (en = 1/2, which rounds to 0, where kstwo is undefined) counts as en = 1.
    """
    if d <= 0.0:
        return 1.0
    en = n_r * n_c / (n_r + n_c)
    if en < 100:
        return float(stats.kstwo.sf(d, max(1, round(en))))
    s = math.sqrt(en)
    return float(special.kolmogorov((s + 0.12 + 0.11 / s) * d))


def _ks_points(r: NumericView, c: NumericView) -> tuple[tuple[np.ndarray, ...], float]:
    """Where to evaluate both CDFs (sorted point sets, D being the largest gap over all of them), and what
    that choice may miss of D.

    Between neighbouring breakpoints of both summaries the two estimated CDFs are linear, so D
    (of the estimates) is reached at a breakpoint, on one side of it: evaluating every breakpoint
    of both misses nothing. With too many, the smaller summary's breakpoints and the larger's
    quantile grid are used: between those points the first CDF is linear and the second moves by
    at most 1/GRID_SIZE, which bounds what is missed. The sets are not merged: the maximum over
    their union is the larger of their maxima, and each summary's CDF at its own breakpoints is
    computed once per view (a baseline's, once for every window compared with it).
    """
    br, bc = r.breakpoints, c.breakpoints
    if br.shape[0] + bc.shape[0] <= KS_EXACT_POINTS:
        return (br, bc), 0.0
    small, large = (r, c) if br.shape[0] <= bc.shape[0] else (c, r)
    return (small.breakpoints, large.grid), 1.0 / GRID_SIZE


def _cdf_at(v: NumericView, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``v.cdf_both(points)``, kept on ``v`` when ``points`` are its own breakpoints or quantile grid."""
    if points is v.breakpoints:
        return v.memo("cdf_at_breakpoints", lambda: v.cdf_both(points))
    if points is v.grid:
        return v.memo("cdf_at_grid", lambda: v.cdf_both(points))
    return v.cdf_both(points)


def ks(*, reference: NumericInput, current: NumericInput) -> TestResult:
    """Two-sample Kolmogorov-Smirnov distance from the summaries.

    D = max_x |F_ref(x) - F_cur(x)|, with both CDFs (and their left limits) evaluated at every
    breakpoint of both summaries (:func:`_ks_points`): on exact summaries every sample value, so
    D is exact. Summary error: each estimated CDF is within its ``rank_error`` of the truth (a
    hard bound), so the p-value is computed from D_adj = max(0, D - err_ref - err_cur - missed)
    (details["d_adjusted"]) and never overstates the evidence; on exact summaries D_adj = D and
    p matches ``scipy.stats.ks_2samp(method="asymp")``. statistic = effect = D.
    """
    r, c = numeric_view(reference), numeric_view(current)
    if r.count == 0 or c.count == 0:
        return _insufficient(TestName.KS, r, c, "empty window")
    sets, missed = _ks_points(r, c)
    # the largest gap of F(x) and of F(x-) over every point, and the smallest point reaching it (as argmax over
    # the sorted union of the sets would find it)
    gap_le, at_le, gap_lt, at_lt = -1.0, math.inf, -1.0, math.inf
    for points in sets:
        if points.shape[0] == 0:
            continue
        (le_r, lt_r), (le_c, lt_c) = _cdf_at(r, points), _cdf_at(c, points)
        at_or_below, below = np.abs(le_r - le_c), np.abs(lt_r - lt_c)
        i, j = int(np.argmax(at_or_below)), int(np.argmax(below))
        gap, at = float(at_or_below[i]), float(points[i])
        if gap > gap_le or (gap == gap_le and at < at_le):
            gap_le, at_le = gap, at
        gap, at = float(below[j]), float(points[j])
        if gap > gap_lt or (gap == gap_lt and at < at_lt):
            gap_lt, at_lt = gap, at
    d, location = (gap_le, at_le) if gap_le >= gap_lt else (gap_lt, at_lt)
    d_adj = max(0.0, d - r.rank_error - c.rank_error - missed)
    return TestResult(
        test=TestName.KS, statistic=d, p_value=_ks_sf(d_adj, r.count, c.count), effect=d,
        n_reference=r.count, n_current=c.count,
        details=(("d_adjusted", d_adj), ("location", location)),
    )


def wasserstein(*, reference: NumericInput, current: NumericInput, trim: float = DEFAULT_TRIM) -> TestResult:
    """Wasserstein-1 distance between the quantile functions, in baseline sd.

    W1 = integral_0^1 |Q_cur(u) - Q_ref(u)| du, computed by the midpoint rule on the rank
    grid and averaged over the central ranks alpha <= u <= 1 - alpha only (alpha = the
    effective trim), so one extreme value cannot dominate it; a pure shift by s gives
    W1 = s exactly. statistic = W1 in feature units, effect = W1 / sd_ref, no p-value.
    With trim=0 on exact summaries it matches ``scipy.stats.wasserstein_distance``.
    """
    trim = _check_trim(trim)
    r, c = numeric_view(reference), numeric_view(current)
    if r.count == 0 or c.count == 0:
        return _insufficient(TestName.WASSERSTEIN, r, c, "empty window")
    alpha = _alpha(trim, r, c)
    keep = (GRID >= alpha) & (GRID <= 1.0 - alpha)
    exp = _scale_exp(r, c)  # (a difference of values past 9e307 is past the float range)
    w1 = float(np.abs(_scaled(c.grid[keep], exp) - _scaled(r.grid[keep], exp)).mean())
    note = "constant reference" if r.std == 0.0 and w1 > 0.0 else None
    return TestResult(
        test=TestName.WASSERSTEIN, statistic=_unscaled(w1, exp), p_value=None, effect=_ratio(w1, r.std_at(exp)),
        n_reference=r.count, n_current=c.count, note=note, details=(("trim", alpha),),
    )


def _bin_shares(r: NumericView, c: NumericView) -> tuple[np.ndarray, np.ndarray]:
    """Shares of both samples in the baseline-quantile bins (the edges and the reference's shares computed
    once per reference, the current's once per pair).

    Interior edges: the reference's deciles (k / PSI_BINS quantiles; duplicates merged, so
    a discrete feature gets fewer bins). Outer edges: just below the reference minimum and
    at its maximum, so values outside the baseline range fall in two bins of their own
    (empty in the reference). Bins are right-closed: (e_{i-1}, e_i].
    """


    def reference() -> tuple[np.ndarray, np.ndarray]:  # the edges and the reference's shares: r's alone
        deciles = r.quantiles(np.arange(1, PSI_BINS) / PSI_BINS)
        edges = np.unique(np.concatenate(([math.nextafter(r.minimum, -math.inf)], deciles, [r.maximum])))
        ref = np.clip(np.diff(np.concatenate(([0.0], r.cdf(edges), [1.0]))), 0.0, None)
        return edges, ref / ref.sum()

    edges, ref = r.memo("bin_edges", reference)

    def compute() -> tuple[object, np.ndarray]:
        cur = np.clip(np.diff(np.concatenate(([0.0], c.cdf(edges), [1.0]))), 0.0, None)
        return r.stats, cur / cur.sum()

    owner, cur = c.memo(("bins", id(r)), compute)  # with r's statistics, not r (see views.aligned)
    if owner is not r.stats:  # a different reference that reused the id: recompute
        _, cur = compute()
    return ref, cur


def psi(*, reference: NumericInput, current: NumericInput) -> TestResult:
    """Population stability index on the baseline-quantile bins (see ``_bin_shares``).

    PSI = sum_i (c_i - r_i) ln(c_i / r_i), shares smoothed additively with PSI_EPSILON
    (:func:`monitor.compare.shares.psi_from_shares`). statistic = effect = PSI; no p-value
    (see :mod:`monitor.compare.shares` for why).
    """
    r, c = numeric_view(reference), numeric_view(current)
    if r.count == 0 or c.count == 0:
        return _insufficient(TestName.PSI, r, c, "empty window")
    ref, cur = _bin_shares(r, c)
    return psi_from_shares(ref, cur, n_reference=r.count, n_current=c.count, test=TestName.PSI)


def jsd(*, reference: NumericInput, current: NumericInput) -> TestResult:
    """Jensen-Shannon divergence (base 2, in [0, 1]) on the baseline-quantile bins.

    JSD(P, Q) = 1/2 KL(P || M) + 1/2 KL(Q || M), M = (P + Q) / 2, KL in bits: the
    *divergence*, i.e. the square of ``scipy.spatial.distance.jensenshannon(p, q, base=2)``.
    Quantile bins make it range-robust: one outlier moves one bin share by 1/n.
    statistic = effect = JSD; no p-value. Not TFDV's histogram JSD (that one lives in
    monitor.tfdv_interop).
    """
    r, c = numeric_view(reference), numeric_view(current)
    if r.count == 0 or c.count == 0:
        return _insufficient(TestName.JSD, r, c, "empty window")
    ref, cur = _bin_shares(r, c)
    return jsd_from_shares(ref, cur, n_reference=r.count, n_current=c.count, test=TestName.JSD)
