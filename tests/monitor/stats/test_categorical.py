"""CategoricalStats against collections.Counter, the Misra-Gries bound, HLL, bad input, size."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from monitor.errors import ConfigError, SchemaError, StatisticsError
from monitor.stats import CategoricalStats, NumericStats, normalize_category, tally


def zipf_values(n: int, cardinality: int, seed: int, a: float = 1.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, cardinality + 1) ** a
    names = np.array([f"v{i}" for i in range(cardinality)], dtype=object)
    return names[rng.choice(cardinality, size=n, p=p / p.sum())]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("spring", "spring"), ("", None), (" ", " "), (None, None), (math.nan, None), (pd.NA, None),
        (3, "3"), (np.int64(-3), "-3"), (3.0, "3"), (np.float32(2.0), "2"), (3.5, "3.5"), (-0.0, "0"),
        (True, "true"), (np.bool_(False), "false"), (1e20, "1e+20"), (math.inf, "inf"), (np.str_("x"), "x"),
    ],
)  # fmt: skip
def test_normalization(raw: object, expected: str | None) -> None:
    assert normalize_category(raw) == expected


def test_counts_match_counter() -> None:
    rng = np.random.default_rng(5)
    pool = np.array(["a", "b", "", None, 3, 3.0, "3", True, False, 1, 0, 2.5, np.nan, "été"], dtype=object)
    batches = [pool[rng.integers(0, pool.size, int(rng.integers(0, 400)))] for _ in range(25)]
    s = CategoricalStats()
    for b in batches:
        s.update(b)
    everything = np.concatenate(batches)
    truth = Counter(v for v in map(normalize_category, everything) if v is not None)
    assert s.counts() == dict(truth)
    assert s.count == sum(truth.values())
    assert s.missing == everything.size - s.count
    assert s.is_exact and s.error_bound == 0 and s.distinct_estimate == len(truth)
    assert s.top(3) == sorted(truth.items(), key=lambda kv: (-kv[1], kv[0]))[:3]


def test_bools_and_numbers_are_not_confused() -> None:
    """pandas hashes True == 1 == 1.0 into one key; the tally must not."""
    t = tally(np.array([True, 1, 1.0, False, 0, True, "1"], dtype=object))
    assert dict(t.counts) == {"true": 2, "1": 3, "false": 1, "0": 1}
    t = tally([1, 0, 1])  # numbers only: no split needed
    assert dict(t.counts) == {"1": 2, "0": 1}
    t = tally([True, 1, "true", None])  # the bool part and the string part add up
    assert (dict(t.counts), t.missing) == ({"true": 2, "1": 1}, 1)


@pytest.mark.parametrize("n", [10, 1024, 1025, 50_000])
def test_small_and_large_batches_count_alike(n: int) -> None:
    """Small object batches go through Counter, large ones through pandas: same answer."""
    rng = np.random.default_rng(n)
    pool = np.array(["a", "", None, np.nan, 3, 3.0, True, False, 1, 0, 2.5, "true"], dtype=object)
    values = pool[rng.integers(0, pool.size, n)]
    truth = Counter(v for v in map(normalize_category, values) if v is not None)
    for column in (values, values.tolist(), pd.Series(values)):
        t = tally(column)
        assert (dict(t.counts), t.missing) == (dict(truth), n - sum(truth.values()))


@pytest.mark.parametrize(
    "column",
    [
        pd.Series(["x", "y", None, "x"], dtype="category"),
        pd.Series(["x", "y", None, "x"], dtype="string"),
        np.array(["x", "y", "", "x"]),
        ["x", "y", None, "x"],
        ("x", "y", math.nan, "x"),
    ],
    ids=["categorical", "string", "unicode-array", "list", "tuple"],
)
def test_column_types(column: object) -> None:
    s = CategoricalStats()
    s.update(column)
    assert (s.counts(), s.missing) == ({"x": 2, "y": 1}, 1)


def test_numeric_columns_as_categories() -> None:
    s = CategoricalStats()
    s.update(np.array([1, 2, 2], dtype=np.int16))
    s.update(np.array([2.0, np.nan, 1.5]))
    s.update(np.array([True, False]))
    assert s.counts() == {"1": 1, "2": 3, "1.5": 1, "true": 1, "false": 1} and s.missing == 1


@pytest.mark.parametrize("batches", [1, 10, 200])
def test_misra_gries_bound_beyond_capacity(batches: int) -> None:
    values = zipf_values(60_000, 3_000, seed=batches)
    capacity = 64
    s = CategoricalStats(capacity=capacity)
    for part in np.array_split(values, batches):
        s.update(part)
    truth = Counter(values.tolist())
    est = s.counts()
    assert not s.is_exact and 0 < s.error_bound
    assert len(est) <= capacity
    assert s.count == values.size and s.missing == 0
    # Agarwal et al.: never overcounts, undercounts by at most the bound, and the bound is small
    for value, true_count in truth.items():
        assert true_count - s.error_bound <= est.get(value, 0) <= true_count, value
    assert s.error_bound <= (s.count - sum(est.values())) / (capacity + 1)
    heavy = [v for v, c in truth.items() if c > s.error_bound]
    assert heavy and all(v in est for v in heavy)
    assert [v for v, _ in s.top(3)] == [v for v, _ in truth.most_common(3)]


def test_merged_summaries_keep_the_bound() -> None:
    values = zipf_values(40_000, 2_000, seed=9, a=1.3)
    capacity = 50
    parts = []
    for i, chunk in enumerate(np.array_split(values, 16)):
        p = CategoricalStats(capacity=capacity)
        p.update(chunk)
        parts.append(p)
    while len(parts) > 1:  # tree merge
        parts = [parts[i].merge(parts[i + 1]) if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)]
    merged = parts[0]
    truth = Counter(values.tolist())
    est = merged.counts()
    for value, true_count in truth.items():
        assert true_count - merged.error_bound <= est.get(value, 0) <= true_count
    assert merged.error_bound <= (merged.count - sum(est.values())) / (capacity + 1)


def test_distinct_estimate_beyond_capacity() -> None:
    rng = np.random.default_rng(2)
    values = np.array([f"id{i}" for i in rng.integers(0, 10**9, 50_000)], dtype=object)
    s = CategoricalStats(capacity=256)
    for part in np.array_split(values, 25):
        s.update(part)
    true_distinct = len(set(values.tolist()))
    assert not s.is_exact
    assert s.distinct_estimate == pytest.approx(true_distinct, rel=0.05)  # HLL lg_k=12: RSE ~1.6%
    a, b = CategoricalStats(capacity=256), CategoricalStats(capacity=256)
    a.update(values[:30_000])
    b.update(values[20_000:])
    assert a.merge(b).distinct_estimate == pytest.approx(true_distinct, rel=0.05)


def test_bad_values_raise_schema_error() -> None:
    s = CategoricalStats()
    for bad in ([["nested"]], [{"a": 1}], [b"bytes"], np.array([np.datetime64("2012-01-01")]), np.zeros((2, 2))):
        with pytest.raises(SchemaError):
            s.update(bad)
    assert s.is_empty()
    with pytest.raises(SchemaError) as info:
        tally(["ok", {"a": 1}], feature="season")
    assert info.value.feature == "season"


def test_bad_config_and_merges() -> None:
    for capacity in (0, -1, 1.5, True):
        with pytest.raises(ConfigError) as info:
            CategoricalStats(capacity)  # type: ignore[arg-type]
        assert info.value.field == "capacity"
    a = CategoricalStats(capacity=8)
    a.update(["x"])
    with pytest.raises(StatisticsError):
        a.merge(CategoricalStats(capacity=9))
    with pytest.raises(StatisticsError):
        a.merge(NumericStats())  # type: ignore[arg-type]


def test_corrupt_bytes_raise_statistics_error() -> None:
    s = CategoricalStats(capacity=16)
    s.update(zipf_values(2_000, 40, seed=1))
    raw = s.to_bytes()
    assert raw[:2] == b"\x01C" and not s.is_exact
    bad_inputs = [bytes([7]) + raw[1:], raw[:1] + b"N" + raw[2:], raw + b"\x00", raw[:-1]]
    bad_inputs += [raw[:cut] for cut in range(0, len(raw), max(1, len(raw) // 97))]
    rng = np.random.default_rng(4)
    for pos in rng.integers(0, len(raw), 200):
        flipped = bytearray(raw)
        flipped[pos] ^= 1 + int(rng.integers(0, 255))
        bad_inputs.append(bytes(flipped))
    for bad in bad_inputs:
        with pytest.raises(StatisticsError):
            CategoricalStats.from_bytes(bad)
    with pytest.raises(StatisticsError):
        NumericStats.from_bytes(raw)  # a categorical is not a numeric


def test_serialized_size_is_bounded_by_capacity() -> None:
    """After 1M rows of 200k distinct values the state is capped by capacity (+ a 4 KB HLL)."""
    rng = np.random.default_rng(8)
    names = np.array([f"user-{i:06d}" for i in range(200_000)], dtype=object)
    s = CategoricalStats(capacity=1024)
    for _ in range(4):
        s.update(names[rng.integers(0, names.size, 250_000)])
    size = len(s.to_bytes())
    per_key = 4 + 8 + len("user-000000")
    assert len(s.counts()) <= 1024
    assert size <= 1024 * per_key + 4096 + 200


def test_distinct_estimate_depends_on_the_sketch_registers_not_on_how_they_were_filled():
    # found by the contract test on a fresh clone: two of these keys share an HLL bucket, and a
    # directly updated sketch's HIP estimate (5.0) differed from the merged sketch's (4.0)
    parts = [["0"], ["a", "b", "xé", "d"]]
    whole = CategoricalStats(capacity=4)
    for part in parts:
        whole.update(part)
    left, right = CategoricalStats(capacity=4), CategoricalStats(capacity=4)
    left.update(parts[0])
    right.update(parts[1])
    merged = left.merge(right)
    assert merged.distinct_estimate == whole.distinct_estimate
    assert CategoricalStats.from_bytes(whole.to_bytes()).distinct_estimate == whole.distinct_estimate
    assert merged == whole
