"""TFDV's skew/drift comparator values from skewwatch statistics, without TFDV.

* :func:`linf_tfdv` is TFDV's ``infinity_norm``: ``max_v |p_ref(v) - p_cur(v)|`` over the union
  of values, each side's shares taken from its own rank histogram (the top 1000 values).
* :func:`jsd_tfdv` is TFDV's ``jensen_shannon_divergence`` for numeric features
  (``anomalies/metrics.cc``): both STANDARD histograms (see :mod:`monitor.tfdv.histograms`) are
  re-bucketed onto the union of their boundaries assuming uniform mass inside a bucket, point
  buckets are kept as separate buckets, then JSD = (KL(P||M) + KL(Q||M)) / 2 in bits, capped at 1.
  Because the 10 buckets span each dataset's own [min, max], this follows the *range*: one
  outlier row stretches the buckets and moves it a lot.

Both are pure functions with keyword-only ``reference=``/``current=`` returning a
:class:`~monitor.compare.TestResult` (statistic = effect = the value, no p-value). skewwatch's
statistics carry no NaN or infinite values inside their sketches (missing and non-finite values
are counted apart), so TFDV's NaN and infinite buckets never occur here.

Sketch error. With exact sketches (``rank_error == 0``) ``jsd_tfdv`` equals TFDV's value (bit for
bit on the bike data). Otherwise each cumulative share of a STANDARD histogram is within
:func:`~monitor.tfdv.histograms.cumulative_error` of TFDV's (the summary's ``rank_error``, a hard
bound, plus 0.002), and ``details["error_bound"]`` turns that into a guaranteed bound on the JSD
(:func:`jsd_error_bound`). That bound is worst-case and loose. For numbers that must
equal TFDV's on a feature with more distinct values than the profile's ``bins``, build the
profiles with ``bins`` above the distinct count or pass TFDV's own baseline statistics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from monitor.compare.results import TestResult
from monitor.errors import StatisticsError
from monitor.stats import CategoricalStats, NumericStats
from monitor.tfdv.histograms import Bucket, cumulative_error, standard_histogram

__all__ = ["NUM_RANK_HISTOGRAM_BUCKETS", "LINF_TFDV", "JSD_TFDV", "ranked_counts", "linf_tfdv", "jsd_tfdv",
           "jsd_error_bound"]

NUM_RANK_HISTOGRAM_BUCKETS = 1000  # StatsOptions.num_rank_histogram_buckets
#: Stable test names (members of monitor.compare.TestName).
LINF_TFDV = "linf_tfdv"
JSD_TFDV = "jsd_tfdv"


def _utf8(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")


def ranked_counts(stats: CategoricalStats) -> list[tuple[str, int]]:
    """Values by count, descending, ties by value descending (the order of TFDV's top values)."""
    return sorted(stats.counts().items(), key=lambda kv: (kv[1], _utf8(kv[0])), reverse=True)


def _counts(side: CategoricalStats | Mapping[str, float], name: str) -> dict[str, float]:
    if isinstance(side, CategoricalStats):
        return {k: float(c) for k, c in ranked_counts(side)[:NUM_RANK_HISTOGRAM_BUCKETS]}
    if not isinstance(side, Mapping):
        raise StatisticsError(f"{name}: expected CategoricalStats or a mapping of counts, got {type(side).__name__}")
    out = {}
    for key, count in side.items():
        c = float(count) if isinstance(count, (int, float)) and not isinstance(count, bool) else math.nan
        if not isinstance(key, str) or not (c >= 0 and math.isfinite(c)):
            raise StatisticsError(f"{name}: counts must map str to finite numbers >= 0, got {key!r}: {count!r}")
        if c > 0:
            out[key] = c
    return out


def linf_tfdv(*, reference: CategoricalStats | Mapping[str, float],
              current: CategoricalStats | Mapping[str, float]) -> TestResult:
    """TFDV's ``infinity_norm`` value between two categorical summaries (or value -> count maps).

    Details: ``value``, the value whose share moved most (TFDV names it; on ties the greatest in
    UTF-8 order, as TFDV's ``>=`` scan over a sorted map). An empty side gives 0 with a note
    (TFDV reports nothing then).
    """
    ref, cur = _counts(reference, "reference"), _counts(current, "current")
    t_ref, t_cur = sum(ref.values()), sum(cur.values())
    n_ref, n_cur = round(t_ref), round(t_cur)
    if not ref or not cur:
        return TestResult(test=LINF_TFDV, statistic=0.0, p_value=None, effect=0.0, n_reference=n_ref,
                          n_current=n_cur, note="empty window: TFDV reports no value")
    best_key, best = "", 0.0
    for key in sorted(set(ref) | set(cur), key=_utf8):
        diff = abs(ref.get(key, 0.0) / t_ref - cur.get(key, 0.0) / t_cur)
        if diff >= best:
            best_key, best = key, diff
    return TestResult(test=LINF_TFDV, statistic=best, p_value=None, effect=best, n_reference=n_ref,
                      n_current=n_cur, details=(("value", best_key),))


def _rebucket(edges: list[float], buckets: list[Bucket]) -> list[float]:
    """Counts of ``buckets`` over ``edges`` (a superset of their bounds), uniform inside a bucket."""
    out: list[float] = []
    idx = 0
    for lo, hi, count in buckets:
        while lo > edges[idx]:
            out.append(0.0)
            idx += 1
        covered = []
        while hi > edges[idx]:
            covered.append(edges[idx])
            idx += 1
        covered.append(edges[idx])
        out.extend((covered[j + 1] - covered[j]) / (hi - lo) * count for j in range(len(covered) - 1))
    out.extend(0.0 for _ in range(idx, len(edges) - 1))
    return out


def _aligned(h1: tuple[Bucket, ...], h2: tuple[Bucket, ...]) -> tuple[list[float], list[float]]:
    """metrics.cc AlignHistograms for finite histograms without NaN: common buckets, then points."""
    def split(h: tuple[Bucket, ...]) -> tuple[list[Bucket], dict[float, float]]:
        points: dict[float, float] = {}
        for lo, hi, c in h:
            if lo == hi:
                points[lo] = points.get(lo, 0.0) + c
        return [b for b in h if b[0] != b[1]], points

    (b1, p1), (b2, p2) = split(h1), split(h2)
    e1, e2 = {v for b in b1 for v in b[:2]}, {v for b in b2 for v in b[:2]}
    if e1 != e2:
        edges = sorted(e1 | e2)
        c1, c2 = _rebucket(edges, b1), _rebucket(edges, b2)
    else:
        c1, c2 = [b[2] for b in b1], [b[2] for b in b2]
    for point in sorted(set(p1) | set(p2)):
        c1.append(p1.get(point, 0.0))
        c2.append(p2.get(point, 0.0))
    return c1, c2


def _kl_to_mid(p: list[float], m: list[float]) -> float:
    return sum(a * math.log2(a / b) for a, b in zip(p, m) if a > 0 and b > 0)


def _jsd(h1: tuple[Bucket, ...], h2: tuple[Bucket, ...]) -> float:
    c1, c2 = _aligned(h1, h2)
    t1, t2 = sum(c1), sum(c2)
    p, q = [c / t1 for c in c1], [c / t2 for c in c2]
    m = [(a + b) / 2 for a, b in zip(p, q)]
    return min((_kl_to_mid(p, m) + _kl_to_mid(q, m)) / 2, 1.0)


def _check_numeric(reference: object, current: object) -> None:
    for side in (reference, current):
        if not isinstance(side, NumericStats):
            raise StatisticsError(f"expected NumericStats, got {type(side).__name__}")


def _g(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-bucket JSD term: (a log2(2a/(a+b)) + b log2(2b/(a+b))) / 2, with 0 log 0 = 0."""
    s = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        ta = np.where(a > 0, a * np.log2(np.where(a > 0, 2 * a / s, 1.0)), 0.0)
        tb = np.where(b > 0, b * np.log2(np.where(b > 0, 2 * b / s, 1.0)), 0.0)
    return (ta + tb) / 2


def _radii(stats: NumericStats, hist: tuple[Bucket, ...]) -> tuple[Bucket, ...]:
    """How far each STANDARD bucket count may be from TFDV's: the cumulative count at each inner
    edge is off by at most cumulative_error * n (the outer edges are exact: min and max are)."""
    e = cumulative_error(stats) * stats.count
    last = len(hist) - 1
    return tuple((lo, hi, e * ((i > 0) + (i < last))) for i, (lo, hi, _) in enumerate(hist))


def _bound(h1: tuple[Bucket, ...], h2: tuple[Bucket, ...], reference: NumericStats, current: NumericStats,
           value: float) -> float:
    # The aligned bucket shares are linear in the bucket counts, so each lies in an interval.
    # JSD is a sum of per-bucket terms g(a, b), each convex: its maximum over a box is at a
    # corner; its minimum is 0 when the box meets a = b, else at the corner nearest to it (g
    # grows with |a - b|). Summing them ignores that shares add up to 1, so this over-covers.
    if cumulative_error(reference) == 0.0 and cumulative_error(current) == 0.0:
        return 0.0
    c1, c2 = (np.asarray(c) for c in _aligned(h1, h2))
    r1, r2 = (np.asarray(r) for r in _aligned(_radii(reference, h1), _radii(current, h2)))
    t1, t2 = c1.sum(), c2.sum()
    a_lo, a_hi = np.maximum(c1 - r1, 0.0) / t1, (c1 + r1) / t1
    b_lo, b_hi = np.maximum(c2 - r2, 0.0) / t2, (c2 + r2) / t2
    hi = np.max([_g(a, b) for a in (a_lo, a_hi) for b in (b_lo, b_hi)], axis=0).sum()
    apart = (a_lo > b_hi) | (b_lo > a_hi)
    nearest = np.where(a_lo > b_hi, _g(a_lo, b_hi), _g(a_hi, b_lo))
    lo = np.where(apart, nearest, 0.0).sum()
    return float(max(min(hi, 1.0) - value, value - lo, 0.0))


def jsd_error_bound(*, reference: NumericStats, current: NumericStats) -> float:
    """Largest possible |jsd_tfdv - TFDV's JSD of the raw values| given the sketches' rank error
    (99% confidence per sketch); 0.0 when both sketches are exact."""
    _check_numeric(reference, current)
    if reference.count == 0 or current.count == 0:
        return 0.0
    h1, h2 = standard_histogram(reference), standard_histogram(current)
    return _bound(h1, h2, reference, current, _jsd(h1, h2))


def jsd_tfdv(*, reference: NumericStats, current: NumericStats) -> TestResult:
    """TFDV's ``jensen_shannon_divergence`` value (bits, in [0, 1]) between two numeric sketches.

    Details: ``error_bound`` (:func:`jsd_error_bound`; 0.0 when both sketches are exact, and then
    the value equals TFDV's). An empty side gives 0 with a note (TFDV reports nothing then).
    """
    _check_numeric(reference, current)
    n_ref, n_cur = reference.count, current.count
    if n_ref == 0 or n_cur == 0:
        return TestResult(test=JSD_TFDV, statistic=0.0, p_value=None, effect=0.0, n_reference=n_ref,
                          n_current=n_cur, note="empty window: TFDV reports no value")
    h1, h2 = standard_histogram(reference), standard_histogram(current)
    value = _jsd(h1, h2)
    return TestResult(test=JSD_TFDV, statistic=value, p_value=None, effect=value, n_reference=n_ref,
                      n_current=n_cur, details=(("error_bound", _bound(h1, h2, reference, current, value)),))
