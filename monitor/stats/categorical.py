"""Mergeable statistics of one categorical feature: value counts, then a Misra-Gries summary.

Values are normalised to strings (``3`` and ``3.0`` -> ``"3"``, ``True`` -> ``"true"``,
``3.5`` -> ``"3.5"``); ``None``, NaN and ``""`` are missing. Counts are exact while at most
``capacity`` distinct values have been seen. Beyond that the counters become a mergeable
Misra-Gries summary (Agarwal, Cormode, Huang, Phillips, Wei, Yi, "Mergeable summaries",
PODS 2012): add the counters, subtract the ``(capacity + 1)``-th largest and drop the
non-positive ones. Every kept count then undercounts its value by at most ``error_bound``
(the sum of everything subtracted so far) and never overcounts; a value missing from the
summary occurred at most ``error_bound`` times.

The number of distinct values is exact while the counts are. At the first reduction an
Apache DataSketches HLL sketch (HLL_8, started in full HLL mode so its bytes do not depend on
insertion order) is seeded with every value seen so far and from then on fed with each batch's
distinct values (not its rows); it estimates the distinct count afterwards.

Each batch is tallied by ``pandas.value_counts`` (hashing in C); only the batch's distinct
values are normalised in Python.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Self

import numpy as np
import pandas as pd
from datasketches import hll_sketch, hll_union, tgt_hll_type

from monitor.errors import ConfigError, SchemaError, StatisticsError
from monitor.stats.codec import Reader, Tag, blob, header, seal, seal

__all__ = ["CategoricalStats", "Tally", "tally", "normalize_category", "DEFAULT_CAPACITY", "HLL_LG_K"]

DEFAULT_CAPACITY = 4096
HLL_LG_K = 12  # 4096 registers: about 1.6% relative standard error
_HLL_TYPE = tgt_hll_type.HLL_8
_FIELDS = struct.Struct("<IQQQI")  # capacity, count, missing, error_bound, number of keys
_MAX_FLOAT_AS_INT = 2.0**53
_SMALL_BATCH = 1024  # below this, Counter beats building a pandas Series


def normalize_category(value: Any, *, feature: str | None = None) -> str | None:
    """The canonical string of one categorical value, or ``None`` when it is missing."""
    if isinstance(value, str):
        return str(value) if value else None
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        if math.isnan(f):
            return None
        return str(int(f)) if f.is_integer() and abs(f) < _MAX_FLOAT_AS_INT else repr(f)
    if value is None or value is pd.NA:
        return None
    raise SchemaError(f"unsupported categorical value of type {type(value).__name__}: {value!r:.40}", feature=feature)


@dataclass(frozen=True, slots=True)
class Tally:
    """One batch counted: normalised value -> occurrences, plus the missing ones."""

    counts: Mapping[str, int]
    missing: int

    @property
    def count(self) -> int:
        return sum(self.counts.values())


def _may_confuse_bools(keys: pd.Index) -> bool:
    """pandas hashes ``True == 1 == 1.0`` into one key: is a bool/number mix possible here?"""
    for k in keys:
        if isinstance(k, (bool, np.bool_)) or (isinstance(k, (int, float, np.number)) and k in (0, 1)):
            return True
    return False


def tally(values: Any, *, feature: str | None = None) -> Tally:
    """Count one batch (a sequence, numpy array or pandas Series) by normalised value.

    Large batches are counted by ``pandas.value_counts``, small object batches (the collectors'
    per-record path) by ``collections.Counter``; either way only distinct values are normalised.
    Raises :class:`SchemaError` naming ``feature`` for values that are not str/int/float/bool/None.
    """
    if isinstance(values, pd.Series):
        data: Any = values
        is_object = values.dtype == object
    elif isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise SchemaError(f"expected a 1-D column, got shape {values.shape}", feature=feature)
        if values.dtype.kind not in "OUbiuf":
            raise SchemaError(f"unsupported categorical dtype {values.dtype}", feature=feature)
        data, is_object = values, values.dtype == object
    else:
        data, is_object = (values if isinstance(values, (list, tuple)) else list(values)), True
    n = len(data)
    try:
        if is_object and n <= _SMALL_BATCH:
            raw: Mapping[Any, int] = Counter(data.tolist() if isinstance(data, (pd.Series, np.ndarray)) else data)
            keys, counts_ = list(raw.keys()), list(raw.values())
        else:
            series = data if isinstance(data, pd.Series) else pd.Series(_object_array(data) if isinstance(data, (list, tuple)) else data, copy=False)
            vc = series.value_counts(sort=False, dropna=True)
            keys, counts_ = vc.index, vc.to_numpy().tolist()
    except TypeError as exc:  # unhashable values: lists, dicts
        raise SchemaError(f"unsupported categorical value: {exc}", feature=feature) from None
    if is_object and _may_confuse_bools(keys):
        arr = data.to_numpy() if isinstance(data, pd.Series) else _object_array(data) if isinstance(data, (list, tuple)) else data
        is_bool = np.fromiter((isinstance(v, (bool, np.bool_)) for v in arr), dtype=bool, count=n)
        if is_bool.any() and not is_bool.all():
            a, b = tally(arr[is_bool], feature=feature), tally(arr[~is_bool], feature=feature)
            merged = dict(a.counts)
            for key, c in b.counts.items():
                merged[key] = merged.get(key, 0) + c
            return Tally(counts=merged, missing=a.missing + b.missing)
    counts: dict[str, int] = {}
    for key, c in zip(keys, counts_):
        if c <= 0:  # categorical dtypes list unused categories
            continue
        name = normalize_category(key, feature=feature)
        if name is not None:
            counts[name] = counts.get(name, 0) + c
    return Tally(counts=counts, missing=n - sum(counts.values()))


def _object_array(values: Any) -> np.ndarray:
    items = values if isinstance(values, (list, tuple)) else list(values)
    arr = np.empty(len(items), dtype=object)
    try:
        arr[:] = items
    except ValueError:  # nested sequences numpy tried to broadcast
        for i, item in enumerate(items):
            arr[i] = item
    return arr


class CategoricalStats:
    """Counts of one categorical feature: exact up to ``capacity`` distinct values, then Misra-Gries."""

    __slots__ = ("_capacity", "_count", "_missing", "_error", "_counts", "_hll")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or not 1 <= capacity < 2**31:
            raise ConfigError(f"capacity must be a positive int, got {capacity!r}", field="capacity")
        self._capacity = capacity
        self._count = 0
        self._missing = 0
        self._error = 0
        self._counts: dict[str, int] = {}
        self._hll: hll_sketch | None = None  # created at the first Misra-Gries reduction

    # -- exact parts ---------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def count(self) -> int:
        """Non-missing values."""
        return self._count

    @property
    def missing(self) -> int:
        return self._missing

    @property
    def total(self) -> int:
        return self._count + self._missing

    @property
    def error_bound(self) -> int:
        """Largest possible undercount of any value (0 while the counts are exact)."""
        return self._error

    @property
    def is_exact(self) -> bool:
        return self._error == 0

    @property
    def distinct_estimate(self) -> float:
        """Distinct non-missing values: exact while ``is_exact``, else the HLL estimate.

        The estimate depends on the sketch's registers only (DataSketches' composite
        estimator): a sketch updated directly also keeps a HIP accumulator, which a merged sketch
        with the same registers lacks (five values, two in one bucket: 5.0 vs 4.0), and merge
        must equal update. A union of the sketch with itself leaves the registers as they are
        and drops the accumulator.
        """
        if self._hll is None:
            return float(len(self._counts))
        union = hll_union(HLL_LG_K)
        union.update(self._hll)
        union.update(self._hll)
        return max(float(union.get_result(_HLL_TYPE).get_estimate()), float(len(self._counts)))

    def counts(self) -> dict[str, int]:
        """Value -> count (a lower bound, within ``error_bound``, once not exact)."""
        return dict(self._counts)

    def top(self, n: int) -> list[tuple[str, int]]:
        """The ``n`` most frequent values, ties broken by value."""
        return sorted(self._counts.items(), key=lambda kv: (-kv[1], kv[0]))[: max(n, 0)]

    def is_empty(self) -> bool:
        return self.total == 0

    # -- updating ------------------------------------------------------------------------------
    def update(self, values: Any) -> None:
        """Fold in one batch (sequence, numpy array or pandas Series)."""
        self.update_tally(tally(values))

    def update_tally(self, batch: Tally) -> None:
        """Fold in a batch already counted by :func:`tally`."""
        self._missing += batch.missing
        if not batch.counts:
            return
        counts = self._counts
        added = 0
        for key, c in batch.counts.items():
            counts[key] = counts.get(key, 0) + c
            added += c
        self._count += added
        if self._hll is not None:
            _hll_add_all(self._hll, batch.counts)
        elif len(counts) > self._capacity:  # leaving exact mode: every value seen is in counts
            self._hll = _new_hll()
            _hll_add_all(self._hll, counts)
        self._error += _reduce(counts, self._capacity)

    def _add_missing(self, n: int) -> None:
        self._missing += n

    # -- merging -------------------------------------------------------------------------------
    def zero(self) -> CategoricalStats:
        return CategoricalStats(self._capacity)

    def copy(self) -> CategoricalStats:
        out = CategoricalStats.__new__(CategoricalStats)
        out._capacity, out._count, out._missing, out._error = self._capacity, self._count, self._missing, self._error
        out._counts = dict(self._counts)
        out._hll = None if self._hll is None else hll_sketch.deserialize(self._hll.serialize_compact())
        return out

    def merge(self, other: CategoricalStats) -> CategoricalStats:
        """A new object holding both inputs; neither input changes."""
        if not isinstance(other, CategoricalStats):
            raise StatisticsError(f"cannot merge CategoricalStats with {type(other).__name__}")
        if other._capacity != self._capacity:
            raise StatisticsError(f"cannot merge categorical statistics of capacity {self._capacity} and {other._capacity}")
        if other._count == 0 or self._count == 0:
            out = (self if other._count == 0 else other).copy()
            out._missing = self._missing + other._missing
            return out
        out = self.copy()
        for key, c in other._counts.items():
            out._counts[key] = out._counts.get(key, 0) + c
        out._count += other._count
        out._missing += other._missing
        if self._hll is not None or other._hll is not None or len(out._counts) > self._capacity:
            # an exact side contributes its keys (all it has seen), an inexact side its sketch
            union = hll_union(HLL_LG_K)
            for side in (self, other):
                if side._hll is not None:
                    union.update(side._hll)
                else:
                    exact = _new_hll()
                    _hll_add_all(exact, side._counts)
                    union.update(exact)
            out._hll = union.get_result(_HLL_TYPE)
        out._error += other._error + _reduce(out._counts, self._capacity)
        return out

    # -- bytes ---------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        keys = sorted(self._counts)
        encoded = [k.encode("utf-8", "surrogatepass") for k in keys]
        lengths = np.fromiter(map(len, encoded), dtype="<u4", count=len(keys))
        counts = np.fromiter((self._counts[k] for k in keys), dtype="<u8", count=len(keys))
        return seal(b"".join((
            header(Tag.CATEGORICAL),
            _FIELDS.pack(self._capacity, self._count, self._missing, self._error, len(keys)),
            lengths.tobytes(),
            b"".join(encoded),
            counts.tobytes(),
            blob(b"" if self._hll is None else self._hll.serialize_compact()),
        )))  # fmt: skip

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        reader = Reader(data, Tag.CATEGORICAL)
        capacity, count, missing, error, nkeys = reader.unpack(_FIELDS)
        if not 1 <= capacity < 2**31 or nkeys > capacity:
            raise StatisticsError(f"inconsistent categorical statistic: {nkeys} keys for capacity {capacity}")
        lengths = np.frombuffer(reader.take(4 * nkeys), dtype="<u4")
        text = reader.take(int(lengths.sum(dtype=np.uint64)))
        counts = np.frombuffer(reader.take(8 * nkeys), dtype="<u8").tolist()
        raw_hll = reader.blob()
        reader.finish()
        keys, pos = [], 0
        try:
            for n in lengths.tolist():
                keys.append(text[pos : pos + n].decode("utf-8", "surrogatepass"))
                pos += n
        except UnicodeDecodeError:
            raise StatisticsError("corrupt categorical statistic: a value is not UTF-8") from None
        if any(not k for k in keys) or any(a >= b for a, b in zip(keys, keys[1:])):
            raise StatisticsError("corrupt categorical statistic: values must be non-empty, unique and sorted")
        kept = sum(counts)
        if any(c <= 0 for c in counts) or kept > count or (error == 0 and kept != count):
            raise StatisticsError(f"inconsistent categorical statistic: counts sum to {kept} for count {count}")
        hll = None
        if error == 0:
            if raw_hll:
                raise StatisticsError("corrupt categorical statistic: exact counts carry no HLL sketch")
        else:
            try:
                hll = hll_sketch.deserialize(raw_hll)
            except Exception as exc:  # the binding raises RuntimeError/ValueError on bad bytes
                raise StatisticsError(f"corrupt HLL sketch: {exc}") from None
            if hll.lg_config_k != HLL_LG_K or hll.is_empty():
                raise StatisticsError(f"unexpected HLL sketch (lg_k {hll.lg_config_k}, empty={hll.is_empty()})")
        out = cls.__new__(cls)
        out._capacity, out._count, out._missing, out._error = capacity, count, missing, error
        out._counts = dict(zip(keys, counts))
        out._hll = hll
        return out

    # -- comparison ----------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        """Same exact parts and counters, and (once inexact) the same distinct estimate."""
        if not isinstance(other, CategoricalStats):
            return NotImplemented
        return (
            (self._capacity, self._count, self._missing, self._error)
            == (other._capacity, other._count, other._missing, other._error)
            and self._counts == other._counts
            and self.distinct_estimate == other.distinct_estimate
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"CategoricalStats(capacity={self._capacity}, count={self._count}, missing={self._missing}, "
            f"distinct~{self.distinct_estimate:.0f}, error_bound={self._error}, top={self.top(3)})"
        )


def _new_hll() -> hll_sketch:
    return hll_sketch(HLL_LG_K, _HLL_TYPE, True)


def _hll_add_all(hll: hll_sketch, keys: Iterable[str]) -> None:
    update = hll.update
    for key in keys:
        try:
            update(key)
        except UnicodeEncodeError:  # lone surrogates cannot cross into C++ as UTF-8
            update("\0" + key.encode("utf-8", "surrogatepass").hex())


def _reduce(counts: dict[str, int], capacity: int) -> int:
    """Misra-Gries reduction in place: subtract the (capacity+1)-th largest count from every
    counter and drop those left <= 0. Returns the amount subtracted (0 when within capacity)."""
    if len(counts) <= capacity:
        return 0
    values = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
    kth = int(np.partition(values, len(values) - capacity - 1)[len(values) - capacity - 1])
    kept = {k: c - kth for k, c in counts.items() if c > kth}
    counts.clear()
    counts.update(kept)
    return kth
