"""Mergeable statistics of one numeric feature: exact moments plus a KLL quantile sketch.

Exact parts (``count``, ``missing``, ``nonfinite``, ``sum``, ``mean``, ``m2``, ``min``, ``max``)
are computed with numpy reductions per batch and combined with the parallel formula of
Chan, Golub and LeVeque ("Updating formulae and a pairwise algorithm for computing sample
variances", 1979/1983)::

    n     = n_a + n_b,    delta = mean_b - mean_a
    mean  = mean_a + delta * n_b / n
    M2    = M2_a + M2_b + delta**2 * n_a * n_b / n

(the pair is put in a canonical order first, so merging is exactly commutative).
Quantiles, CDFs and histograms come from an Apache DataSketches KLL sketch (Karnin, Lang,
Liberty 2016) fed with the finite values of each batch in one vectorised call.

Missing values are ``None``/NaN; ``+-inf`` are counted apart in ``nonfinite`` and kept out of
the moments and the sketch.
"""

from __future__ import annotations

import math
import numbers
import struct
from typing import Any, Self

import numpy as np
import pandas as pd
from datasketches import kll_doubles_sketch

from monitor.errors import ConfigError, SchemaError, StatisticsError
from monitor.stats.codec import Reader, Tag, blob, header, seal

__all__ = ["NumericStats", "to_float_array", "DEFAULT_K"]

DEFAULT_K = 200
_MIN_K, _MAX_K = 8, 65535
_FIELDS = struct.Struct("<HQQQddddd")  # k, count, missing, nonfinite, sum, mean, m2, min, max
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


def _nan_eq(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


class NumericStats:
    """Count, missing, non-finite, sum, mean, M2, min, max and a KLL sketch of one numeric feature."""

    __slots__ = ("_k", "_count", "_missing", "_nonfinite", "_sum", "_mean", "_m2", "_min", "_max", "_sketch")

    def __init__(self, k: int = DEFAULT_K) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or not _MIN_K <= k <= _MAX_K:
            raise ConfigError(f"KLL k must be an int in [{_MIN_K}, {_MAX_K}], got {k!r}", field="k")
        self._k = k
        self._count = 0
        self._missing = 0
        self._nonfinite = 0
        self._sum = 0.0
        self._mean = 0.0
        self._m2 = 0.0
        self._min = math.nan
        self._max = math.nan
        self._sketch = kll_doubles_sketch(k)

    # -- exact parts ---------------------------------------------------------------------------
    @property
    def k(self) -> int:
        return self._k

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
        return self._sum

    @property
    def mean(self) -> float:
        return self._mean if self._count else math.nan

    @property
    def m2(self) -> float:
        """Sum of squared deviations from the mean."""
        return self._m2

    @property
    def variance(self) -> float:
        """Sample variance (ddof=1); NaN with fewer than two values."""
        return self._m2 / (self._count - 1) if self._count > 1 else math.nan

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)

    @property
    def min(self) -> float:
        return self._min

    @property
    def max(self) -> float:
        return self._max

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
        nb = x.shape[0]
        if nb == 0:
            return
        s = float(x.sum())
        mean_b = s / nb
        d = x - mean_b
        m2_b = float(d @ d)
        self._absorb_moments(nb, s, mean_b, m2_b, float(x.min()), float(x.max()))
        self._sketch.update(x)

    def _add_missing(self, n: int) -> None:
        self._missing += n

    def _absorb_moments(self, nb: int, s: float, mean_b: float, m2_b: float, lo: float, hi: float) -> None:
        na = self._count
        if na == 0:
            self._count, self._sum, self._mean, self._m2, self._min, self._max = nb, s, mean_b, m2_b, lo, hi
            return
        n = na + nb
        # Chan's update, applied from the larger side of the pair in a canonical order so that
        # merging is exactly commutative (a.merge(b) and b.merge(a) give identical floats).
        (n1, mean1), (n2, mean2) = sorted(((na, self._mean), (nb, mean_b)), reverse=True)
        delta = mean2 - mean1
        self._mean = mean1 + delta * (n2 / n)
        self._m2 = self._m2 + m2_b + delta * delta * (na * nb / n)
        self._sum = self._sum + s
        self._count = n
        self._min = min(self._min, lo)
        self._max = max(self._max, hi)

    # -- merging -------------------------------------------------------------------------------
    def zero(self) -> NumericStats:
        return NumericStats(self._k)

    def copy(self) -> NumericStats:
        out = NumericStats.__new__(NumericStats)
        for name in self.__slots__:
            setattr(out, name, getattr(self, name))
        out._sketch = kll_doubles_sketch.deserialize(self._sketch.serialize())
        return out

    def merge(self, other: NumericStats) -> NumericStats:
        """A new object holding both inputs; neither input changes."""
        if not isinstance(other, NumericStats):
            raise StatisticsError(f"cannot merge NumericStats with {type(other).__name__}")
        if other._k != self._k:
            raise StatisticsError(f"cannot merge numeric statistics with KLL k={self._k} and k={other._k}")
        if other._count == 0:
            out = self.copy()
        elif self._count == 0:
            out = other.copy()
        else:
            out = self.copy()
            out._absorb_moments(other._count, other._sum, other._mean, other._m2, other._min, other._max)
            out._sketch.merge(other._sketch)
        out._missing = self._missing + other._missing
        out._nonfinite = self._nonfinite + other._nonfinite
        return out

    # -- sketch queries ------------------------------------------------------------------------
    @property
    def rank_error(self) -> float:
        """Normalised rank error bound (99% confidence, all ranks of a CDF/histogram query at once)
        of the KLL sketch; 0.0 while the sketch still holds every value (not in estimation mode)."""
        if not self._sketch.is_estimation_mode():
            return 0.0
        return float(self._sketch.normalized_rank_error(True))

    def quantiles(self, qs: Any) -> np.ndarray:
        """Values at normalised ranks ``qs`` (in [0, 1]): the smallest value whose fraction ``<=``
        it reaches the rank. All NaN when there are no values."""
        q = np.asarray(qs, dtype=np.float64)
        if np.isnan(q).any() or (q < 0).any() or (q > 1).any():
            raise StatisticsError("quantile ranks must lie in [0, 1]")
        if self._count == 0 or q.size == 0:
            return np.full(q.shape, np.nan)
        flat = np.asarray(self._sketch.get_quantiles(q.ravel().tolist(), True), dtype=np.float64)
        return flat.reshape(q.shape)

    def cdf(self, points: Any) -> np.ndarray:
        """Estimated fraction of values ``<=`` each point; exact 0/1 outside ``[min, max]``,
        NaN for NaN points or when there are no values."""
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
        """Fraction of values ``<=`` (inclusive) or ``<`` each point."""
        out = np.full(pts.shape, np.nan)
        if self._count == 0:
            return out
        lo, hi = self._min, self._max
        known = ~np.isnan(pts)
        if inclusive:
            out[known & (pts < lo)] = 0.0
            out[known & (pts >= hi)] = 1.0
            mid = known & (pts >= lo) & (pts < hi)
        else:
            out[known & (pts <= lo)] = 0.0
            out[known & (pts > hi)] = 1.0
            mid = known & (pts > lo) & (pts <= hi)
        if mid.any():
            uniq, inverse = np.unique(pts[mid], return_inverse=True)
            cdf = np.asarray(self._sketch.get_cdf(uniq.tolist(), inclusive), dtype=np.float64)[:-1]
            out[mid] = np.clip(cdf, 0.0, 1.0)[inverse]
        return out

    # -- bytes ---------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        fields = _FIELDS.pack(
            self._k, self._count, self._missing, self._nonfinite,
            self._sum, self._mean, self._m2, self._min, self._max,
        )  # fmt: skip
        return seal(header(Tag.NUMERIC) + fields + blob(self._sketch.serialize()))

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        reader = Reader(data, Tag.NUMERIC)
        k, count, missing, nonfinite, total, mean, m2, lo, hi = reader.unpack(_FIELDS)
        raw = reader.blob()
        reader.finish()
        try:
            sketch = kll_doubles_sketch.deserialize(raw)
        except Exception as exc:  # the binding raises RuntimeError/ValueError on bad bytes
            raise StatisticsError(f"corrupt KLL sketch: {exc}") from None
        if not _MIN_K <= k <= _MAX_K or sketch.k != k:
            raise StatisticsError(f"inconsistent KLL k: header {k}, sketch {sketch.k}")
        if sketch.n != count:
            raise StatisticsError(f"inconsistent numeric statistic: count {count} but the sketch holds {sketch.n}")
        if count == 0:
            if total != 0 or mean != 0 or m2 != 0 or not (math.isnan(lo) and math.isnan(hi)):
                raise StatisticsError("inconsistent numeric statistic: moments set with no values")
        elif not (
            math.isfinite(lo)
            and math.isfinite(hi)
            and not m2 < 0
            and lo == sketch.get_min_value()
            and hi == sketch.get_max_value()
        ):
            raise StatisticsError("inconsistent numeric statistic: moments do not fit the sketch")
        out = cls.__new__(cls)
        out._k, out._count, out._missing, out._nonfinite = k, count, missing, nonfinite
        out._sum, out._mean, out._m2, out._min, out._max = total, mean, m2, lo, hi
        out._sketch = sketch
        return out

    # -- comparison ----------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumericStats):
            return NotImplemented
        return (
            (self._k, self._count, self._missing, self._nonfinite) == (other._k, other._count, other._missing, other._nonfinite)
            and all(_nan_eq(a, b) for a, b in zip(
                (self._sum, self._mean, self._m2, self._min, self._max),
                (other._sum, other._mean, other._m2, other._min, other._max),
            ))  # fmt: skip
            and self._sketch.serialize() == other._sketch.serialize()
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"NumericStats(k={self._k}, count={self._count}, missing={self._missing}, nonfinite={self._nonfinite}, "
            f"mean={self.mean:.6g}, std={self.std:.6g}, min={self._min:.6g}, max={self._max:.6g})"
        )
