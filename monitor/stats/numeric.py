"""Mergeable statistics of one numeric feature: exact moments and a deterministic bucket grid.

Everything here is a function of the multiset of values, so the same rows give byte-identical
``to_bytes()`` whatever the batching of :meth:`NumericStats.update` and however partial
statistics are split and merged (one per Kafka partition, in any order and grouping).

* **Moments.** The sum and the sum of squares are kept *exactly*, as integers in units of
  ``2**-1074`` and ``2**-2148`` (:mod:`monitor.stats.exact`); ``mean``, ``m2`` and ``variance``
  are the correctly rounded values of the exact ones, so they are as accurate as float64 allows
  and do not depend on the order values arrived in.
* **Distribution.** A log-linear bucket grid (:mod:`monitor.stats.grid`): exact while at most
  ``bins`` distinct values were seen, then the finest grid on which the values fit in ``bins``
  buckets, each keeping its count, its two end values and their counts.

Error bounds (stated, and exposed as :attr:`NumericStats.rank_error`): every CDF answer is
within ``rank_error`` of the true fraction (a hard bound, not a confidence level): the largest
share of values lying strictly inside one bucket. Quantiles lie inside the bucket that holds
their rank, so a quantile is within the bucket's own value range (relative width at most
``2**(shift - 52)``) of the true one.

Missing values are ``None``/NaN; ``+-inf`` are counted apart in ``nonfinite`` and kept out of
the moments and the buckets.
"""

from __future__ import annotations

import math
import numbers
import struct
import sys
from typing import Any, Self

import numpy as np
import pandas as pd
from fractions import Fraction

from monitor.errors import ConfigError, SchemaError, StatisticsError
from monitor.stats import grid
from monitor.stats.codec import Reader, Tag, blob, header, seal
from monitor.stats.exact import SQUARE_UNIT_EXP, SUM_UNIT_EXP, exact_moments, int_from_bytes, int_to_bytes

__all__ = ["NumericStats", "to_float_array", "DEFAULT_BINS", "BASELINE_BINS", "MIN_BINS", "MAX_BINS"]

#: Buckets of a window's numeric feature: exact up to this many distinct values.
DEFAULT_BINS = 1024
#: Buckets of a training baseline's numeric feature (compared with every window, built once).
BASELINE_BINS = 16384
MIN_BINS, MAX_BINS = 8, 1 << 24
_FIELDS = struct.Struct("<IQQQ")  # bins, count, missing, nonfinite
_MISSING_TYPES = (type(None), type(pd.NA))


def to_float_array(values: Any, *, feature: str | None = None) -> np.ndarray:
    """``values`` as a 1-D float64 array, NaN for missing (``None``, NaN, ``pd.NA``).

    Float arrays pass through without a copy. Ints are widened. Booleans, strings and any other
    non-number raise :class:`SchemaError` naming ``feature`` and the first offending position.
    """
    if isinstance(values, (pd.Series, pd.Index, pd.api.extensions.ExtensionArray)):
        dtype = values.dtype
        if pd.api.types.is_bool_dtype(dtype):
            raise SchemaError("booleans are not numeric", feature=feature)
        if isinstance(dtype, np.dtype) and dtype.kind in "fiu":
            values = values.to_numpy()  # plain numpy column: no copy, NaN already marks missing
        elif pd.api.types.is_numeric_dtype(dtype):  # nullable Int64/Float64: pd.NA -> NaN
            return values.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            values = values.to_numpy(dtype=object)
    arr = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    if arr.ndim != 1:
        raise SchemaError(f"expected a 1-D column, got shape {arr.shape}", feature=feature)
    kind = arr.dtype.kind
    if kind == "f":
        return arr.astype(np.float64, copy=False)
    if kind in "iu":
        return arr.astype(np.float64)
    if kind != "O":
        raise SchemaError(f"expected numbers, got an array of dtype {arr.dtype}", feature=feature)
    types = set(map(type, arr))
    bad = [t for t in types if not (t in _MISSING_TYPES or (issubclass(t, numbers.Real) and not issubclass(t, (bool, np.bool_))))]
    if bad:
        where = next(i for i, v in enumerate(arr) if type(v) in bad)
        raise SchemaError(f"row {where}: expected a number, got {type(arr[where]).__name__} {arr[where]!r:.40}", feature=feature)
    if type(pd.NA) in types:
        arr = arr.copy()
        arr[pd.isna(arr)] = None
    try:
        return arr.astype(np.float64)
    except OverflowError:
        raise SchemaError("a number is out of the float64 range", feature=feature) from None


class NumericStats:
    """Count, missing, non-finite, exact sum and sum of squares, and the bucket grid of one
    numeric feature (see the module docstring)."""

    __slots__ = ("_bins", "_count", "_missing", "_nonfinite", "_sum", "_squares", "_buckets", "_shape")

    def __init__(self, bins: int = DEFAULT_BINS) -> None:
        if isinstance(bins, bool) or not isinstance(bins, int) or not MIN_BINS <= bins <= MAX_BINS:
            raise ConfigError(f"bins must be an int in [{MIN_BINS}, {MAX_BINS}], got {bins!r}", field="bins")
        self._bins = bins
        self._count = 0
        self._missing = 0
        self._nonfinite = 0
        self._sum = 0  # exact, in units of 2**-1074
        self._squares = 0  # exact, in units of 2**-2148
        self._buckets = grid.EMPTY
        self._shape: grid.Shape | None = None

    # -- exact parts ---------------------------------------------------------------------------
    @property
    def bins(self) -> int:
        return self._bins

    @property
    def count(self) -> int:
        """Non-missing finite values."""
        return self._count

    @property
    def missing(self) -> int:
        return self._missing

    @property
    def nonfinite(self) -> int:
        return self._nonfinite

    @property
    def total(self) -> int:
        """Every value seen: ``count + missing + nonfinite``."""
        return self._count + self._missing + self._nonfinite

    @property
    def sum(self) -> float:
        return _ratio(self._sum, 1 << SUM_UNIT_EXP) if self._count else 0.0

    @property
    def mean(self) -> float:
        return _ratio(self._sum, self._count << SUM_UNIT_EXP) if self._count else math.nan

    @property
    def m2(self) -> float:
        """Sum of squared deviations from the mean (correctly rounded from the exact sums)."""
        n = self._count
        if n == 0:
            return 0.0
        return _ratio(n * self._squares - self._sum * self._sum, n << SQUARE_UNIT_EXP)

    @property
    def variance(self) -> float:
        """Sample variance (ddof=1); NaN with fewer than two values."""
        if self._count < 2:
            return math.nan
        return _ratio(*self._variance_terms())

    def _variance_terms(self) -> tuple[int, int]:
        """The sample variance as an exact ratio (numerator, denominator) of the sums' integers."""
        n = self._count
        return n * self._squares - self._sum * self._sum, (n * (n - 1)) << SQUARE_UNIT_EXP

    def variance_scaled(self, exp: int) -> float:
        """The sample variance of the values divided by ``2**exp``: ``variance / 4**exp``, correctly rounded
        from the exact sums, so finite where the variance itself is beyond the float range (values past
        about 1e154) or below it; NaN with fewer than two values."""
        if self._count < 2:
            return math.nan
        num, den = self._variance_terms()
        return _ratio(num, den << (2 * exp)) if exp >= 0 else _ratio(num << (-2 * exp), den)

    @property
    def std(self) -> float:
        """Sample standard deviation, finite and non-zero wherever it is (also when the variance is beyond
        the float range or below it)."""
        v = self.variance
        if v != v or (_NORMAL <= v < math.inf):
            return math.sqrt(v)
        num, den = self._variance_terms()
        if num <= 0:
            return 0.0
        half = (num.bit_length() - den.bit_length()) // 2  # std = sqrt(variance / 4**half) * 2**half
        try:
            return math.ldexp(math.sqrt(self.variance_scaled(half)), half)
        except OverflowError:
            return math.inf

    @property
    def min(self) -> float:
        return self._grid_shape().minimum if self._count else math.nan

    @property
    def max(self) -> float:
        return self._grid_shape().maximum if self._count else math.nan

    @property
    def shift(self) -> int:
        """The grid level: 0 while exact; a bucket keeps the top ``52 - shift`` mantissa bits."""
        return self._buckets.shift

    @property
    def is_exact(self) -> bool:
        """True while every distinct value has its own exact count (``rank_error`` is then 0)."""
        return self._buckets.shift == 0

    def is_empty(self) -> bool:
        return self.total == 0

    # -- updating ------------------------------------------------------------------------------
    def update(self, values: Any) -> None:
        """Fold in one batch: a float array (NaN = missing) or a sequence that may hold ``None``."""
        arr = to_float_array(values)
        n = arr.shape[0]
        if n == 0:
            return
        finite = np.isfinite(arr)
        if finite.all():
            x = arr
        else:
            nan = int(np.count_nonzero(np.isnan(arr)))
            self._missing += nan
            x = arr[finite]
            self._nonfinite += n - nan - x.shape[0]
        if x.shape[0] == 0:
            return
        keys = grid.keys_of(x)  # a new array
        keys.sort()
        amax, amin = _magnitudes(keys)
        total, squares = exact_moments(x, amax=amax, amin=amin)
        self._sum += total
        self._squares += squares
        self._count += x.shape[0]
        batch = grid.from_sorted_keys(keys, self._buckets.shift, self._bins)
        self._buckets = grid.fit(grid.union(self._buckets, batch), self._bins)
        self._shape = None

    def _add_missing(self, n: int) -> None:
        self._missing += n

    # -- merging -------------------------------------------------------------------------------
    def zero(self) -> NumericStats:
        return NumericStats(self._bins)

    def copy(self) -> NumericStats:
        out = NumericStats.__new__(NumericStats)
        for name in self.__slots__:
            setattr(out, name, getattr(self, name))  # bucket arrays are never changed in place
        return out

    def merge(self, other: NumericStats) -> NumericStats:
        """A new object holding both inputs; neither input changes."""
        if not isinstance(other, NumericStats):
            raise StatisticsError(f"cannot merge NumericStats with {type(other).__name__}")
        if other._bins != self._bins:
            raise StatisticsError(f"cannot merge numeric statistics with {self._bins} and {other._bins} bins")
        out = self.copy()
        out._missing = self._missing + other._missing
        out._nonfinite = self._nonfinite + other._nonfinite
        if other._count:
            out._count = self._count + other._count
            out._sum = self._sum + other._sum
            out._squares = self._squares + other._squares
            out._buckets = grid.fit(grid.union(self._buckets, other._buckets), self._bins)
            out._shape = None
        return out

    # -- queries -------------------------------------------------------------------------------
    @property
    def rank_error(self) -> float:
        """Bound on the error of every CDF answer (a share of the values; 0.0 while exact or while
        no bucket holds more than two distinct values). Hard bound, not a confidence level."""
        return grid.rank_error(self._buckets)

    def buckets(self) -> grid.Buckets:
        """The bucket grid (read-only arrays)."""
        return self._buckets

    def _grid_shape(self) -> grid.Shape:
        if self._shape is None:
            self._shape = grid.Shape(self._buckets)
        return self._shape

    def breakpoints(self) -> np.ndarray:
        """Sorted distinct values where the estimated CDF bends or jumps (every bucket end)."""
        if self._count == 0:
            return np.empty(0)
        shape = self._grid_shape()
        return np.unique(np.concatenate((shape.lo, shape.hi)))

    def quantiles(self, qs: Any) -> np.ndarray:
        """Values at normalised ranks ``qs`` (in [0, 1]): the smallest value whose fraction ``<=``
        it reaches the rank (exact while :attr:`is_exact`; ``numpy.quantile(..., "inverted_cdf")``).
        All NaN when there are no values."""
        q = np.asarray(qs, dtype=np.float64)
        if np.isnan(q).any() or (q < 0).any() or (q > 1).any():
            raise StatisticsError("quantile ranks must lie in [0, 1]")
        if self._count == 0 or q.size == 0:
            return np.full(q.shape, np.nan)
        shape = self._grid_shape()
        key = q.tobytes() if q.size <= 4096 else None  # the comparisons ask a baseline the same ranks per window
        cached = shape.memo.get(key) if key is not None else None
        if cached is None:
            cached = shape.quantiles(q.ravel() * float(self._count))
            cached.setflags(write=False)
            if key is not None and len(shape.memo) < 16:
                shape.memo[key] = cached
        return cached.reshape(q.shape).copy()

    def cdf(self, points: Any) -> np.ndarray:
        """Estimated fraction of values ``<=`` each point (within :attr:`rank_error`); exact 0/1
        outside ``[min, max]``, NaN for NaN points or when there are no values."""
        return self._fractions(np.asarray(points, dtype=np.float64), inclusive=True)

    def histogram(self, edges: Any) -> np.ndarray:
        """Estimated counts in ``len(edges) - 1`` bins, numpy-style: ``[e_i, e_i+1)`` and the last
        bin closed. Values outside the edges are not counted. Exact while ``rank_error == 0``."""
        e = np.asarray(edges, dtype=np.float64)
        if e.ndim != 1 or e.shape[0] < 2 or np.isnan(e).any() or not (np.diff(e) > 0).all():
            raise StatisticsError("histogram edges must be a 1-D strictly increasing array of at least 2 numbers")
        if self._count == 0:
            return np.zeros(e.shape[0] - 1)
        cum = np.empty_like(e)
        cum[:-1] = self._fractions(e[:-1], inclusive=False)
        cum[-1] = self._fractions(e[-1:], inclusive=True)[0]
        counts = np.maximum(np.diff(cum) * self._count, 0.0)
        return np.rint(counts) if self.rank_error == 0.0 else counts

    def _fractions(self, pts: np.ndarray, *, inclusive: bool) -> np.ndarray:
        """Fraction of values ``<=`` (inclusive) or ``<`` each point (exact 0 and 1 outside the
        values' range, NaN for NaN points)."""
        if self._count == 0:
            return np.full(pts.shape, np.nan)
        flat = pts.ravel()
        with np.errstate(invalid="ignore"):
            counts = self._grid_shape().counts_le(flat, inclusive=inclusive)
        out = np.clip(counts / self._count, 0.0, 1.0)
        return np.where(np.isnan(flat), np.nan, out).reshape(pts.shape)

    def fractions_both(self, points: Any) -> tuple[np.ndarray, np.ndarray]:
        """(fraction ``<=``, fraction ``<``) of each finite point, in one pass (for ks)."""
        pts = np.asarray(points, dtype=np.float64)
        if self._count == 0:
            nan = np.full(pts.shape, np.nan)
            return nan, nan.copy()
        le, lt = self._grid_shape().counts_both(pts)
        return np.clip(le / self._count, 0.0, 1.0), np.clip(lt / self._count, 0.0, 1.0)

    # -- bytes ---------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        fields = _FIELDS.pack(self._bins, self._count, self._missing, self._nonfinite)
        return seal(b"".join((header(Tag.NUMERIC), fields, blob(int_to_bytes(self._sum)),
                              blob(int_to_bytes(self._squares)), grid.encode(self._buckets))))

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        reader = Reader(data, Tag.NUMERIC)
        bins, count, missing, nonfinite = reader.unpack(_FIELDS)
        total, squares = int_from_bytes(reader.blob()), int_from_bytes(reader.blob())
        buckets = grid.decode(reader)
        reader.finish()
        if not MIN_BINS <= bins <= MAX_BINS or len(buckets) > bins:
            raise StatisticsError(f"inconsistent numeric statistic: {len(buckets)} buckets for {bins} bins")
        if buckets.total != count:
            raise StatisticsError(f"inconsistent numeric statistic: count {count} but the buckets hold {buckets.total}")
        if count == 0:
            if total or squares:
                raise StatisticsError("inconsistent numeric statistic: sums set with no values")
        else:
            lo = Fraction(float(grid.values_of(buckets.lo[:1])[0]))
            hi = Fraction(float(grid.values_of(buckets.hi[-1:])[0]))
            mean = Fraction(total, count << SUM_UNIT_EXP)
            if not (lo <= mean <= hi) or count * squares < total * total or squares < 0:
                raise StatisticsError("inconsistent numeric statistic: the sums do not fit the values")
        out = cls.__new__(cls)
        out._bins, out._count, out._missing, out._nonfinite = bins, count, missing, nonfinite
        out._sum, out._squares, out._buckets, out._shape = total, squares, buckets, None
        return out

    # -- comparison ----------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumericStats):
            return NotImplemented
        return (
            (self._bins, self._count, self._missing, self._nonfinite, self._sum, self._squares)
            == (other._bins, other._count, other._missing, other._nonfinite, other._sum, other._squares)
            and self._buckets.same(other._buckets)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"NumericStats(bins={self._bins}, count={self._count}, missing={self._missing}, "
            f"nonfinite={self._nonfinite}, mean={self.mean:.6g}, std={self.std:.6g}, min={self.min:.6g}, "
            f"max={self.max:.6g}, buckets={len(self._buckets)}, shift={self.shift})"
        )


def _magnitudes(keys: np.ndarray) -> tuple[float, float]:
    """Largest and smallest non-zero ``|x|`` of sorted keys (0.0, 0.0 when all are zero)."""
    ends = grid.values_of(keys[[0, -1]])
    amax = max(-float(ends[0]), float(ends[1]))
    at = int(np.searchsorted(keys, 0, side="left"))  # first key >= 0
    past = int(np.searchsorted(keys, 0, side="right"))  # first key > 0
    near = []
    if at > 0:
        near.append(-float(grid.values_of(keys[at - 1 : at])[0]))
    if past < keys.shape[0]:
        near.append(float(grid.values_of(keys[past : past + 1])[0]))
    return amax, (min(near) if near else 0.0)


_NORMAL = sys.float_info.min  # the smallest normal float: below it a square root loses bits


def _ratio(num: int, den: int) -> float:
    """``num / den`` correctly rounded (Python's int true division), +-inf past the float range."""
    try:
        return num / den
    except OverflowError:  # (not copysign: it converts num to a float, which overflows too)
        return math.inf if num > 0 else -math.inf
