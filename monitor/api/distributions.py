"""Reference vs window distributions of one feature, as the dashboard draws them.

Numeric features: shares in equal-width bins over the central range of both sides (0.5% to
99.5%, so one outlier does not squash the picture; the shares below and above are given), and
both CDFs on a common grid. Categorical features: the shares of the values that matter most on
either side, the rest pooled, the missing share, and which values the reference never saw.
Everything comes from the stored mergeable statistics; nothing re-reads rows.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from monitor.api.bounded import clip
from monitor.stats import CategoricalStats, NumericStats

__all__ = ["NumericSide", "NumericDistribution", "CategoryShare", "CategoricalDistribution",
           "numeric_distribution", "categorical_distribution"]

BINS = 30
GRID = 101
TOP = 20


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _f(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


class NumericSide(_Out):
    count: int
    missing: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    shares: list[float] | None  # per bin, of the side's values
    below: float | None  # share below the first edge
    above: float | None  # share above the last edge
    cdf: list[float] | None  # at each grid point


class NumericDistribution(_Out):
    kind: Literal["numeric"] = "numeric"
    edges: list[float]
    grid: list[float]
    reference: NumericSide
    window: NumericSide


def _side(s: NumericStats, edges: np.ndarray, grid: np.ndarray) -> NumericSide:
    if s.count == 0:
        return NumericSide(count=0, missing=s.missing, mean=None, std=None, min=None, max=None, shares=None,
                           below=None, above=None, cdf=None)
    counts = s.histogram(edges) if len(edges) >= 2 else np.zeros(0)
    ends = s.cdf([edges[0], edges[-1]])
    below = float(s.cdf([np.nextafter(edges[0], -np.inf)])[0])  # strictly below the first edge
    return NumericSide(
        count=s.count, missing=s.missing, mean=_f(s.mean), std=_f(s.std), min=_f(s.min), max=_f(s.max),
        shares=[float(c) / s.count for c in counts], below=below, above=float(1.0 - ends[1]),
        cdf=[float(v) for v in np.nan_to_num(s.cdf(grid), nan=0.0)],
    )


_BIG = np.finfo(np.float64).max


def _spaced(lo: float, hi: float, n: int) -> np.ndarray:
    """``n`` evenly spaced points from ``lo`` to ``hi``, distinct and increasing, for any finite ends: a
    weighted mean of the ends, where ``np.linspace`` steps by ``hi - lo`` (inf for ends past +-9e307, which
    made NaN edges, and the histogram refuse them); fewer points where the range holds fewer floats."""
    if math.isfinite(hi - lo):
        points = np.unique(np.linspace(lo, hi, n))
    else:
        f = np.linspace(0.0, 1.0, n)
        points = np.unique(np.clip(lo * (1.0 - f) + hi * f, lo, hi))
    return points if points.shape[0] >= 2 else np.array([lo, np.nextafter(lo, np.inf)])


def numeric_distribution(reference: NumericStats, window: NumericStats, *, bins: int = BINS) -> NumericDistribution:
    sides = [s for s in (reference, window) if s.count > 0]
    if not sides:
        edges = np.asarray([0.0, 1.0])
    else:
        lo = min(float(s.quantiles([0.005])[0]) for s in sides)
        hi = max(float(s.quantiles([0.995])[0]) for s in sides)
        if not hi > lo:  # constant data: one bin around the value
            pad = max(abs(lo) * 0.05, 0.5)
            lo, hi = max(lo - pad, -_BIG), min(hi + pad, _BIG)
        edges = _spaced(lo, hi, bins + 1)
    grid = _spaced(float(edges[0]), float(edges[-1]), GRID)
    return NumericDistribution(edges=[float(e) for e in edges], grid=[float(g) for g in grid],
                               reference=_side(reference, edges, grid), window=_side(window, edges, grid))


class CategoryShare(_Out):
    value: str
    reference: float | None
    window: float | None
    unseen: bool  # in the window but never in the reference


class CategoricalDistribution(_Out):
    kind: Literal["categorical"] = "categorical"
    categories: list[CategoryShare]
    reference_count: int
    window_count: int
    reference_distinct: float
    window_distinct: float
    exact: bool  # False once either side's counts are sketch estimates


def categorical_distribution(reference: CategoricalStats, window: CategoricalStats, *, top: int = TOP,
                             max_chars: int = 256) -> CategoricalDistribution:
    rc, wc = reference.counts(), window.counts()
    rt, wt = reference.count + reference.missing, window.count + window.missing

    def share(counts: dict[str, int], value: str, total: int) -> float | None:
        return counts.get(value, 0) / total if total else None

    ranked = sorted(set(rc) | set(wc), key=lambda v: (-max(share(rc, v, rt) or 0.0, share(wc, v, wt) or 0.0), v))
    shown, rest = ranked[:top], ranked[top:]
    out = [CategoryShare(value=clip(v, max_chars) or "", reference=share(rc, v, rt), window=share(wc, v, wt),
                         unseen=v not in rc and v in wc) for v in shown]
    if rest:
        out.append(CategoryShare(value="(other values)", reference=sum(rc.get(v, 0) for v in rest) / rt if rt else None,
                                 window=sum(wc.get(v, 0) for v in rest) / wt if wt else None, unseen=False))
    out.append(CategoryShare(value="(missing)", reference=reference.missing / rt if rt else None,
                             window=window.missing / wt if wt else None, unseen=False))
    return CategoricalDistribution(categories=out, reference_count=reference.count, window_count=window.count,
                                   reference_distinct=reference.distinct_estimate,
                                   window_distinct=window.distinct_estimate,
                                   exact=reference.is_exact and window.is_exact)
