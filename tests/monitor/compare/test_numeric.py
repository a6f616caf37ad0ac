"""Numeric comparisons against scipy/numpy oracles computed on the same raw arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from monitor.compare import MAX_EFFECT, NumericView, TestName, jsd, ks, mean_shift, psi, variance_ratio, wasserstein
from monitor.compare.shares import PSI_EPSILON
from monitor.compare.views import GRID, GRID_SIZE
from monitor.errors import ConfigError
from monitor.stats import NumericStats

NUMERIC_TESTS = (mean_shift, variance_ratio, ks, wasserstein, psi, jsd)


def num(values) -> NumericStats:
    s = NumericStats()
    s.update(np.asarray(values, dtype=np.float64))
    return s


@pytest.fixture(scope="module")
def small():
    """Exact summaries (fewer distinct values than the default bins)."""
    rng = np.random.default_rng(7)
    a = rng.normal(10.0, 2.0, size=100)
    b = rng.normal(10.8, 2.6, size=200)
    return a, b, num(a), num(b)


@pytest.fixture(scope="module")
def large():
    rng = np.random.default_rng(11)
    a = rng.normal(0.0, 1.0, size=20_000)
    b = rng.normal(0.5, 1.0, size=10_000)
    return a, b, num(a), num(b)


# -- mean_shift ----------------------------------------------------------------------------------

def test_mean_shift_untrimmed_is_welch(small, large):
    for a, b, sa, sb in (small, large):
        r = mean_shift(reference=sa, current=sb, trim=0.0)
        oracle = stats.ttest_ind(b, a, equal_var=False)
        assert r.statistic == pytest.approx(oracle.statistic, rel=1e-9)
        assert r.p_value == pytest.approx(oracle.pvalue, rel=1e-6, abs=1e-300)
        assert r.effect == pytest.approx(abs(b.mean() - a.mean()) / a.std(ddof=1), rel=1e-9)
        assert (r.n_reference, r.n_current) == (len(a), len(b))


def test_mean_shift_trimmed_is_yuen_on_exact_summaries(small):
    a, b, sa, sb = small
    r = mean_shift(reference=sa, current=sb, trim=0.1)
    oracle = stats.ttest_ind(b, a, equal_var=False, trim=0.1)
    assert r.statistic == pytest.approx(oracle.statistic, rel=1e-9)
    assert r.p_value == pytest.approx(oracle.pvalue, rel=1e-9)
    diff = stats.trim_mean(b, 0.1) - stats.trim_mean(a, 0.1)
    assert r.effect == pytest.approx(abs(diff) / a.std(ddof=1), rel=1e-9)


def _raw_trimmed_mean(x: np.ndarray, ranks: np.ndarray) -> float:
    return float(np.quantile(x, np.clip(ranks, 0, 1), method="inverted_cdf").mean())


def test_mean_shift_trimmed_from_sketch_within_rank_error(large):
    a, b, sa, sb = large
    r = mean_shift(reference=sa, current=sb)
    alpha = r.detail("trim")
    assert alpha == pytest.approx(max(0.01, sa.rank_error, sb.rank_error))
    core = GRID[(GRID >= alpha) & (GRID <= 1 - alpha)]
    for x, s, key in ((a, sa, "mean_reference"), (b, sb, "mean_current")):
        eps = s.rank_error
        lo, hi = _raw_trimmed_mean(x, core - eps), _raw_trimmed_mean(x, core + eps)
        assert lo <= r.detail(key) <= hi
    assert r.effect == pytest.approx(0.5, abs=0.05)


def test_mean_shift_ignores_one_extreme_value():
    rng = np.random.default_rng(3)
    a = rng.normal(size=20_000)
    b = rng.normal(size=5_000)
    spiked = b.copy()
    spiked[1234] = 1e9
    clean = mean_shift(reference=num(a), current=num(b))
    dirty = mean_shift(reference=num(a), current=num(spiked))
    assert abs(dirty.effect - clean.effect) < 0.1  # two sketches of nearly the same data: sd 0.007
    assert dirty.effect < 0.15
    # the classical mean is swung by the same row: that is why trimming is the default
    assert mean_shift(reference=num(a), current=num(spiked), trim=0.0).effect > 1e4


# -- variance_ratio ------------------------------------------------------------------------------

def _f_two_sided(f: float, df1: int, df2: int) -> float:
    return min(1.0, 2 * min(stats.f.cdf(f, df1, df2), stats.f.sf(f, df1, df2)))


def test_variance_ratio_untrimmed_is_f_test(small):
    a, b, sa, sb = small
    r = variance_ratio(reference=sa, current=sb, trim=0.0)
    f = b.var(ddof=1) / a.var(ddof=1)
    assert r.statistic == pytest.approx(f, rel=1e-9)
    assert r.p_value == pytest.approx(_f_two_sided(f, len(b) - 1, len(a) - 1), rel=1e-9)
    assert r.effect == pytest.approx(abs(math.log(f)), rel=1e-9)


def _winsorized_var(x: np.ndarray, trim: float) -> tuple[float, int]:
    x = np.sort(x)
    g = int(trim * len(x))
    w = x.copy()
    w[:g] = x[g]
    w[len(x) - g:] = x[len(x) - g - 1]
    return float(w.var(ddof=1)), len(x) - 2 * g


def test_variance_ratio_trimmed_is_winsorized_f_test(small):
    a, b, sa, sb = small
    r = variance_ratio(reference=sa, current=sb, trim=0.1)
    (va, ha), (vb, hb) = _winsorized_var(a, 0.1), _winsorized_var(b, 0.1)
    assert r.statistic == pytest.approx(vb / va, rel=1e-9)
    assert r.p_value == pytest.approx(_f_two_sided(vb / va, hb - 1, ha - 1), rel=1e-9)


def test_variance_ratio_scale_change_on_sketches():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=20_000), rng.normal(scale=1.5, size=10_000)
    r = variance_ratio(reference=num(a), current=num(b))
    # a location-scale change: the winsorized variance ratio estimates the variance ratio 2.25
    assert r.statistic == pytest.approx(2.25, rel=0.1)
    assert r.p_value < 1e-12


# -- ks ------------------------------------------------------------------------------------------

def test_ks_exact_summaries_match_scipy(small):
    a, b, sa, sb = small
    r = ks(reference=sa, current=sb)
    oracle = stats.ks_2samp(a, b, method="asymp")
    assert r.statistic == pytest.approx(oracle.statistic, abs=1e-12)
    assert r.p_value == pytest.approx(oracle.pvalue, rel=1e-9)
    assert r.detail("d_adjusted") == r.statistic


def test_ks_large_exact_summaries_match_scipy(large):
    a, b, _, _ = large
    exact_a, exact_b = NumericStats(bins=65536), NumericStats(bins=65536)
    exact_a.update(a)
    exact_b.update(b)
    assert exact_a.is_exact and exact_b.is_exact
    r = ks(reference=exact_a, current=exact_b)  # 30,000 breakpoints: the grid fallback's bound applies
    oracle = stats.ks_2samp(a, b, method="asymp")
    assert abs(r.statistic - oracle.statistic) <= 1.0 / GRID_SIZE
    small_b = NumericStats(bins=65536)
    small_b.update(b[:5000])
    r = ks(reference=exact_a, current=small_b)  # 25,000 breakpoints
    assert abs(r.statistic - stats.ks_2samp(a, b[:5000]).statistic) <= 1.0 / GRID_SIZE
    ten = NumericStats(bins=65536)
    ten.update(a[:10_000])
    r = ks(reference=ten, current=small_b)  # 15,000 breakpoints: every one evaluated, D exact
    oracle = stats.ks_2samp(a[:10_000], b[:5000], method="asymp")
    assert r.statistic == pytest.approx(oracle.statistic, abs=1e-12)
    assert r.p_value == pytest.approx(oracle.pvalue, rel=0.03)  # Stephens' form above en = 100


def test_ks_from_sketches_within_stated_error(large):
    a, b, sa, sb = large
    assert sa.rank_error > 0 and sb.rank_error > 0
    r = ks(reference=sa, current=sb)
    oracle = stats.ks_2samp(a, b, method="asymp")
    bound = sa.rank_error + sb.rank_error
    assert abs(r.statistic - oracle.statistic) <= bound
    # every breakpoint of both summaries is evaluated; each CDF is charged its hard rank-error bound
    assert r.detail("d_adjusted") == pytest.approx(max(0.0, r.statistic - bound))
    # the adjusted D never overstates the difference, so p is never smaller (Stephens' form: 3%)
    assert r.p_value >= 0.97 * oracle.pvalue


def _ks_on_the_union(r: NumericView, c: NumericView) -> tuple[float, float]:
    """D and its location as the sorted union of every point evaluated gives them (the first point reaching
    the largest gap): what ks computed before it evaluated the point sets apart."""
    from monitor.compare.numeric import KS_EXACT_POINTS

    br, bc = r.breakpoints, c.breakpoints
    if br.shape[0] + bc.shape[0] <= KS_EXACT_POINTS:
        points = np.union1d(br, bc)
    else:
        small, large = (r, c) if br.shape[0] <= bc.shape[0] else (c, r)
        points = np.union1d(small.breakpoints, large.grid)
    (le_r, lt_r), (le_c, lt_c) = r.cdf_both(points), c.cdf_both(points)
    at_or_below, below = np.abs(le_r - le_c), np.abs(lt_r - lt_c)
    i, j = int(np.argmax(at_or_below)), int(np.argmax(below))
    return (float(at_or_below[i]), float(points[i])) if at_or_below[i] >= below[j] else (float(below[j]),
                                                                                      float(points[j]))


def test_ks_point_sets_apart_give_what_their_union_gives():
    """D, its location and p as on the union of the points, for exact summaries, sketches, the grid fallback,
    heavy ties and a reference view reused for many windows (its CDF at its own points kept)."""
    rng = np.random.default_rng(5)
    makers = [
        lambda n: rng.normal(0.0, 1.0, n),
        lambda n: rng.integers(0, 6, n).astype(np.float64),  # ties everywhere: argmax order matters
        lambda n: np.round(rng.exponential(2.0, n), 1),
        lambda n: np.concatenate([rng.normal(0.0, 1.0, n - n // 4), np.full(n // 4, 3.0)]),
    ]
    for make in makers:
        for bins in (128, 4096, 65536):
            ref = NumericStats(bins=bins)
            ref.update(make(int(rng.integers(50, 30_000))))
            ref_view = NumericView(ref)
            for _ in range(4):
                cur = NumericStats(bins=bins)
                cur.update(make(int(rng.integers(1, 20_000))) + float(rng.choice([0.0, 0.0, 0.5])))
                cur_view = NumericView(cur)
                for r, c in ((ref_view, cur_view), (cur_view, ref_view)):
                    d, location = _ks_on_the_union(r, c)
                    got = ks(reference=r, current=c)
                    assert (got.statistic, got.detail("location")) == (d, location)
                    assert got == ks(reference=NumericView(r.stats), current=NumericView(c.stats))
    for _ in range(400):  # tiny samples: the largest gap often reached at several points of both sets
        a, b = rng.integers(0, 6, int(rng.integers(1, 7))), rng.integers(0, 6, int(rng.integers(1, 7)))
        r, c = NumericView(num(a)), NumericView(num(b))
        got = ks(reference=r, current=c)
        assert (got.statistic, got.detail("location")) == _ks_on_the_union(r, c)
        assert got.statistic == pytest.approx(stats.ks_2samp(a, b, method="asymp").statistic, abs=1e-12)


def test_ks_one_value_each_side_has_a_p_value():
    # en = 1/2 rounds to 0, where kstwo is undefined: it raised "p_value is NaN" (found by the test above)
    moved, same = ks(reference=num([1.0]), current=num([2.0])), ks(reference=num([1.0]), current=num([1.0]))
    assert (moved.statistic, moved.p_value) == (1.0, pytest.approx(stats.kstwo.sf(1.0, 1)))
    assert (same.statistic, same.p_value) == (0.0, 1.0)


def test_ks_p_value_is_conservative_under_no_change():
    rng = np.random.default_rng(21)
    a, b = rng.normal(size=50_000), rng.normal(size=50_000)
    r = ks(reference=num(a), current=num(b))
    assert r.p_value == 1.0  # D is below the sketches' error
    assert r.effect < 0.05


# -- wasserstein ---------------------------------------------------------------------------------

def test_wasserstein_untrimmed_exact_matches_scipy(small):
    a, b, sa, sb = small
    r = wasserstein(reference=sa, current=sb, trim=0.0)
    oracle = stats.wasserstein_distance(a, b)
    assert r.statistic == pytest.approx(oracle, rel=1e-9)
    assert r.effect == pytest.approx(oracle / a.std(ddof=1), rel=1e-9)


def test_wasserstein_from_sketches_close_to_scipy(large):
    a, b, sa, sb = large
    r = wasserstein(reference=sa, current=sb)
    # the central 98% of the quantile functions (trim 1%) against the whole: not equal, but close
    assert r.statistic == pytest.approx(stats.wasserstein_distance(a, b), rel=0.05)
    assert r.p_value is None


# -- psi and jsd ---------------------------------------------------------------------------------

def _raw_shares(ref: np.ndarray, cur: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    def shares(x):
        cum = np.searchsorted(np.sort(x), edges, side="right") / len(x)
        return np.diff(np.concatenate(([0.0], cum, [1.0])))

    return shares(ref), shares(cur)


def _exact_edges(ref: np.ndarray) -> np.ndarray:
    deciles = np.quantile(ref, np.arange(1, 10) / 10, method="inverted_cdf")
    return np.unique(np.concatenate(([np.nextafter(ref.min(), -np.inf)], deciles, [ref.max()])))


def test_psi_golden_value():
    ref = np.arange(100, dtype=float)          # ten values per decile bin
    cur = np.repeat(np.arange(50.0), 2)        # all mass in the lower five bins
    r = psi(reference=num(ref), current=num(cur))
    b, eps = 12, PSI_EPSILON                   # 10 decile bins + 2 out-of-range bins
    p = (np.array([0] + [0.1] * 10 + [0]) + eps) / (1 + b * eps)
    q = (np.array([0] + [0.2] * 5 + [0] * 5 + [0]) + eps) / (1 + b * eps)
    assert r.statistic == pytest.approx(float(np.sum((q - p) * np.log(q / p))), rel=1e-12)
    assert r.statistic == pytest.approx(5 * 0.1 * math.log(2) + 5 * 0.1 * math.log(0.1 / 1e-4), rel=0.01)
    assert r.effect == r.statistic and r.p_value is None


def test_values_outside_the_baseline_range_get_their_own_bins():
    ref = np.arange(100, dtype=float)
    below = psi(reference=num(ref), current=num(np.full(100, -5.0)))
    at_min = psi(reference=num(ref), current=num(np.zeros(100)))
    assert below.statistic > at_min.statistic > 1.0
    assert jsd(reference=num(ref), current=num(np.full(100, -5.0))).statistic == pytest.approx(1.0)


def test_jsd_exact_matches_scipy_jensenshannon_squared(small):
    a, b, sa, sb = small
    r = jsd(reference=sa, current=sb)
    p, q = _raw_shares(a, b, _exact_edges(a))
    assert r.statistic == pytest.approx(jensenshannon(p, q, base=2) ** 2, rel=1e-9)
    assert 0.0 <= r.effect <= 1.0


def test_psi_and_jsd_from_sketches_close_to_raw(large):
    a, b, sa, sb = large
    p, q = _raw_shares(a, b, _exact_edges(a))
    # sketch noise (measured over 300 sketches): sd 4.2% for both
    assert jsd(reference=sa, current=sb).statistic == pytest.approx(jensenshannon(p, q, base=2) ** 2, rel=0.2)
    raw_psi = float(np.sum((q - p) * np.log((q + 1e-12) / (p + 1e-12))))
    assert psi(reference=sa, current=sb).statistic == pytest.approx(raw_psi, rel=0.2)


@pytest.mark.parametrize("test", [ks, mean_shift, variance_ratio])
def test_p_values_are_calibrated_under_no_change(test):
    rng = np.random.default_rng(99)
    reps, hits = 300, 0
    for _ in range(reps):
        r = test(reference=num(rng.normal(size=200)), current=num(rng.normal(size=150)))
        hits += r.p_value <= 0.05
    # binomial(300, 0.05): mean 15, sd 3.8
    assert 3 <= hits <= 30


def test_binned_tests_shrug_off_one_outlier():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=20_000), rng.normal(size=5_000)
    spiked = b.copy()
    spiked[0] = 1e12
    for test in (psi, jsd, ks, wasserstein, variance_ratio):
        clean = test(reference=num(a), current=num(b)).effect
        dirty = test(reference=num(a), current=num(spiked)).effect
        assert abs(dirty - clean) < 0.05, test.__name__


# -- degenerate inputs ---------------------------------------------------------------------------

def _finite(r) -> bool:
    values = [r.statistic, r.effect] + ([] if r.p_value is None else [r.p_value])
    return all(math.isfinite(v) for v in values)


@pytest.mark.parametrize("test", NUMERIC_TESTS)
def test_empty_window_gives_a_defined_result(test):
    empty = NumericStats()
    empty.update(np.array([np.nan, np.nan]))
    for ref, cur in ((num([1.0, 2.0, 3.0]), empty), (empty, num([1.0, 2.0])), (empty, empty)):
        r = test(reference=ref, current=cur)
        assert r.effect == 0.0 and r.p_value is None and r.note and r.computed is False
        assert _finite(r)


@pytest.mark.parametrize("test", NUMERIC_TESTS)
def test_constant_samples_give_defined_results(test):
    same = test(reference=num([5.0] * 300), current=num([5.0] * 50))
    moved = test(reference=num([5.0] * 300), current=num([6.0] * 50))
    assert _finite(same) and _finite(moved)
    assert same.effect == 0.0
    if test is not variance_ratio:  # both constant: the spread did not change
        assert moved.effect > 0.5


def test_constant_reference_moved_is_capped_not_infinite():
    r = mean_shift(reference=num([5.0] * 300), current=num([6.0, 6.5] * 50))
    assert r.effect == MAX_EFFECT and r.p_value < 1e-12 and r.note == "constant reference"
    v = variance_ratio(reference=num([5.0] * 300), current=num([6.0, 6.5] * 50))
    assert v.effect == MAX_EFFECT and v.p_value == 0.0


def test_single_value_window_is_insufficient_for_moments():
    r = mean_shift(reference=num([1.0, 2.0, 3.0]), current=num([2.0]))
    assert r.p_value is None and r.effect == 0.0 and "fewer than 2" in r.note and not r.computed


def test_views_and_stats_give_identical_results(large):
    _, _, sa, sb = large
    va, vb = NumericView(sa), NumericView(sb)
    for test in NUMERIC_TESTS:
        assert test(reference=va, current=vb) == test(reference=sa, current=sb)


def test_bad_trim_is_a_config_error(small):
    _, _, sa, sb = small
    for bad in (-0.1, 0.3, "x"):
        with pytest.raises(ConfigError) as exc:
            mean_shift(reference=sa, current=sb, trim=bad)
        assert exc.value.field == "trim"


def test_results_are_named(small):
    _, _, sa, sb = small
    names = [t(reference=sa, current=sb).test for t in NUMERIC_TESTS]
    assert names == [TestName.MEAN_SHIFT, TestName.VARIANCE_RATIO, TestName.KS, TestName.WASSERSTEIN,
                     TestName.PSI, TestName.JSD]


@pytest.mark.parametrize("exp", [1000, 600, -600, -1000])
def test_the_comparisons_are_the_same_in_units_of_any_power_of_two(exp):
    """Values a client may send at the ends of the float range (their squares beyond it): every numeric test
    gives what it gives on the same values times 2**-exp (the moments are taken in units of a power of two),
    where variance_ratio raised ValueError (log 0) and mean_shift returned p = NaN."""
    rng = np.random.default_rng(8)
    pairs = [(rng.normal(0, 1, 5000), rng.normal(0.3, 1.4, 3000)), (rng.normal(0, 1, 50), rng.normal(0, 1, 3)),
             (rng.lognormal(0, 1, 4000), rng.lognormal(0.2, 1, 4000)), (np.full(100, 2.0), rng.normal(2, 1, 100))]
    for a, b in pairs:
        for bins in (128, 4096):
            plain, scaled = [], []
            for x, out in ((a, plain), (b, plain), (np.ldexp(a, exp), scaled), (np.ldexp(b, exp), scaled)):
                st = NumericStats(bins=bins)
                st.update(x)
                out.append(st)
            for test in NUMERIC_TESTS:
                want, got = test(reference=plain[0], current=plain[1]), test(reference=scaled[0], current=scaled[1])
                assert (got.p_value is None) == (want.p_value is None)
                assert got.p_value == (None if want.p_value is None else pytest.approx(want.p_value, rel=1e-12,
                                                                                        abs=1e-300))
                assert got.effect == pytest.approx(want.effect, rel=1e-9)
                units = 2.0 ** exp if test in (wasserstein,) else 1.0
                if test is not mean_shift and test is not variance_ratio:
                    # (statistics are clipped to +-MAX_EFFECT as stored)
                    assert got.statistic == pytest.approx(min(want.statistic * units, MAX_EFFECT), rel=1e-9)
                if test is variance_ratio and math.isfinite(want.statistic):
                    assert got.statistic == pytest.approx(want.statistic, rel=1e-9)


def test_values_at_the_ends_of_the_float_range_are_compared_not_raised():
    rng = np.random.default_rng(9)
    extremes = [np.array([1.7e308, -1.7e308] * 20), np.concatenate([rng.normal(0, 1, 500), [1.7e308, -1.7e308]]),
                rng.uniform(-1, 1, 3000) * 1.7e308, np.concatenate([rng.normal(0, 1e-310, 300), [1e300]]),
                np.array([5e-324, 1e-323, 0.0] * 10), rng.normal(0, 1, 300)]
    for a in extremes:
        for b in extremes:
            for test in NUMERIC_TESTS:
                r = test(reference=num(a), current=num(b))
                assert r.p_value is None or 0.0 <= r.p_value <= 1.0
                assert r.effect >= 0.0 and not math.isnan(r.statistic)
    far = variance_ratio(reference=num(rng.normal(0, 1e-300, 200)), current=num(rng.normal(0, 1e300, 200)))
    assert far.effect == MAX_EFFECT and far.p_value == 0.0  # spreads 1e600 apart: F itself is inf
