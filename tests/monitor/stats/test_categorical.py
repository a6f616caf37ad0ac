"""CategoricalStats against collections.Counter: exact counts, hashed buckets beyond capacity (exact
per bucket, deterministic under any batching and merging), HyperLogLog, bad input, size."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from monitor.errors import ConfigError, SchemaError, StatisticsError
from monitor.stats import FORMAT_VERSION, CategoricalStats, NumericStats, category_key, normalize_category, tally


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
def test_beyond_capacity_every_bucket_count_is_exact(batches: int) -> None:
    values = zipf_values(60_000, 3_000, seed=batches)
    capacity = 64
    s = CategoricalStats(capacity=capacity)
    for part in np.array_split(values, batches):
        s.update(part)
    truth = Counter(values.tolist())
    b = s.buckets()
    assert not s.is_exact and b is not None and len(b) <= capacity
    assert s.count == values.size and s.missing == 0 and b.total == values.size
    # oracle: the true counts grouped by the top bits of each value's hash
    by_bucket: Counter[int] = Counter()
    for value, n in truth.items():
        by_bucket[category_key(value) >> b.shift] += n
    assert dict(zip(b.ids.tolist(), b.cnt.tolist())) == dict(by_bucket)
    listed = s.counts()
    assert listed and all(truth[v] == n for v, n in listed.items())  # listed counts are exact
    assert all(n <= s.error_bound for v, n in truth.items() if v not in listed)
    assert s.error_bound > 0
    assert s.top(3) == sorted(listed.items(), key=lambda kv: (-kv[1], kv[0]))[:3]


@pytest.mark.parametrize("capacity", [2, 16, 256, 10_000])
def test_same_values_same_bytes_whatever_the_batching_and_merging(capacity: int) -> None:
    rng = np.random.default_rng(capacity)
    values = zipf_values(20_000, 2_000, seed=capacity, a=1.2)
    whole = CategoricalStats(capacity=capacity)
    whole.update(values)
    for _ in range(4):
        shuffled = rng.permutation(values)
        parts = np.split(shuffled, np.sort(rng.integers(0, values.size, int(rng.integers(1, 25)))))
        sequential = CategoricalStats(capacity=capacity)
        partials = []
        for part in parts:
            sequential.update(part)
            p = CategoricalStats(capacity=capacity)
            p.update(part)
            partials.append(p)
        rng.shuffle(partials)
        while len(partials) > 1:  # a random merge tree
            i = int(rng.integers(0, len(partials) - 1))
            partials[i : i + 2] = [partials[i].merge(partials[i + 1])]
        assert sequential.to_bytes() == whole.to_bytes()
        assert partials[0].to_bytes() == whole.to_bytes()
    assert CategoricalStats.from_bytes(whole.to_bytes()) == whole


def test_a_bucket_of_one_or_two_values_keeps_their_names_and_counts() -> None:
    s = CategoricalStats(capacity=2)
    s.update(["a"] * 5 + ["b"] * 3 + ["c"])  # three values in at most two buckets
    b = s.buckets()
    assert b is not None and len(b) <= 2
    listed = s.counts()
    assert set(listed) <= {"a", "b", "c"} and all({"a": 5, "b": 3, "c": 1}[v] == n for v, n in listed.items())
    assert len(listed) >= 2  # a bucket's two ends are known by name
    assert s.error_bound == 9 - sum(listed.values())


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
    for capacity in (0, 1, -1, 1.5, True):
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
    assert raw[:2] == bytes([FORMAT_VERSION]) + b"C" and not s.is_exact
    bad_inputs = [bytes([FORMAT_VERSION + 1]) + raw[1:], raw[:1] + b"N" + raw[2:], raw + b"\x00", raw[:-1]]
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
    """After 1M rows of 200k distinct values the state is capped by capacity (+ 4 KB of HLL)."""
    rng = np.random.default_rng(8)
    names = np.array([f"user-{i:06d}" for i in range(200_000)], dtype=object)
    s = CategoricalStats(capacity=1024)
    for _ in range(4):
        s.update(names[rng.integers(0, names.size, 250_000)])
    size = len(s.to_bytes())
    per_bucket = 2 * (1 + len("user-000000")) + 3 * 3  # two names with lengths, three counts
    assert len(s.buckets()) <= 1024 and len(s.counts()) <= 2048
    assert size <= 1024 * per_bucket + 4096 + 400


def test_distinct_estimate_depends_on_the_registers_not_on_how_they_were_filled():
    # found by the contract test on a fresh clone (with DataSketches' HLL): two of these keys share
    # a register, and a directly updated sketch's HIP estimate (5.0) differed from a merged one's (4.0)
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
