"""TFDV's numeric histograms, rebuilt from a skewwatch :class:`~monitor.stats.NumericStats`.

What TFDV does (tfx-bsl ``weighted_quantiles_summary.h``; TFDV ``basic_stats_generator.py``
and ``utils/quantiles_util.py``, defaults of ``tfdv.StatsOptions``):

1. A weighted quantile summary of the values, asked for 1000 quantiles
   (``GenerateQuantilesAndCumulativeWeights``): for ``d_r = r * n / 1000``, r = 0..1000, the
   smallest value ``x_i`` whose cumulative count ``C_i > d_r`` (the largest value for
   r = 1000), together with ``C_i``. On an exact summary (distinct values with their counts)
   that rule is exactly the summary's midpoint walk.
2. A quantiles histogram over those 1001 boundaries: runs of equal upper bounds share their
   counts evenly and the smallest value's own count goes to the leading identical buckets.
3. The STANDARD histogram: 10 equal-width buckets over the dataset's *own* [min, max]; each
   collects the quantile buckets by linear overlap (a point bucket on an inner edge belongs to
   the bucket below). The QUANTILES histogram keeps every 100th boundary. The median is the
   middle one of the 1001 quantiles.

Exactness. While the summary is exact (``rank_error == 0``: at most ``bins`` distinct values) it
is rebuilt from every value and the histograms equal TFDV's bit for bit (tested against TFDV
itself). TFDV's own summary is exact up to a few thousand *distinct* values. Past ``bins`` values
the summary is rebuilt from :data:`ESTIMATE_POINTS` sketch quantiles, so each cumulative share
is off by at most :func:`cumulative_error` (the summary's ``rank_error``, a hard bound, plus the two
1/1000 interpolation steps and the 1/ESTIMATE_POINTS grid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from monitor.errors import StatisticsError
from monitor.stats import NumericStats

__all__ = [
    "NUM_HISTOGRAM_BUCKETS",
    "NUM_QUANTILES_HISTOGRAM_BUCKETS",
    "NUM_QUANTILES",
    "ESTIMATE_POINTS",
    "Bucket",
    "TfdvHistograms",
    "tfdv_histograms",
    "standard_histogram",
    "cumulative_error",
]

NUM_HISTOGRAM_BUCKETS = 10  # StatsOptions.num_histogram_buckets
NUM_QUANTILES_HISTOGRAM_BUCKETS = 10  # StatsOptions.num_quantiles_histogram_buckets
_QUANTILES_FACTOR = 100  # basic_stats_generator._NUM_QUANTILES_FACTOR_FOR_STD_HISTOGRAM
NUM_QUANTILES = _QUANTILES_FACTOR * NUM_QUANTILES_HISTOGRAM_BUCKETS
#: Sketch quantiles standing in for the values once the sketch is no longer exact.
ESTIMATE_POINTS = 10_000

Bucket = tuple[float, float, float]  # low_value, high_value, sample_count


@dataclass(frozen=True, slots=True)
class TfdvHistograms:
    """TFDV's view of one numeric feature: STANDARD and QUANTILES buckets and the median."""

    standard: tuple[Bucket, ...]
    quantiles: tuple[Bucket, ...]
    median: float


def _summary(stats: NumericStats) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and their cumulative counts (exact while the sketch is exact)."""
    n = stats.count
    m = n if stats.rank_error == 0.0 else min(n, ESTIMATE_POINTS)
    xs = np.asarray(stats.quantiles((np.arange(m) + 0.5) / m), dtype=np.float64)  # the (i+1)-th smallest
    values, counts = np.unique(xs, return_counts=True)
    weights = counts.astype(np.float64) if m == n else counts * (n / m)
    return values, np.cumsum(weights)


def _quantiles(values: np.ndarray, cum: np.ndarray, num: int) -> tuple[np.ndarray, np.ndarray]:
    """``GenerateQuantilesAndCumulativeWeights(num)`` of the summary (same float arithmetic)."""
    d = (np.arange(num + 1, dtype=np.float64) * cum[-1]) / num
    idx = np.minimum(np.searchsorted(cum, d, side="right"), len(cum) - 1)
    return values[idx], cum[idx]


def _bin_weights(bounds: np.ndarray, cum: np.ndarray) -> list[Bucket]:
    """The quantiles histogram over ``bounds`` (quantiles_util._get_bin_weights)."""
    low, high = bounds[:-1].tolist(), bounds[1:].tolist()
    counts = np.diff(cum).tolist()
    i, size = 0, len(low)
    while i < size:  # runs of equal upper bounds share their counts evenly
        j = i + 1
        while j < size and high[j] == high[i]:
            j += 1
        if j > i + 1:
            share = sum(counts[i:j]) / (j - i)
            counts[i:j] = [share] * (j - i)
        i = j
    lead = 1
    while lead < size and low[lead] == low[0] and high[lead] == high[0]:
        lead += 1
    for b in range(lead):  # the smallest value's own count
        counts[b] += float(cum[0]) / lead
    return list(zip(low, high, counts))


def _overlap(bucket: Bucket, lo: float, hi: float, first: bool) -> tuple[float, bool, bool]:
    """Share of ``bucket`` in [lo, hi]; whether it lies wholly before / after (quantiles_util._overlap)."""
    b_lo, b_hi, _ = bucket
    if b_lo == b_hi == lo:
        return (1.0, False, False) if first else (0.0, True, False)
    if b_hi < lo:
        return 0.0, True, False
    if b_lo > hi:
        return 0.0, False, True
    if lo <= b_lo and hi >= b_hi:
        return 1.0, False, False
    if lo <= b_lo:
        return (hi - b_lo) / (b_hi - b_lo), False, False
    if hi >= b_hi:
        return (b_hi - lo) / (b_hi - b_lo), False, False
    return (hi - lo) / (b_hi - b_lo), False, False


def _equi_width(buckets: list[Bucket], lo: float, hi: float, num: int) -> list[Bucket]:
    """generate_equi_width_histogram for finite values (one bucket when lo == hi)."""
    edges = [lo, hi] if lo == hi else np.linspace(lo, hi, num + 1).tolist()
    out: list[Bucket] = []
    start = 0
    for i in range(len(edges) - 1):
        total = 0.0
        for k in range(start, len(buckets)):
            share, precedes, follows = _overlap(buckets[k], edges[i], edges[i + 1], i == 0)
            if follows:
                break
            if precedes:
                start = k
            total += share * buckets[k][2]
        out.append((edges[i], edges[i + 1], total))
    return out


def tfdv_histograms(stats: NumericStats) -> TfdvHistograms:
    """TFDV's STANDARD and QUANTILES histograms and median of ``stats`` (empty, NaN without values)."""
    if not isinstance(stats, NumericStats):
        raise StatisticsError(f"expected NumericStats, got {type(stats).__name__}")
    if stats.count == 0:
        return TfdvHistograms(standard=(), quantiles=(), median=math.nan)
    values, cum = _summary(stats)
    q, c = _quantiles(values, cum, NUM_QUANTILES)
    standard = _equi_width(_bin_weights(q, c), stats.min, stats.max, NUM_HISTOGRAM_BUCKETS)
    step = _QUANTILES_FACTOR
    coarse = _bin_weights(np.concatenate([q[:1], q[step::step]]), np.concatenate([c[:1], c[step::step]]))
    return TfdvHistograms(standard=tuple(standard), quantiles=tuple(coarse), median=float(q[len(q) // 2]))


def standard_histogram(stats: NumericStats) -> tuple[Bucket, ...]:
    """TFDV's STANDARD histogram of ``stats``: (low, high, count) of 10 equal-width buckets."""
    return tfdv_histograms(stats).standard


def cumulative_error(stats: NumericStats) -> float:
    """Largest error of any cumulative share of :func:`standard_histogram` against TFDV on the raw
    values: 0.0 while the sketch is exact, else rank error + 2/NUM_QUANTILES + 1/ESTIMATE_POINTS."""
    if stats.count == 0 or stats.rank_error == 0.0:
        return 0.0
    return float(stats.rank_error) + 2.0 / NUM_QUANTILES + 1.0 / ESTIMATE_POINTS
