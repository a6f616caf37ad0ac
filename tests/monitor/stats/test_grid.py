"""The log-linear bucket grid: keys, canonical fitting, and merges against brute-force oracles."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.stats import grid


def brute_shift(x: np.ndarray, bins: int) -> int:
    k = grid.keys_of(x)
    return next(d for d in range(64) if np.unique(k >> d).size <= bins)


def test_keys_sort_like_values_and_round_trip() -> None:
    x = np.array([-np.finfo(float).max, -1e300, -2.5, -5e-324, -0.0, 0.0, 5e-324, 1e-300, 1.0, 3.0, np.finfo(float).max])
    k = grid.keys_of(x)
    assert (np.diff(k[[0, 1, 2, 3, 5, 6, 7, 8, 9, 10]]) > 0).all() and k[4] == k[5] == 0
    np.testing.assert_array_equal(grid.values_of(k), x + 0.0)  # -0.0 comes back as +0.0


@pytest.mark.parametrize("bins", [8, 100, 2048])
def test_fitting_shift_is_the_finest_that_fits(bins: int) -> None:
    rng = np.random.default_rng(bins)
    for x in (rng.normal(290, 10, 5000), rng.lognormal(0, 2, 5000), rng.integers(0, 50, 5000) * 1.0,
              np.concatenate([rng.normal(0, 1, 4000), [1e200, -1e-200]])):
        b = grid.from_values(x, 0, bins)
        assert b.shift == brute_shift(x, bins) and len(b) <= bins
        assert b.total == x.size


def test_bucket_ends_are_the_true_extremes_with_their_counts() -> None:
    rng = np.random.default_rng(2)
    x = np.round(rng.normal(0, 3, 20_000), 1)
    b = grid.from_values(x, 0, 64)
    values = grid.keys_of(x)
    for i in range(len(b)):
        inside = values[(values >> b.shift) == b.ids[i]]
        assert (b.lo[i], b.hi[i], b.cnt[i]) == (inside.min(), inside.max(), inside.size)
        assert b.nlo[i] == (inside == inside.min()).sum()
        assert b.nhi[i] == (0 if inside.min() == inside.max() else (inside == inside.max()).sum())
    grid.validate(b)


def test_union_of_parts_equals_buckets_of_the_whole() -> None:
    rng = np.random.default_rng(3)
    x = rng.lognormal(0, 1.5, 30_000)
    whole = grid.from_values(x, 0, 256)
    parts = [grid.from_values(p, 0, 256) for p in np.array_split(rng.permutation(x), 7)]
    merged = grid.EMPTY
    for p in parts:
        merged = grid.fit(grid.union(merged, p), 256)
    assert merged.same(whole)


def test_rank_error_bounds_the_cdf() -> None:
    rng = np.random.default_rng(4)
    x = rng.gamma(2.0, 3.0, 50_000)
    b = grid.from_values(x, 0, 128)
    shape = grid.Shape(b)
    xs = np.sort(x)
    t = np.quantile(x, np.linspace(0.001, 0.999, 500))
    err = np.abs(shape.counts_le(t, inclusive=True) - np.searchsorted(xs, t, "right")) / x.size
    assert 0 < err.max() <= grid.rank_error(b)


@pytest.mark.parametrize("case", ["the ends of the float range", "subnormal widths", "both"])
def test_the_cdf_inside_buckets_at_the_ends_of_the_float_range_is_a_number(case: str) -> None:
    """A bucket between two subnormals has an infinite reciprocal width: 0 * inf gave NaN shares, and NaN PSI
    and JSD. Buckets up to 1.7e308 stay finite (none holds values of both signs)."""
    rng = np.random.default_rng(12)
    parts = {"the ends of the float range": [rng.uniform(-1, 1, 20_000) * 1.7e308],
             "subnormal widths": [rng.normal(0, 1e-310, 20_000)],
             "both": [rng.uniform(-1, 1, 10_000) * 1.7e308, rng.normal(0, 1e-310, 10_000)]}[case]
    x = np.concatenate(parts)
    xs = np.sort(x)
    for bins in (16, 128, 4096):
        b = grid.from_values(x, 0, bins)
        shape = grid.Shape(b)
        t = np.concatenate([np.quantile(x, np.linspace(0, 1, 400)), shape.lo, shape.hi, shape.lo * 0.5 + shape.hi * 0.5])
        le, lt = shape.counts_both(t)
        for got in (le, lt, shape.counts_le(t, inclusive=True), shape.counts_le(t, inclusive=False)):
            assert np.isfinite(got).all() and (got >= 0).all() and (got <= x.size).all()
        np.testing.assert_array_equal(le, shape.counts_le(t, inclusive=True))
        order = np.argsort(t, kind="stable")
        assert (np.diff(le[order]) >= 0).all()  # a CDF
        err = np.abs(le - np.searchsorted(xs, t, "right")) / x.size
        assert err.max() <= grid.rank_error(b) + 1e-12


def test_both_sided_counts_equal_the_two_one_sided_queries() -> None:
    rng = np.random.default_rng(6)
    x = np.concatenate([np.zeros(300), np.round(rng.normal(5, 2, 5000), 1), np.full(200, 9.0)])
    for bins in (16, 4096):
        shape = grid.Shape(grid.from_values(x, 0, bins))
        t = np.concatenate([shape.lo, shape.hi, rng.normal(5, 3, 500), [-1e9, 1e9]])
        le, lt = shape.counts_both(t)
        np.testing.assert_array_equal(le, shape.counts_le(t, inclusive=True))
        np.testing.assert_allclose(lt, shape.counts_le(t, inclusive=False), rtol=0, atol=1e-9)


def _same(a: grid.Buckets, b: grid.Buckets) -> bool:
    pairs = zip(a.arrays(), b.arrays())
    return a.shift == b.shift and all(np.array_equal(x, y) and x.dtype == y.dtype for x, y in pairs)


def test_the_compiled_buckets_are_numpys() -> None:
    pytest.importorskip("monitor.stats._exact", reason="the compiled buckets are not built")
    rng = np.random.default_rng(7)
    top = np.finfo(float).max
    fixed = [np.array([0.0]), np.array([-0.0, 0.0, 0.0]), np.array([-top, top]), np.array([-top, -5e-324, 5e-324, top]),
             np.full(300, 2.5), np.repeat([1.0, 2.0, 3.0], 100)]
    for trial in range(1500):
        n = int(rng.integers(1, 2000))
        x = fixed[trial] if trial < len(fixed) else [
            lambda: rng.normal(0, 1, n), lambda: np.round(rng.normal(0, 1, n), 1),
            lambda: rng.integers(-5, 5, n) * 1.0, lambda: rng.normal(0, 1, n) * 10.0 ** rng.integers(-300, 300, n),
            lambda: np.full(n, rng.normal()),
        ][trial % 5]()
        k = np.sort(grid.keys_of(x))
        shift, bins = int(rng.integers(0, 40)), [None, 2, 3, 16, 128, 1024, 5000][trial % 7]
        compiled, numpy = grid.from_sorted_keys(k, shift, bins), grid.numpy_from_sorted_keys(k, shift, bins)
        assert _same(compiled, numpy), (trial, shift, bins)


def test_the_compiled_buckets_refuse_what_they_cannot_use() -> None:
    native = pytest.importorskip("monitor.stats._exact", reason="the compiled buckets are not built").buckets
    k = np.array([1, 2, 3], dtype=np.int64)
    with pytest.raises(ValueError, match="sorted"):
        native(k[::-1].copy(), 0, 0, np.empty((6, 3), np.int64))
    with pytest.raises(ValueError, match="shape"):
        native(k, 0, 0, np.empty((6, 2), np.int64))
    with pytest.raises(ValueError, match="shift"):
        native(k, 64, 0, np.empty((6, 3), np.int64))
    with pytest.raises(TypeError, match="int64"):
        native(k.astype(np.float64), 0, 0, np.empty((6, 3), np.int64))
    with pytest.raises((TypeError, ValueError, BufferError)):  # numpy refuses a contiguous view of a transpose
        native(k, 0, 0, np.empty((3, 6), np.int64).T)
    assert native(k, 0, 2, np.empty((6, 2), np.int64)) == (1, 2)  # 1 | 2, 3 at shift 1
