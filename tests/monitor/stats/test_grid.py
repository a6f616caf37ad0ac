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


def test_both_sided_counts_equal_the_two_one_sided_queries() -> None:
    rng = np.random.default_rng(6)
    x = np.concatenate([np.zeros(300), np.round(rng.normal(5, 2, 5000), 1), np.full(200, 9.0)])
    for bins in (16, 4096):
        shape = grid.Shape(grid.from_values(x, 0, bins))
        t = np.concatenate([shape.lo, shape.hi, rng.normal(5, 3, 500), [-1e9, 1e9]])
        le, lt = shape.counts_both(t)
        np.testing.assert_array_equal(le, shape.counts_le(t, inclusive=True))
        np.testing.assert_allclose(lt, shape.counts_le(t, inclusive=False), rtol=0, atol=1e-9)
