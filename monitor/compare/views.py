"""Read-only views over the statistics objects, computed once and shared by every test.

A comparison accepts either a statistics object from :mod:`monitor.stats` or a view of
one. Building the view once per feature (as :func:`monitor.evaluate.evaluate` does) means
the sketch is asked for its quantile grid once, not once per test. Views never change the
statistics they wrap.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Union

import numpy as np

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
                 "rank_error", "_grid", "_memo")

    def __init__(self, stats: "NumericStats") -> None:
        self.stats = stats
        self.count = int(stats.count)
        self.missing = int(stats.missing)
        self.nonfinite = int(getattr(stats, "nonfinite", 0))
        self.mean = _number(stats.mean, 0.0) if self.count else 0.0
        self.variance = max(_number(stats.variance, 0.0), 0.0) if self.count >= 2 else 0.0
        self.std = math.sqrt(self.variance)
        self.minimum = _number(stats.min, 0.0) if self.count else 0.0
        self.maximum = _number(stats.max, 0.0) if self.count else 0.0
        self.rank_error = max(_number(stats.rank_error, 0.0), 0.0) if self.count else 0.0
        self._grid: np.ndarray | None = None
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

    def cdf(self, points: np.ndarray) -> np.ndarray:
        """Fraction of values <= each point, asked of the sketch."""
        if self.count == 0:
            return np.zeros(len(points))
        return np.asarray(self.stats.cdf(np.asarray(points, dtype=np.float64)), dtype=np.float64)

    def grid_cdf(self, points: np.ndarray) -> np.ndarray:
        """The CDF read off the quantile grid: within 1/(2 GRID_SIZE) of the sketch's own CDF.

        (The grid quantile at rank u is the smallest value whose sketch rank reaches u, so
        the share of grid ranks whose quantile is <= x is the sketch rank of x rounded to
        the grid.) Much cheaper than asking the sketch at many points.
        """
        return np.searchsorted(self.grid, points, side="right") / GRID_SIZE

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
    """Value counts of one categorical feature, with the part a bounded summary dropped.

    ``remainder`` is the number of non-missing values that are not among ``counts``
    (0 while the summary is exact). Tests that need every value to sum to ``count`` fold
    it into one "other" bucket.
    """

    __slots__ = ("stats", "count", "missing", "counts", "remainder", "is_exact", "error_bound")

    def __init__(self, stats: "CategoricalStats") -> None:
        self.stats = stats
        self.count = int(stats.count)
        self.missing = int(stats.missing)
        self.counts: dict[str, int] = {str(k): int(v) for k, v in stats.counts().items() if v > 0}
        self.remainder = max(self.count - sum(self.counts.values()), 0)
        self.is_exact = bool(getattr(stats, "is_exact", True))
        self.error_bound = int(getattr(stats, "error_bound", 0))


NumericInput = Union["NumericStats", NumericView]
CategoricalInput = Union["CategoricalStats", CategoricalView]


def numeric_view(stats: NumericInput) -> NumericView:
    """The view of ``stats`` (itself when it already is one)."""
    return stats if isinstance(stats, NumericView) else NumericView(stats)


def categorical_view(stats: CategoricalInput) -> CategoricalView:
    """The view of ``stats`` (itself when it already is one)."""
    return stats if isinstance(stats, CategoricalView) else CategoricalView(stats)
