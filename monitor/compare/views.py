"""Read-only views over the statistics objects, computed once and shared by every test.

A comparison accepts either a statistics object from :mod:`monitor.stats` or a view of
one. Building the view once per feature (as :func:`monitor.evaluate.evaluate` does) means
the summary is asked for its quantile grid once, not once per test. Views never change the
statistics they wrap.

Two categorical summaries are compared on a common partition (:func:`aligned`): value by value
while both are exact; beyond a capacity, on the hashed buckets of the coarser summary, keeping
the values a bucket knows by name (one or two per bucket) and comparing the rest of a bucket as
one category.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from monitor.lru import remember
from monitor.stats import grid
from monitor.stats.categorical import category_key

if TYPE_CHECKING:  # pragma: no cover - typing only
    from monitor.stats import CategoricalStats, NumericStats

__all__ = [
    "GRID_SIZE",
    "GRID",
    "NumericView",
    "CategoricalView",
    "numeric_view",
    "categorical_view",
    "NumericInput",
    "CategoricalInput",
    "ViewCache",
    "HashBucket",
    "Aligned",
    "aligned",
]

#: Number of ranks at which quantile functions are evaluated (midpoint rule on [0, 1]).
GRID_SIZE = 1000
#: The rank grid: midpoints (i + 0.5) / GRID_SIZE.
GRID = (np.arange(GRID_SIZE, dtype=np.float64) + 0.5) / GRID_SIZE
GRID.setflags(write=False)


def _number(value: Any, default: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else default


class NumericView:
    """Exact moments plus a lazily computed quantile grid of one numeric feature.

    A snapshot: build it once the statistics stop changing (a window that has closed, a
    baseline), since the moments are copied at once and the grid is read later.
    """

    __slots__ = ("stats", "count", "missing", "nonfinite", "mean", "variance", "std", "minimum", "maximum",
                 "rank_error", "_grid", "_memo", "_breakpoints")

    def __init__(self, stats: "NumericStats") -> None:
        self.stats = stats
        self.count = int(stats.count)
        self.missing = int(stats.missing)
        self.nonfinite = int(getattr(stats, "nonfinite", 0))
        self.mean = _number(stats.mean, 0.0) if self.count else 0.0
        # the exact variance may be beyond the float range (values past about 1e154): inf, not 0, and the
        # standard deviation of the stats themselves (finite wherever it is); see variance_at
        variance = float(stats.variance) if self.count >= 2 else 0.0
        self.variance = max(variance, 0.0) if variance == variance else 0.0
        std = float(getattr(stats, "std", math.sqrt(self.variance))) if self.count >= 2 else 0.0
        self.std = std if std == std and std >= 0.0 else 0.0
        self.minimum = _number(stats.min, 0.0) if self.count else 0.0
        self.maximum = _number(stats.max, 0.0) if self.count else 0.0
        self.rank_error = max(_number(stats.rank_error, 0.0), 0.0) if self.count else 0.0
        self._grid: np.ndarray | None = None
        self._breakpoints: np.ndarray | None = None
        self._memo: dict[Any, Any] = {}

    @property
    def grid(self) -> np.ndarray:
        """Quantiles at :data:`GRID` (an empty array when there are no values)."""
        if self._grid is None:
            if self.count == 0:
                self._grid = np.empty(0)
            else:
                q = np.asarray(self.stats.quantiles(GRID), dtype=np.float64)
                # a sketch answers with non-decreasing values; enforce it against rounding
                self._grid = np.maximum.accumulate(q)
            self._grid.setflags(write=False)
        return self._grid

    @property
    def breakpoints(self) -> np.ndarray:
        """Sorted values where the summary's CDF bends or jumps (every distinct value while exact)."""
        if self._breakpoints is None:
            self._breakpoints = np.asarray(self.stats.breakpoints(), dtype=np.float64) if self.count else np.empty(0)
            self._breakpoints.setflags(write=False)
        return self._breakpoints

    def cdf(self, points: np.ndarray) -> np.ndarray:
        """Fraction of values <= each point, asked of the summary."""
        if self.count == 0:
            return np.zeros(len(points))
        return np.asarray(self.stats.cdf(np.asarray(points, dtype=np.float64)), dtype=np.float64)

    def cdf_both(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(fraction <= each point, fraction < each point), asked of the summary in one pass."""
        if self.count == 0:
            return np.zeros(len(points)), np.zeros(len(points))
        return self.stats.fractions_both(np.asarray(points, dtype=np.float64))

    def cdf_below(self, points: np.ndarray) -> np.ndarray:
        """Fraction of values < each point (the left limit of the CDF), asked of the summary."""
        if self.count == 0:
            return np.zeros(len(points))
        return np.asarray(self.stats._fractions(np.asarray(points, dtype=np.float64), inclusive=False),
                          dtype=np.float64)

    def grid_cdf(self, points: np.ndarray) -> np.ndarray:
        """The CDF read off the quantile grid: within 1/(2 GRID_SIZE) of the sketch's own CDF.

        (The grid quantile at rank u is the smallest value whose sketch rank reaches u, so
        the share of grid ranks whose quantile is <= x is the sketch rank of x rounded to
        the grid.) Much cheaper than asking the sketch at many points.
        """
        return np.searchsorted(self.grid, points, side="right") / GRID_SIZE

    def variance_at(self, exp: int) -> float:
        """The variance of the values divided by ``2**exp`` (finite where :attr:`variance` overflows)."""
        if exp == 0:
            return self.variance
        if self.count < 2:
            return 0.0
        scaled = getattr(self.stats, "variance_scaled", None)
        v = float(scaled(exp)) if scaled is not None else math.ldexp(self.variance, -2 * exp)
        return max(v, 0.0) if v == v else 0.0

    def std_at(self, exp: int) -> float:
        """The standard deviation of the values divided by ``2**exp``."""
        return self.std if exp == 0 else math.ldexp(self.std, -exp) if math.isfinite(self.std) else \
            math.sqrt(self.variance_at(exp))

    def memo(self, key: Any, compute: Any) -> Any:
        """``compute()`` once per key for this view (a snapshot, so the answer stays valid)."""
        try:
            return self._memo[key]
        except KeyError:
            value = self._memo[key] = compute()
            return value

    def quantiles(self, ranks: np.ndarray) -> np.ndarray:
        """Quantiles at ``ranks`` asked of the sketch itself (not interpolated)."""
        return np.asarray(self.stats.quantiles(np.asarray(ranks, dtype=np.float64)), dtype=np.float64)


class CategoricalView:
    """Value counts of one categorical feature.

    ``counts`` are the values known by name with their exact counts (all of them while
    ``is_exact``); ``remainder`` is the number of non-missing values not among them (in hashed
    buckets of three or more values). Comparisons use :func:`aligned`.
    """

    __slots__ = ("stats", "count", "missing", "counts", "remainder", "is_exact", "error_bound", "buckets", "_memo")

    def __init__(self, stats: "CategoricalStats") -> None:
        self.stats = stats
        self.count = int(stats.count)
        self.missing = int(stats.missing)
        self.counts: dict[str, int] = {str(k): int(v) for k, v in stats.counts().items() if v > 0}
        self.remainder = max(self.count - sum(self.counts.values()), 0)
        self.is_exact = bool(getattr(stats, "is_exact", True))
        self.error_bound = int(getattr(stats, "error_bound", 0))
        self.buckets: grid.Buckets | None = None if self.is_exact else stats.buckets()
        self._memo: dict[Any, Any] = {}

    def memo(self, key: Any, compute: Any) -> Any:
        try:
            return self._memo[key]
        except KeyError:
            value = self._memo[key] = compute()
            return value

    def by_bucket(self, shift: int) -> dict[int, tuple[dict[str, int] | None, int]]:
        """Bucket id at ``shift`` -> (the values it holds with their counts, or None when the
        summary does not know them all; the bucket's total)."""

        def compute() -> dict[int, tuple[dict[str, int] | None, int]]:
            out: dict[int, tuple[dict[str, int] | None, int]] = {}
            if self.buckets is None:
                for name, n in self.counts.items():
                    names, total = out.get(category_key(name) >> shift, ({}, 0))
                    names[name] = n  # type: ignore[index]
                    out[category_key(name) >> shift] = (names, total + n)
                return out
            b = grid.coarsen(self.buckets, shift)
            lo_tags, hi_tags = b.lo_tag.tolist(), b.hi_tag.tolist()  # type: ignore[union-attr]
            rows = zip(b.ids.tolist(), b.cnt.tolist(), b.lo.tolist(), b.hi.tolist(), b.nlo.tolist(), b.nhi.tolist())
            for i, (bid, cnt, lo, hi, nlo, nhi) in enumerate(rows):
                if lo == hi:
                    out[bid] = ({lo_tags[i]: cnt}, cnt)
                elif nlo + nhi == cnt:
                    out[bid] = ({lo_tags[i]: nlo, hi_tags[i]: nhi}, cnt)
                else:
                    out[bid] = (None, cnt)
            return out

        return self.memo(("by_bucket", shift), compute)


@dataclass(frozen=True, slots=True)
class HashBucket:
    """A hashed bucket compared as one category (its values are not all known by name)."""

    shift: int
    id: int

    def __str__(self) -> str:
        return f"<values hashed to bucket {self.id & ((1 << (64 - self.shift)) - 1):x}/{64 - self.shift} bits>"


@dataclass(frozen=True, slots=True)
class Aligned:
    """Two categorical summaries on one partition: ``keys`` (value names, or :class:`HashBucket`)
    with the reference and current counts; ``unseen``: current values known to be absent from
    the reference, with their counts; ``approximate``: some keys are buckets."""

    keys: tuple[object, ...]
    reference: np.ndarray
    current: np.ndarray
    unseen: dict[str, int]
    approximate: bool


def aligned(r: CategoricalView, c: CategoricalView) -> Aligned:
    """The common partition of two categorical views (computed once per pair, kept on ``c``)."""

    def compute() -> tuple[object, Aligned]:
        if r.buckets is None and c.buckets is None:
            keys = tuple(dict.fromkeys([*r.counts, *c.counts]))
            ref = np.array([r.counts.get(k, 0) for k in keys], dtype=np.float64)
            cur = np.array([c.counts.get(k, 0) for k in keys], dtype=np.float64)
            unseen = {k: n for k, n in c.counts.items() if k not in r.counts}
            return r.stats, Aligned(keys, ref, cur, unseen, False)
        shift = max(v.buckets.shift for v in (r, c) if v.buckets is not None)  # type: ignore[union-attr]
        rb, cb = r.by_bucket(shift), c.by_bucket(shift)
        keys_out: list[object] = []
        ref_out: list[int] = []
        cur_out: list[int] = []
        unseen: dict[str, int] = {}
        approximate = False
        for bid in sorted(rb.keys() | cb.keys()):
            r_names, r_total = rb.get(bid, ({}, 0))
            c_names, c_total = cb.get(bid, ({}, 0))
            if r_names is not None and c_names is not None:
                for name in dict.fromkeys([*r_names, *c_names]):
                    keys_out.append(name)
                    ref_out.append(r_names.get(name, 0))
                    cur_out.append(c_names.get(name, 0))
                unseen.update({k: n for k, n in c_names.items() if k not in r_names})
            else:
                approximate = True
                keys_out.append(HashBucket(shift, bid))
                ref_out.append(r_total)
                cur_out.append(c_total)
        return r.stats, Aligned(tuple(keys_out), np.array(ref_out, dtype=np.float64), np.array(cur_out, dtype=np.float64),
                          unseen, approximate)

    # kept under the reference's id with its statistics (not the view: a kept view of the next window would
    # hold this one, which holds the one before, and so on through every window decided)
    owner, result = c.memo(("aligned", id(r)), compute)
    if owner is not r.stats:  # a different reference that reused the id: recompute
        _, result = compute()
    return result


NumericInput = Union["NumericStats", NumericView]
CategoricalInput = Union["CategoricalStats", CategoricalView]


def numeric_view(stats: NumericInput) -> NumericView:
    """The view of ``stats`` (itself when it already is one)."""
    return stats if isinstance(stats, NumericView) else NumericView(stats)


def categorical_view(stats: CategoricalInput) -> CategoricalView:
    """The view of ``stats`` (itself when it already is one)."""
    return stats if isinstance(stats, CategoricalView) else CategoricalView(stats)


class ViewCache:
    """The views of statistics that no longer change, kept from one evaluation to the next.

    A merge stage compares every window with the same training baseline and with the window it
    decided just before, whose current statistics it has already viewed: kept views mean each
    baseline's quantile grid, breakpoints and deciles are computed once, not once per window and
    mode. A view is a snapshot, so only statistics that are never updated again belong here (a
    decided window's, a baseline's); as a guard, a kept view is used only while its statistics
    still report the count and missing count it was built from. Holds at most ``capacity``
    views, the least recently used dropped first, each with a reference to its statistics (so
    the identity it is kept under cannot be reused while it is kept).
    """

    __slots__ = ("capacity", "_views")

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._views: OrderedDict[tuple[int, bool], tuple[Any, int, int, NumericView | CategoricalView]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._views)

    def numeric(self, stats: NumericInput) -> NumericView:
        return stats if isinstance(stats, NumericView) else self._get(stats, True)  # type: ignore[return-value]

    def categorical(self, stats: CategoricalInput) -> CategoricalView:
        return stats if isinstance(stats, CategoricalView) else self._get(stats, False)  # type: ignore[return-value]

    def _get(self, stats: Any, numeric: bool) -> NumericView | CategoricalView:
        key = (id(stats), numeric)
        kept = self._views.get(key)
        count, missing = int(stats.count), int(stats.missing)
        if kept is not None and kept[1] == count and kept[2] == missing:  # kept[0] holds the id: it is stats
            self._views.move_to_end(key)
            return kept[3]
        view = NumericView(stats) if numeric else CategoricalView(stats)
        remember(self._views, key, (stats, count, missing, view), self.capacity)
        return view
