"""Mergeable statistics of one categorical feature: exact value counts, then hashed buckets.

Values are normalised to strings (``3`` and ``3.0`` -> ``"3"``, ``True`` -> ``"true"``,
``3.5`` -> ``"3.5"``); ``None``, NaN and ``""`` are missing.

Deterministic at every size. Counts are exact while at most ``capacity`` distinct values have
been seen. Beyond that, values are grouped into buckets by a fixed 64-bit hash of their UTF-8
name (BLAKE2b): the finest prefix of the hash at which the distinct values fit in ``capacity``
buckets, on the same grid machinery as the numeric buckets (:mod:`monitor.stats.grid`). Every
bucket keeps its exact count, and the names and exact counts of its two end values (by hash),
so a bucket of one or two values is still exact. The state depends only on the multiset of
values: the same rows give the same bytes whatever the batching and however partial
statistics are merged. (A Misra-Gries summary, used before, is not: its reductions depend on
the order values arrive in.)

What is exact beyond capacity: the total and missing counts; every bucket's count; the counts of
the values :meth:`CategoricalStats.counts` lists (those alone in their bucket or at its ends). A
value it does not list occurred at most :attr:`~CategoricalStats.error_bound` times. What is not:
how a bucket of three or more values splits among them, so comparisons compare such a bucket as
one category (changes that cancel inside one bucket are not seen), and the names of the values
inside it. Two distinct names with the same 64-bit hash (about ``n**2 / 2**65`` for ``n``
names) would count as one.

The number of distinct values is exact while the counts are; beyond capacity it is estimated by
HyperLogLog registers (:mod:`monitor.stats.hll`) over the second half of the same hash.

Each batch is tallied in C (``collections.Counter`` for Python objects, which measured faster than
``pandas.value_counts`` at every size and cardinality tried; ``value_counts`` for typed arrays);
only the batch's distinct values are normalised (and, beyond capacity, hashed) in Python.
"""

from __future__ import annotations

import functools
import hashlib
import math
import struct
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Self

import numpy as np
import pandas as pd

from monitor.errors import ConfigError, SchemaError, StatisticsError
from monitor.stats import grid, hll
from monitor.stats.codec import Reader, Tag, blob, header, pack_uints, seal

__all__ = ["CategoricalStats", "Tally", "tally", "tally_counted", "normalize_category", "category_key", "DEFAULT_CAPACITY",
           "BASELINE_CAPACITY", "HLL_LG_K"]

#: Exact distinct values of a window's categorical feature.
DEFAULT_CAPACITY = 4096
#: Exact distinct values of a training baseline's categorical feature.
BASELINE_CAPACITY = 65536
HLL_LG_K = hll.LG_K  # 4096 registers: about 1.6% relative standard error
_FIELDS = struct.Struct("<IQQB")  # capacity, count, missing, mode (0 exact, 1 hashed)
_EXACT_HEAD = struct.Struct("<I")  # number of values
_HASHED_HEAD = struct.Struct("<BI")  # shift, number of buckets
_OFFSET = 1 << 63
_MAX_FLOAT_AS_INT = 2.0**53


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

    Python objects are counted by ``collections.Counter``, typed arrays by ``pandas.value_counts``;
    either way only distinct values are normalised.
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
    try:
        if is_object:
            return tally_counted(Counter(data.tolist() if isinstance(data, (pd.Series, np.ndarray)) else data), data,
                                 feature=feature)
        vc = (data if isinstance(data, pd.Series) else pd.Series(data, copy=False)).value_counts(sort=False, dropna=True)
    except TypeError as exc:  # unhashable values: lists, dicts
        raise SchemaError(f"unsupported categorical value: {exc}", feature=feature) from None
    return _normalised(vc.index, vc.to_numpy().tolist(), len(data), feature=feature)


def tally_counted(raw: Mapping[Any, int], values: Any, *, feature: str | None = None) -> Tally:
    """:func:`tally` of ``values`` (a list, tuple, object array or Series) that the caller has already
    counted into ``raw`` (``collections.Counter(values)``): the collectors count a column once, check
    the types of its distinct values, and hand the count on."""
    keys = list(raw.keys())
    if _may_confuse_bools(keys):  # Counter, like pandas, hashes True == 1 == 1.0 into one key
        arr = values.to_numpy() if isinstance(values, pd.Series) else \
            _object_array(values) if isinstance(values, (list, tuple)) else values
        is_bool = np.fromiter((isinstance(v, (bool, np.bool_)) for v in arr), dtype=bool, count=len(arr))
        if is_bool.any() and not is_bool.all():
            a, b = tally(arr[is_bool], feature=feature), tally(arr[~is_bool], feature=feature)
            merged = dict(a.counts)
            for key, c in b.counts.items():
                merged[key] = merged.get(key, 0) + c
            return Tally(counts=merged, missing=a.missing + b.missing)
    return _normalised(keys, list(raw.values()), len(values), feature=feature)


def _normalised(keys: Any, counts_: list[int], n: int, *, feature: str | None) -> Tally:
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


@functools.lru_cache(maxsize=1 << 16)
def _hashes(name: str) -> tuple[int, int]:
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    return int.from_bytes(digest[:8], "big") - _OFFSET, int.from_bytes(digest[8:], "big")


def category_key(name: str) -> int:
    """The signed 64-bit bucket key of a normalised value (its hash; stable across processes)."""
    return _hashes(name)[0]


def _hashed_items(counts: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Keys, counts, names and HLL hashes of ``counts``, sorted by (key, name)."""
    rows = sorted((*_hashes(name), name, c) for name, c in counts.items())
    keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    h2 = np.fromiter((r[1] for r in rows), dtype=np.uint64, count=len(rows))
    names = np.empty(len(rows), dtype=object)
    names[:] = [r[2] for r in rows]
    cnt = np.fromiter((r[3] for r in rows), dtype=np.int64, count=len(rows))
    return keys, cnt, names, h2


def _merge_collisions(keys: np.ndarray, cnt: np.ndarray, names: np.ndarray) -> tuple[np.ndarray, ...]:
    """Distinct keys: equal keys (a 64-bit hash collision) count as one value, named by the first."""
    if keys.shape[0] < 2 or bool((keys[1:] != keys[:-1]).all()):
        return keys, cnt, names
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    return keys[starts], np.add.reduceat(cnt, starts), names[starts]


def _buckets_of(counts: Mapping[str, int], shift: int, capacity: int) -> tuple[grid.Buckets, np.ndarray]:
    keys, cnt, names, h2 = _hashed_items(counts)
    keys, cnt, names = _merge_collisions(keys, cnt, names)
    b = grid.from_sorted_keys(keys, shift, capacity, counts=cnt, tags=names)
    return b, h2


class CategoricalStats:
    """Counts of one categorical feature: exact up to ``capacity`` distinct values, then hashed
    buckets (see the module docstring)."""

    __slots__ = ("_capacity", "_count", "_missing", "_counts", "_buckets", "_registers")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or not 2 <= capacity < 2**31:
            raise ConfigError(f"capacity must be an int in [2, 2**31), got {capacity!r}", field="capacity")
        self._capacity = capacity
        self._count = 0
        self._missing = 0
        self._counts: dict[str, int] = {}  # exact mode
        self._buckets: grid.Buckets | None = None  # hashed mode
        self._registers: np.ndarray | None = None  # hashed mode: HyperLogLog

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
    def is_exact(self) -> bool:
        """True while every distinct value has its own exact count (at most ``capacity`` seen)."""
        return self._buckets is None

    @property
    def error_bound(self) -> int:
        """Most occurrences a value not listed by :meth:`counts` can have (0 while exact): the
        largest count inside a bucket that is not at its ends."""
        b = self._buckets
        if b is None or len(b) == 0:
            return 0
        return int((b.cnt - b.nlo - b.nhi).max())

    @property
    def distinct_estimate(self) -> float:
        """Distinct non-missing values: exact while ``is_exact``, else the HyperLogLog estimate
        (at least the number of values :meth:`counts` lists)."""
        if self._registers is None:
            return float(len(self._counts))
        return max(hll.estimate(self._registers), float(len(self.counts())))

    def buckets(self) -> grid.Buckets | None:
        """The hashed buckets (None while exact); keys are :func:`category_key` of the values."""
        return self._buckets

    def counts(self) -> dict[str, int]:
        """Value -> exact count: every value while exact; beyond capacity the values alone in
        their bucket or at one of its ends."""
        b = self._buckets
        if b is None:
            return dict(self._counts)
        out: dict[str, int] = {}
        point = b.lo == b.hi
        lo_tags, hi_tags = b.lo_tag.tolist(), b.hi_tag.tolist()  # type: ignore[union-attr]
        for i, (nlo, nhi, is_point) in enumerate(zip(b.nlo.tolist(), b.nhi.tolist(), point.tolist())):
            out[lo_tags[i]] = nlo
            if not is_point:
                out[hi_tags[i]] = nhi
        return out

    def top(self, n: int) -> list[tuple[str, int]]:
        """The ``n`` most frequent values among :meth:`counts`, ties broken by value."""
        return sorted(self.counts().items(), key=lambda kv: (-kv[1], kv[0]))[: max(n, 0)]

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
        self._count += batch.count
        if self._buckets is None:
            counts = self._counts
            for key, c in batch.counts.items():
                counts[key] = counts.get(key, 0) + c
            if len(counts) > self._capacity:  # leaving exact mode: every value seen is in counts
                self._buckets, h2 = _buckets_of(counts, 0, self._capacity)
                self._registers = hll.add_hashes(hll.new_registers(), h2)
                self._counts = {}
            return
        b, h2 = _buckets_of(batch.counts, self._buckets.shift, self._capacity)
        self._buckets = grid.fit(grid.union(self._buckets, b), self._capacity)
        self._registers = hll.add_hashes(self._registers, h2)  # type: ignore[arg-type]

    def _add_missing(self, n: int) -> None:
        self._missing += n

    # -- merging -------------------------------------------------------------------------------
    def zero(self) -> CategoricalStats:
        return CategoricalStats(self._capacity)

    def copy(self) -> CategoricalStats:
        out = CategoricalStats.__new__(CategoricalStats)
        out._capacity, out._count, out._missing = self._capacity, self._count, self._missing
        out._counts = dict(self._counts)
        out._buckets, out._registers = self._buckets, self._registers  # never changed in place
        return out

    def merge(self, other: CategoricalStats) -> CategoricalStats:
        """A new object holding both inputs; neither input changes."""
        if not isinstance(other, CategoricalStats):
            raise StatisticsError(f"cannot merge CategoricalStats with {type(other).__name__}")
        if other._capacity != self._capacity:
            raise StatisticsError(f"cannot merge categorical statistics of capacity {self._capacity} and {other._capacity}")
        if self._buckets is None and other._buckets is not None:
            return other.merge(self)
        out = self.copy()
        out._missing += other._missing
        if other._count == 0:
            return out
        if out._buckets is None:  # both exact
            out.update_tally(Tally(counts=other._counts, missing=0))
            return out
        out._count += other._count
        if other._buckets is None:
            b, h2 = _buckets_of(other._counts, out._buckets.shift, self._capacity)
            registers = hll.add_hashes(out._registers, h2)  # type: ignore[arg-type]
        else:
            b = other._buckets
            registers = np.maximum(out._registers, other._registers)  # type: ignore[arg-type]
        out._buckets = grid.fit(grid.union(out._buckets, b), self._capacity)
        out._registers = registers
        return out

    # -- bytes ---------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        hashed = self._buckets is not None
        parts = [header(Tag.CATEGORICAL), _FIELDS.pack(self._capacity, self._count, self._missing, int(hashed))]
        if not hashed:
            keys = sorted(self._counts)
            parts.append(_EXACT_HEAD.pack(len(keys)))
            parts.append(_names(keys))
            parts.append(pack_uints(np.fromiter((self._counts[k] for k in keys), dtype=np.uint64, count=len(keys))))
        else:
            b = self._buckets
            assert b is not None and b.lo_tag is not None and b.hi_tag is not None and self._registers is not None
            point = b.lo == b.hi
            parts.append(_HASHED_HEAD.pack(b.shift, len(b)))
            parts.append(np.packbits(point, bitorder="little").tobytes())
            parts.append(_names(b.lo_tag.tolist()))
            parts.append(_names(b.hi_tag[~point].tolist()))
            parts.append(pack_uints(b.cnt.astype(np.uint64)))
            parts.append(pack_uints(b.nlo[~point].astype(np.uint64)))
            parts.append(pack_uints(b.nhi[~point].astype(np.uint64)))
            parts.append(self._registers.tobytes())
        return seal(b"".join(parts))

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        reader = Reader(data, Tag.CATEGORICAL)
        capacity, count, missing, hashed = reader.unpack(_FIELDS)
        if not 2 <= capacity < 2**31 or hashed not in (0, 1):
            raise StatisticsError(f"inconsistent categorical statistic: capacity {capacity}, mode {hashed}")
        out = cls.__new__(cls)
        out._capacity, out._count, out._missing = capacity, count, missing
        out._counts, out._buckets, out._registers = {}, None, None
        if not hashed:
            (n,) = reader.unpack(_EXACT_HEAD)
            if n > capacity:
                raise StatisticsError(f"inconsistent categorical statistic: {n} values for capacity {capacity}")
            keys = _read_names(reader, n)
            counts = reader.uints(n).tolist()
            reader.finish()
            if any(a >= b for a, b in zip(keys, keys[1:])) or any(c <= 0 for c in counts) or sum(counts) != count:
                raise StatisticsError("corrupt categorical statistic: values must be unique, sorted and counted")
            out._counts = dict(zip(keys, counts))
            return out
        shift, n = reader.unpack(_HASHED_HEAD)
        if not 1 <= n <= capacity or shift > grid.MAX_SHIFT:
            raise StatisticsError(f"inconsistent categorical statistic: {n} buckets for capacity {capacity}")
        point = np.unpackbits(np.frombuffer(reader.take((n + 7) // 8), dtype=np.uint8), count=n,
                              bitorder="little").astype(bool)
        m = n - int(point.sum())
        lo_names = _read_names(reader, n)
        hi_names = _read_names(reader, m)
        cnt = reader.uints(n).astype(np.int64)
        nlo = cnt.copy()
        nhi = np.zeros(n, dtype=np.int64)
        nlo[~point] = reader.uints(m).astype(np.int64)
        nhi[~point] = reader.uints(m).astype(np.int64)
        registers = np.frombuffer(reader.take(hll.REGISTERS), dtype=np.uint8).copy()
        reader.finish()
        hll.check_registers(registers)
        lo_tag = np.empty(n, dtype=object)
        lo_tag[:] = lo_names
        hi_tag = lo_tag.copy()
        hi_tag[~point] = hi_names
        lo = np.fromiter((category_key(k) for k in lo_names), dtype=np.int64, count=n)
        hi = lo.copy()
        hi[~point] = np.fromiter((category_key(k) for k in hi_names), dtype=np.int64, count=m)
        if bool((hi[~point] <= lo[~point]).any()):
            raise StatisticsError("corrupt categorical statistic: bucket ends out of order")
        b = grid.Buckets(shift, lo >> shift, cnt, lo, hi, nlo, nhi, lo_tag, hi_tag)
        grid.validate(b)
        if b.total != count:
            raise StatisticsError(f"inconsistent categorical statistic: buckets hold {b.total} values for count {count}")
        out._buckets, out._registers = b, registers
        return out

    # -- comparison ----------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CategoricalStats):
            return NotImplemented
        if (self._capacity, self._count, self._missing, self._counts) != (
                other._capacity, other._count, other._missing, other._counts):
            return False
        if (self._buckets is None) != (other._buckets is None):
            return False
        return self._buckets is None or (self._buckets.same(other._buckets)  # type: ignore[arg-type]
                                         and np.array_equal(self._registers, other._registers))  # type: ignore[arg-type]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"CategoricalStats(capacity={self._capacity}, count={self._count}, missing={self._missing}, "
            f"distinct~{self.distinct_estimate:.0f}, exact={self.is_exact}, top={self.top(3)})"
        )


def _names(names: list[str]) -> bytes:
    encoded = [k.encode("utf-8", "surrogatepass") for k in names]
    return pack_uints(np.fromiter(map(len, encoded), dtype=np.uint64, count=len(encoded))) + b"".join(encoded)


def _read_names(reader: Reader, n: int) -> list[str]:
    lengths = reader.uints(n)
    text = reader.take(int(lengths.sum(dtype=np.uint64)))
    names, pos = [], 0
    try:
        for length in lengths.tolist():
            names.append(text[pos : pos + length].decode("utf-8", "surrogatepass"))
            pos += length
    except UnicodeDecodeError:
        raise StatisticsError("corrupt categorical statistic: a value is not UTF-8") from None
    if any(not k for k in names):
        raise StatisticsError("corrupt categorical statistic: an empty value")
    return names
