"""NumericStats against numpy oracles, sketch queries within the KLL rank error, bad input, size."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from monitor.errors import ConfigError, SchemaError, StatisticsError
from monitor.stats import CategoricalStats, NumericStats, to_float_array

RNG_SEED = 20261126


def data(kind: str, n: int, seed: int = RNG_SEED) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.normal(1e4, 3.0, n)  # large mean, small spread: the cancellation-prone case
    if kind == "lognormal":
        return rng.lognormal(0.0, 2.0, n)  # heavy right tail
    if kind == "ints":
        return rng.integers(-50, 50, n).astype(np.float64)  # many ties
    raise ValueError(kind)


def fed(values: np.ndarray, batches: int, k: int = 200) -> NumericStats:
    s = NumericStats(k)
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
def test_quantiles_within_rank_error(kind: str) -> None:
    x = data(kind, 200_000)
    s = fed(x, 20)
    eps = s.rank_error
    assert 0 < eps < 0.02  # estimation mode, k=200
    qs = np.linspace(0, 1, 101)
    v = s.quantiles(qs)
    below, upto = true_rank(np.sort(x), v)
    assert (below - eps <= qs).all() and (qs <= upto + eps).all()
    # numpy's quantiles agree within the same rank error
    np_q = np.quantile(x, qs)
    lo, hi = true_rank(np.sort(x), np_q)
    # the values may differ (interpolation, ties); the ranks they stand for may not
    assert (np.maximum(below, lo) - np.minimum(upto, hi) <= 2 * eps).all()


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
    for k in (0, 7, 70000, 2.5, True):
        with pytest.raises(ConfigError) as info:
            NumericStats(k)
        assert info.value.field == "k"
    s = NumericStats()
    s.update([1.0, 2.0])
    with pytest.raises(StatisticsError):
        s.merge(NumericStats(k=100))
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


def test_corrupt_bytes_raise_statistics_error() -> None:
    raw = serialized(data("normal", 5_000))
    assert raw[0] == 1 and raw[1:2] == b"N"
    bad_inputs = [
        b"",
        b"\x01",
        bytes([2]) + raw[1:],  # unknown format version
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
        NumericStats.from_bytes(bytes([9]) + raw[1:])


def test_serialized_size_stays_bounded() -> None:
    """A numeric feature's state is a few KB and grows only logarithmically with the rows."""
    x = data("lognormal", 1_000_000, seed=11)
    size_100k = len(serialized(x[:100_000]))
    size_1m = len(serialized(x))
    assert size_1m < 16 * 1024  # 1M rows -> about 5 KB with k=200 (brief's ceiling: 64 KB)
    assert size_1m - size_100k < 2 * 1024
