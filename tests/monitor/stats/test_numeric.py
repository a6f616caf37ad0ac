"""NumericStats against numpy and exact-rational oracles, bucket queries within the stated rank
error, determinism across batchings and merges, bad input, size."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from monitor.errors import ConfigError, SchemaError, StatisticsError
from monitor.stats import FORMAT_VERSION, CategoricalStats, NumericStats, to_float_array

RNG_SEED = 20261126


def data(kind: str, n: int, seed: int = RNG_SEED) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.normal(1e4, 3.0, n)  # large mean, small spread: the cancellation-prone case
    if kind == "lognormal":
        return rng.lognormal(0.0, 2.0, n)  # heavy right tail
    if kind == "ints":
        return rng.integers(-5000, 5000, n).astype(np.float64)  # many ties, more values than buckets
    raise ValueError(kind)


def fed(values: np.ndarray, batches: int, bins: int = 2048) -> NumericStats:
    s = NumericStats(bins)
    for part in np.array_split(values, batches):
        s.update(part)
    return s


@pytest.mark.parametrize("kind", ["normal", "lognormal", "ints"])
@pytest.mark.parametrize("batches", [1, 7, 100])
def test_exact_parts_match_numpy(kind: str, batches: int) -> None:
    x = data(kind, 50_000)
    s = fed(x, batches)
    assert s.count == x.size and s.missing == 0 and s.nonfinite == 0
    assert s.mean == pytest.approx(np.mean(x), rel=1e-9)
    assert s.variance == pytest.approx(np.var(x, ddof=1), rel=1e-9)
    assert s.std == pytest.approx(np.std(x, ddof=1), rel=1e-9)
    assert s.m2 == pytest.approx(np.var(x) * x.size, rel=1e-9)
    assert s.sum == pytest.approx(np.sum(x), rel=1e-9)
    assert (s.min, s.max) == (np.min(x), np.max(x))


def test_moments_are_the_correctly_rounded_exact_values() -> None:
    """Oracle: exact rational arithmetic on the same doubles (fractions.Fraction)."""
    rng = np.random.default_rng(2)
    cases = [rng.normal(1e4, 3.0, 400), rng.lognormal(0, 3, 400), rng.integers(-9, 9, 50).astype(np.float64),
             np.array([1e150, -1e150, 1e-300, 5e-324, 1.0, 0.0, -0.0]), np.array([1.7e9 + 0.25 * i for i in range(300)])]
    for x in cases:
        s = NumericStats()
        for part in np.array_split(x, 3):
            s.update(part)
        exact = [Fraction(v) for v in x.tolist()]
        mean = sum(exact) / len(exact)
        m2 = sum((v - mean) ** 2 for v in exact)
        assert s.mean == float(mean) and s.m2 == float(m2) and s.variance == float(m2 / (len(x) - 1))
        assert s.sum == float(sum(exact))


def test_moments_past_the_float_range_are_inf_or_scaled_never_an_error() -> None:
    """A client may send any finite number: the variance of +-1e300 is 1e600 (inf as a float; it raised
    OverflowError), the standard deviation 1e300 (finite, and given), the variance in units of 2**k
    finite; below the range the same (subnormal spreads keep a non-zero sd). Oracle: Fraction."""
    cases = [np.array([1e300, -1e300, 3e299]), np.array([1.7e308, -1.7e308, 1.0]), np.array([1.7e308, -1.7e308]),
             np.array([1e-300, 3e-300, -2e-300]), np.array([5e-324, 1e-323, 0.0]), np.array([1e200, 1e200 * (1 + 2e-16)])]
    for x in cases:
        s = NumericStats()
        s.update(x)
        exact = [Fraction(v) for v in x.tolist()]
        mean = sum(exact) / len(exact)
        variance = sum((v - mean) ** 2 for v in exact) / (len(x) - 1)
        try:
            want = float(variance)
        except OverflowError:
            want = math.inf
        assert s.variance == want and s.m2 == pytest.approx(want * (len(x) - 1), rel=1e-15)
        for k in (-1100, -600, 0, 600, 1024):
            try:
                scaled = float(variance / Fraction(4) ** k)
            except OverflowError:
                scaled = math.inf
            assert s.variance_scaled(k) == scaled
        sd = math.sqrt(float(variance * Fraction(4) ** 600)) / 2.0 ** 600 if want < 1e-300 else \
            math.sqrt(float(variance / Fraction(4) ** 600)) * 2.0 ** 600
        assert s.std == pytest.approx(sd, rel=1e-15) and math.isfinite(s.std) == math.isfinite(sd)
        repr(s)  # (it raised through std)


def test_merged_parts_match_numpy() -> None:
    x = data("lognormal", 30_000)
    parts = [fed(p, 3) for p in np.array_split(x, 13)]
    merged = parts[0]
    for p in parts[1:]:
        merged = merged.merge(p)
    assert merged.mean == pytest.approx(np.mean(x), rel=1e-9)
    assert merged.variance == pytest.approx(np.var(x, ddof=1), rel=1e-9)
    assert (merged.count, merged.min, merged.max) == (x.size, x.min(), x.max())


def test_missing_and_nonfinite_are_counted_apart() -> None:
    s = NumericStats()
    s.update([1.0, None, 3, float("nan"), float("inf"), -float("inf"), 5.5])
    s.update(np.array([np.nan, 2.0, np.inf]))
    finite = np.array([1.0, 3.0, 5.5, 2.0])
    assert (s.count, s.missing, s.nonfinite, s.total) == (4, 3, 3, 10)
    assert s.mean == pytest.approx(finite.mean(), rel=1e-12)
    assert s.variance == pytest.approx(finite.var(ddof=1), rel=1e-12)
    assert (s.min, s.max) == (1.0, 5.5)
    assert s.quantiles(np.array([0.0, 1.0])).tolist() == [1.0, 5.5]  # the sketch never saw inf


def test_accepts_ints_and_pandas_nullable() -> None:
    a, b = NumericStats(), NumericStats()
    a.update(np.array([1, 2, 3], dtype=np.int32))
    a.update(pd.Series([4, None, 6], dtype="Int64"))
    b.update([1.0, 2.0, 3.0])
    b.update([4.0, None, 6.0])
    assert a == b


def test_empty_cases() -> None:
    s = NumericStats()
    s.update(np.array([]))
    s.update([])
    assert s.is_empty() and s.count == 0
    assert all(math.isnan(v) for v in (s.mean, s.variance, s.std, s.min, s.max))
    assert np.isnan(s.quantiles([0.5])).all() and np.isnan(s.cdf([0.0])).all()
    assert s.histogram([0.0, 1.0]).tolist() == [0.0]
    assert s.rank_error == 0.0
    only_missing = NumericStats()
    only_missing.update([None, float("nan")])
    assert (only_missing.count, only_missing.missing) == (0, 2) and math.isnan(only_missing.mean)
    merged = only_missing.merge(s)
    assert (merged.count, merged.missing) == (0, 2)
    one = NumericStats()
    one.update([7.0])
    assert one.mean == 7.0 and math.isnan(one.variance) and one.m2 == 0.0


def true_rank(sorted_x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of values < v and <= v."""
    n = sorted_x.size
    return np.searchsorted(sorted_x, v, "left") / n, np.searchsorted(sorted_x, v, "right") / n


@pytest.mark.parametrize("kind", ["normal", "lognormal", "ints"])
def test_quantiles_within_their_buckets(kind: str) -> None:
    x = data(kind, 200_000)
    s = fed(x, 20)
    assert not s.is_exact and len(s.buckets()) <= s.bins
    eps = s.rank_error
    assert 0 <= eps < 0.01
    qs = np.linspace(0, 1, 101)
    v = s.quantiles(qs)
    below, upto = true_rank(np.sort(x), v)
    assert (below - eps <= qs + 1e-12).all() and (qs <= upto + eps + 1e-12).all()
    # every quantile lies within one bucket (relative width 2**(shift - 52)) of numpy's
    np_q = np.quantile(x, qs, method="inverted_cdf")
    width = np.maximum(np.abs(np_q), np.abs(v)) * 2.0 ** (s.shift - 52)
    assert (np.abs(v - np_q) <= width + 1e-300).all()


def test_exact_sketch_matches_numpy_exactly() -> None:
    x = data("lognormal", 150)
    s = fed(x, 4)
    assert s.rank_error == 0.0
    qs = np.linspace(0, 1, 31)
    np.testing.assert_array_equal(s.quantiles(qs), np.quantile(x, qs, method="inverted_cdf"))
    points = np.concatenate([x[:20], [x.min() - 1, x.max() + 1, x.max(), x.min()]])
    np.testing.assert_array_equal(s.cdf(points), (x[None, :] <= points[:, None]).mean(axis=1))
    edges = np.linspace(x.min(), x.max(), 12)
    np.testing.assert_array_equal(s.histogram(edges), np.histogram(x, bins=edges)[0])
    inner = np.quantile(x, [0.1, 0.3, 0.5, 0.9])  # edges inside the data: outside values not counted
    np.testing.assert_array_equal(s.histogram(inner), np.histogram(x, bins=inner)[0])


@pytest.mark.parametrize("kind", ["normal", "lognormal"])
def test_cdf_and_histogram_within_rank_error(kind: str) -> None:
    x = data(kind, 300_000, seed=7)
    s = fed(x, 30)
    eps = s.rank_error
    assert eps > 0
    xs = np.sort(x)
    points = np.quantile(x, np.linspace(0.01, 0.99, 50))
    _, truth = true_rank(xs, points)
    assert np.abs(s.cdf(points) - truth).max() <= eps
    assert s.cdf([x.min() - 1, x.max(), x.max() + 1, np.nan])[:3].tolist() == [0.0, 1.0, 1.0]
    assert np.isnan(s.cdf([np.nan])).all()
    edges = np.linspace(x.min(), x.max(), 33)
    hist = s.histogram(edges)
    assert np.abs(hist - np.histogram(x, bins=edges)[0]).max() <= 2 * eps * x.size
    assert hist.sum() == pytest.approx(x.size, rel=1e-9)  # edges span [min, max]: every value counted


def test_bad_values_raise_schema_error() -> None:
    s = NumericStats()
    for bad in (["1.5"], [1.0, "x"], [True, 2.0], np.array(["a", "b"]), np.array([True]), [[1.0]], [10**400]):
        with pytest.raises(SchemaError):
            s.update(bad)
    assert s.is_empty()  # nothing half-applied
    with pytest.raises(SchemaError) as info:
        to_float_array([1.0, 2.0, "three"], feature="temp")
    assert info.value.feature == "temp" and "row 2" in str(info.value)
    with pytest.raises(SchemaError):
        to_float_array(np.zeros((2, 2)))
    with pytest.raises(SchemaError):
        to_float_array(pd.Series([True, False]))


def test_bad_config_and_queries() -> None:
    for bins in (0, 7, 2**25, 2.5, True):
        with pytest.raises(ConfigError) as info:
            NumericStats(bins)
        assert info.value.field == "bins"
    s = NumericStats()
    s.update([1.0, 2.0])
    with pytest.raises(StatisticsError):
        s.merge(NumericStats(bins=100))
    with pytest.raises(StatisticsError):
        s.merge(CategoricalStats())  # type: ignore[arg-type]
    for qs in ([-0.1], [1.5], [np.nan]):
        with pytest.raises(StatisticsError):
            s.quantiles(qs)
    for edges in ([1.0], [2.0, 1.0], [0.0, np.nan], [1.0, 1.0]):
        with pytest.raises(StatisticsError):
            s.histogram(edges)


def serialized(values: np.ndarray) -> bytes:
    return fed(values, max(1, values.size // 50_000)).to_bytes()


@pytest.mark.parametrize("kind", ["normal", "ints"])
def test_corrupt_bytes_raise_statistics_error(kind: str) -> None:
    raw = serialized(data(kind, 5_000))
    assert raw[0] == 2 and raw[1:2] == b"N"
    bad_inputs = [
        b"",
        b"\x01",
        bytes([FORMAT_VERSION + 1]) + raw[1:],  # unknown format version
        raw[:1] + b"C" + raw[2:],  # wrong type tag
        raw + b"\x00",  # trailing byte
        "not bytes",
    ]
    bad_inputs += [raw[:cut] for cut in range(0, len(raw), max(1, len(raw) // 97))]  # truncations
    rng = np.random.default_rng(3)
    for pos in rng.integers(0, len(raw), 200):  # single flipped bytes
        flipped = bytearray(raw)
        flipped[pos] ^= 1 + int(rng.integers(0, 255))
        bad_inputs.append(bytes(flipped))
    for bad in bad_inputs:
        with pytest.raises(StatisticsError):
            NumericStats.from_bytes(bad)  # type: ignore[arg-type]
    with pytest.raises(StatisticsError, match="version"):
        NumericStats.from_bytes(bytes([1]) + raw[1:])  # the KLL format of version 1


def test_serialized_size_is_bounded_by_bins() -> None:
    """Past ``bins`` distinct values the state stops growing with the rows."""
    x = data("lognormal", 1_000_000, seed=11)
    size_100k = len(serialized(x[:100_000]))
    size_1m = len(serialized(x))
    assert size_1m < 40 * 1024  # 2048 buckets: ids, counts, both ends and their counts
    assert abs(size_1m - size_100k) < 4 * 1024
    small = NumericStats(bins=64)
    small.update(x)
    assert len(small.to_bytes()) < 2 * 1024


@pytest.mark.parametrize("kind", ["normal", "lognormal", "ints", "spikes"])
@pytest.mark.parametrize("bins", [8, 64, 2048])
def test_same_values_same_bytes_whatever_the_batching_and_merging(kind: str, bins: int) -> None:
    rng = np.random.default_rng(bins)
    x = data(kind, 20_000) if kind != "spikes" else np.where(rng.random(20_000) < 0.3, 0.0,
                                                             np.minimum(rng.exponential(10, 20_000), 40.0))
    whole = NumericStats(bins)
    whole.update(x)
    for _ in range(4):
        shuffled = rng.permutation(x)
        parts = np.split(shuffled, np.sort(rng.integers(0, x.size, int(rng.integers(1, 30)))))
        sequential = NumericStats(bins)
        partials = []
        for part in parts:
            sequential.update(part)
            p = NumericStats(bins)
            p.update(part)
            partials.append(p)
        rng.shuffle(partials)
        while len(partials) > 1:  # a random merge tree
            i = int(rng.integers(0, len(partials) - 1))
            partials[i : i + 2] = [partials[i].merge(partials[i + 1])]
        assert sequential.to_bytes() == whole.to_bytes()
        assert partials[0].to_bytes() == whole.to_bytes()


def test_small_integers_stay_exact() -> None:
    """Hours, counts: few distinct values are kept exactly however many rows there are."""
    rng = np.random.default_rng(1)
    hours = rng.integers(0, 24, 500_000).astype(np.float64)
    s = NumericStats(bins=64)
    s.update(hours)
    assert s.is_exact and s.rank_error == 0.0
    np.testing.assert_array_equal(s.histogram(np.arange(25.0) - 0.5), np.bincount(hours.astype(int), minlength=24))
    counts = rng.poisson(300, 200_000).astype(np.float64)  # ~200 distinct values in 64 buckets
    c = NumericStats(bins=64)
    c.update(counts)
    assert not c.is_exact
    xs = np.sort(counts)
    points = np.unique(counts)
    truth = np.searchsorted(xs, points, "right") / xs.size
    assert np.abs(c.cdf(points) - truth).max() <= c.rank_error + 1e-12


def test_spike_at_zero_and_top_coded_maximum_are_exact_point_masses() -> None:
    rng = np.random.default_rng(3)
    delays = np.where(rng.random(100_000) < 0.4, 0.0, rng.lognormal(2, 1.5, 100_000))
    capped = np.minimum(rng.normal(60, 25, 100_000), 100.0)  # 5% top-coded at 100
    for x in (delays, capped):
        s = NumericStats(bins=256)
        s.update(x)
        assert not s.is_exact
        for v in (0.0, 100.0):
            if (x == v).any():
                below = float(np.diff(s.cdf([np.nextafter(v, -np.inf), v]))[0])
                assert below == pytest.approx(float((x == v).mean()), abs=1e-12)  # the spike, exactly


def test_far_from_zero_with_small_spread_keeps_resolution() -> None:
    """290 +- 10: relative buckets must still resolve the spread (a KS of 0.1 is 0.25 sd)."""
    rng = np.random.default_rng(4)
    x = rng.normal(290, 10, 200_000)
    s = NumericStats()
    s.update(x)
    assert s.rank_error < 0.01  # the hard bound: a tenth of the ks floor
    xs = np.sort(x)
    points = np.quantile(x, np.linspace(0.01, 0.99, 99))
    assert np.abs(s.cdf(points) - np.searchsorted(xs, points, "right") / xs.size).max() < 0.001
