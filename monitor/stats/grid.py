"""A deterministic, mergeable histogram of float64 values on a fixed log-linear grid.

The grid. Doubles are mapped to a signed 64-bit *key* that sorts like the values (the IEEE
bits for ``x >= 0``, their negation for ``x < 0``, so ``-0.0`` and ``+0.0`` share key 0). A bucket at *shift* ``s`` is ``key >> s``: at ``s = 0`` every bucket is one exact
value; each step up merges neighbouring buckets in pairs, so a bucket at shift ``s`` keeps the
exponent and the top ``52 - s`` mantissa bits of its values, a relative width of at most
``2**(s - 52)`` (HDR Histogram's log-linear buckets, Tene 2012, and DDSketch's relative
accuracy, Masson, Rim and Lee 2019, with the float's own bits as the index). The grid is the
same for every sketch, so any two are merged bucket by bucket.

The sketch holds at most ``bins`` buckets at the *finest* shift where the values fit. That
shift depends only on the set of distinct values, and the occupancy of a subset never exceeds
the occupancy of the whole at any shift, so merging partial sketches (taking the coarser shift,
adding counts, coarsening until ``bins`` fit) gives exactly the sketch of all values at once,
in any order and grouping. Small data (up to ``bins`` distinct values: windows of a few
thousand rows, hours, counts) stays exact.

Each bucket keeps its count, its smallest and largest value, and how many values equal each of
those two (a point mass at either end). So a bucket of one or two distinct values is exact (a
spike at zero, a top-coded maximum, an integer column once buckets hold two integers), and only
the values strictly inside a bucket are placed by linear interpolation. The CDF is therefore off
by at most the largest such inside mass (:func:`rank_error`); it is exact at every bucket end.

The same machinery buckets categorical values beyond their capacity (keys = a 64-bit hash of
the value; :mod:`monitor.stats.categorical`): there the two ends carry *tags*, the values'
names, so a bucket of one or two names still knows their exact counts.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from monitor.errors import StatisticsError
from monitor.stats.codec import Reader, pack_uints

try:
    from monitor.stats._exact import buckets as _native_buckets
except ImportError:  # built by `make install`; optional: numpy_from_sorted_keys gives the same buckets
    _native_buckets = None

__all__ = ["Buckets", "Shape", "EMPTY", "MAX_SHIFT", "keys_of", "values_of", "empty", "exact", "from_values",
           "from_sorted_keys", "numpy_from_sorted_keys", "coarsen", "union", "fit", "rank_error", "validate", "encode",
           "decode"]

_LOW63 = np.int64(0x7FFFFFFFFFFFFFFF)
_SIGN = np.int64(-0x8000000000000000)
MAX_SHIFT = 63
_HEAD = struct.Struct("<BI")
_FIRST = struct.Struct("<q")
_MAX_BUCKETS = 1 << 26


def keys_of(x: np.ndarray) -> np.ndarray:
    """Monotone int64 keys of finite float64 values: the IEEE bits for ``x >= 0``, their negation
    for ``x < 0`` (so ``-0.0`` and ``+0.0`` share key 0)."""
    bits = x.view(np.int64)
    if bits.shape[0] and int(bits.min()) >= 0:  # no sign bit set (no negative value, no -0.0)
        return bits.copy()
    sign = bits >> 63  # 0 or -1
    out = bits & _LOW63
    out ^= sign
    out -= sign
    return out


def values_of(keys: np.ndarray) -> np.ndarray:
    """The float64 values of keys (``-0.0`` comes back as ``+0.0``)."""
    k = np.asarray(keys, dtype=np.int64)
    sign = k >> 63
    return (((k ^ sign) - sign) | (sign & _SIGN)).view(np.float64)


@dataclass(frozen=True, slots=True, eq=False)
class Buckets:
    """Buckets sorted by id: ``ids = key >> shift``; per bucket the count ``cnt``, the keys of
    the smallest and largest value (``lo``, ``hi``) and how many values equal them (``nlo``,
    ``nhi``). A bucket of one distinct key has ``lo == hi``, ``nlo == cnt``, ``nhi == 0``.
    ``lo_tag``/``hi_tag`` (object arrays, or None) name the two end values: the smallest tag of
    the smallest key and the largest tag of the largest key."""

    shift: int
    ids: np.ndarray
    cnt: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    nlo: np.ndarray
    nhi: np.ndarray
    lo_tag: np.ndarray | None = None
    hi_tag: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def total(self) -> int:
        return int(self.cnt.sum()) if len(self) else 0

    def same(self, other: "Buckets") -> bool:
        if self.shift != other.shift or not all(np.array_equal(a, b) for a, b in zip(self.arrays(), other.arrays())):
            return False
        if (self.lo_tag is None) != (other.lo_tag is None):
            return False
        return self.lo_tag is None or (self.lo_tag.tolist() == other.lo_tag.tolist()
                                       and self.hi_tag.tolist() == other.hi_tag.tolist())  # type: ignore[union-attr]

    def arrays(self) -> tuple[np.ndarray, ...]:
        return (self.ids, self.cnt, self.lo, self.hi, self.nlo, self.nhi)

    def with_shift(self, shift: int, ids: np.ndarray, pick_lo: np.ndarray, pick_hi: np.ndarray, cnt: np.ndarray,
                   nlo: np.ndarray, nhi: np.ndarray) -> "Buckets":
        """New buckets whose ends are ``self``'s ends at ``pick_lo``/``pick_hi`` (tags follow)."""
        tags = (None, None) if self.lo_tag is None else (self.lo_tag[pick_lo], self.hi_tag[pick_hi])  # type: ignore[index]
        return Buckets(shift, ids, cnt, self.lo[pick_lo], self.hi[pick_hi], nlo, nhi, *tags)


def _empty_i64() -> np.ndarray:
    return np.empty(0, dtype=np.int64)


def empty(shift: int = 0, *, tagged: bool = False) -> Buckets:
    tags = (np.empty(0, dtype=object), np.empty(0, dtype=object)) if tagged else (None, None)
    return Buckets(shift, *(_empty_i64() for _ in range(6)), *tags)


EMPTY = empty()


def exact(keys: np.ndarray, counts: np.ndarray, tags: np.ndarray | None = None) -> Buckets:
    """Shift-0 buckets of sorted distinct keys with their counts (and tags)."""
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    counts = np.ascontiguousarray(counts, dtype=np.int64)
    return Buckets(0, keys, counts, keys, keys, counts, np.zeros_like(counts), tags, tags)


def from_values(x: np.ndarray, shift: int = 0, bins: int | None = None) -> Buckets:
    """Buckets of finite float64 values (any order) at ``shift``, or, given ``bins``, at the finest
    shift >= ``shift`` where at most ``bins`` buckets remain."""
    k = keys_of(x)
    k.sort()
    return from_sorted_keys(k, shift, bins)


def _fitting_shift(k: np.ndarray, shift: int, bins: int) -> int:
    """The finest shift >= ``shift`` at which sorted keys ``k`` occupy at most ``bins`` buckets.

    Occupancy falls as the shift grows. A shift whose keys span at most ``bins - 2`` buckets surely
    fits (the upper end). From there the search steps down 6 shifts at a time: a bucket splits into
    at most 64 at 6 shifts finer, so the first shift that does not fit holds at most ``64 * bins``
    distinct buckets, and those (which answer every coarser shift) replace ``k`` for the binary
    search that finishes the job. So ``k`` itself is scanned once or twice, not log2(64) times.
    """
    n = k.shape[0]
    span = int(k[-1]) - int(k[0])
    hi = shift
    while (span >> hi) + 2 > bins:
        hi += 1
    if n <= bins or hi == shift:
        return shift

    def occupancy(ids: np.ndarray) -> tuple[int, np.ndarray]:
        change = ids[1:] != ids[:-1]
        return 1 + int(np.count_nonzero(change)), change

    cur, cur_shift, lo = k, 0, shift  # the answer lies in [lo, hi]; cur holds ids at cur_shift
    while hi > lo:  # gallop down from the sure fit
        probe = max(lo, hi - 6)
        ids = cur >> (probe - cur_shift) if probe > cur_shift else cur
        occ, change = occupancy(ids)
        if occ <= bins:
            hi = probe
            continue
        lo = probe + 1
        cur, cur_shift = ids[np.concatenate(([True], change))], probe
        break
    while lo < hi:
        mid = (lo + hi) // 2
        ids = cur >> (mid - cur_shift)
        occ, change = occupancy(ids)
        if occ <= bins:
            hi = mid
        else:
            lo = mid + 1
            cur, cur_shift = ids[np.concatenate(([True], change))], mid
    return lo


def from_sorted_keys(k: np.ndarray, shift: int = 0, bins: int | None = None, *, counts: np.ndarray | None = None,
                     tags: np.ndarray | None = None) -> Buckets:
    """Buckets of sorted keys (see :func:`from_values`). ``counts``: each key stands for that many
    values (default 1); ``tags``: a name per key (keys sorted by key, then tag). Plain keys take
    one compiled pass when ``monitor.stats._exact`` is built (the same buckets as numpy's)."""
    n = k.shape[0]
    if n == 0:
        return empty(shift, tagged=tags is not None)
    if _native_buckets is not None and counts is None and tags is None and k.dtype == np.int64:
        out = np.empty((6, n if bins is None else min(n, bins)), dtype=np.int64)
        shift, m = _native_buckets(np.ascontiguousarray(k), shift, 0 if bins is None else bins, out)
        ids, cnt, lo, hi, nlo, nhi = out[:, :m].copy()  # a (6, m) copy: the buckets do not keep the (6, n) block
        return Buckets(shift, ids, cnt, lo, hi, nlo, nhi)
    return numpy_from_sorted_keys(k, shift, bins, counts=counts, tags=tags)


def numpy_from_sorted_keys(k: np.ndarray, shift: int = 0, bins: int | None = None, *,
                           counts: np.ndarray | None = None, tags: np.ndarray | None = None) -> Buckets:
    """:func:`from_sorted_keys` with numpy (any ``counts`` and ``tags``)."""
    n = k.shape[0]
    if n == 0:
        return empty(shift, tagged=tags is not None)
    if bins is not None:
        shift = _fitting_shift(k, shift, bins)
    ids = k >> shift if shift else k
    starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
    ends = np.append(starts[1:], n) - 1
    if counts is None:
        cum = None
        cnt = np.diff(np.append(starts, n)).astype(np.int64)
    else:
        cum = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
        cnt = cum[ends + 1] - cum[starts]
    lo, hi = k[starts], k[ends]
    lo_tag = None if tags is None else tags[starts]
    hi_tag = None if tags is None else tags[ends]
    if shift == 0 and tags is None:
        return exact(lo, cnt)
    lo_end = np.searchsorted(k, lo, side="right")  # one past the run of the smallest key
    hi_start = np.searchsorted(k, hi, side="left")
    if cum is None:
        nlo = (lo_end - starts).astype(np.int64)
        nhi = (ends + 1 - hi_start).astype(np.int64)
    else:
        nlo = cum[lo_end] - cum[starts]
        nhi = cum[ends + 1] - cum[hi_start]
    point = lo == hi
    return Buckets(shift, ids[starts], cnt, lo, hi, np.where(point, cnt, nlo), np.where(point, 0, nhi), lo_tag, hi_tag)


def coarsen(b: Buckets, shift: int) -> Buckets:
    """The same values at a coarser ``shift`` (>= ``b.shift``)."""
    if shift < b.shift:
        raise StatisticsError(f"cannot refine buckets from shift {b.shift} to {shift}")
    if shift == b.shift:
        return b
    ids = b.ids >> (shift - b.shift)
    starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1]))) if len(b) else _empty_i64()
    if starts.shape[0] == ids.shape[0]:  # nothing merges
        return Buckets(shift, ids, b.cnt, b.lo, b.hi, b.nlo, b.nhi, b.lo_tag, b.hi_tag)
    ends = np.append(starts[1:], ids.shape[0]) - 1
    cnt = np.add.reduceat(b.cnt, starts)
    top_of_last = np.where(b.lo[ends] == b.hi[ends], b.cnt[ends], b.nhi[ends])
    nhi = np.where(starts == ends, b.nhi[starts], top_of_last)  # a merged group spans lo < hi
    return b.with_shift(shift, ids[starts], starts, ends, cnt, b.nlo[starts], nhi)


def union(a: Buckets, b: Buckets) -> Buckets:
    """Buckets of the values of both (brought to the coarser shift first)."""
    shift = max(a.shift, b.shift)
    a, b = coarsen(a, shift), coarsen(b, shift)
    if len(a) == 0 or len(b) == 0:
        return a if len(b) == 0 else b
    ids = np.concatenate((a.ids, b.ids))
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    cnt, lo, hi, nlo, nhi = (np.concatenate((x, y))[order] for x, y in zip(a.arrays()[1:], b.arrays()[1:]))
    tagged = a.lo_tag is not None
    if tagged:
        lo_tag = np.concatenate((a.lo_tag, b.lo_tag))[order]  # type: ignore[arg-type]
        hi_tag = np.concatenate((a.hi_tag, b.hi_tag))[order]  # type: ignore[arg-type]
    first = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
    if first.shape[0] == ids.shape[0]:
        return Buckets(shift, ids, cnt, lo, hi, nlo, nhi, *((lo_tag, hi_tag) if tagged else (None, None)))
    size = np.diff(np.append(first, ids.shape[0]))  # 1 or 2: each side's ids are unique
    i = first
    two = size == 2
    j = np.where(two, first + 1, first)
    top = np.where(lo == hi, cnt, nhi)
    g_lo = np.minimum(lo[i], lo[j])
    g_hi = np.maximum(hi[i], hi[j])
    g_cnt = cnt[i] + np.where(two, cnt[j], 0)
    i_lo, j_lo = lo[i] == g_lo, two & (lo[j] == g_lo)
    i_hi, j_hi = hi[i] == g_hi, two & (hi[j] == g_hi)
    g_nlo = np.where(i_lo, nlo[i], 0) + np.where(j_lo, nlo[j], 0)
    g_nhi = np.where(i_hi, top[i], 0) + np.where(j_hi, top[j], 0)
    point = g_lo == g_hi
    g_nlo = np.where(point, g_cnt, g_nlo)
    g_nhi = np.where(point, 0, g_nhi)
    tags: tuple = (None, None)
    if tagged:
        # the smallest tag among the sides holding the smallest key; the largest for the largest
        t_lo = np.where(i_lo & j_lo, np.minimum(lo_tag[i], lo_tag[j]), np.where(i_lo, lo_tag[i], lo_tag[j]))
        t_hi = np.where(i_hi & j_hi, np.maximum(hi_tag[i], hi_tag[j]), np.where(i_hi, hi_tag[i], hi_tag[j]))
        tags = (t_lo.astype(object), t_hi.astype(object))
    return Buckets(shift, ids[i], g_cnt, g_lo, g_hi, g_nlo, g_nhi, *tags)


def _occupancy(ids: np.ndarray, d: int) -> int:
    coarse = ids >> d
    return 1 + int(np.count_nonzero(coarse[1:] != coarse[:-1])) if coarse.shape[0] else 0


def fit(b: Buckets, bins: int) -> Buckets:
    """Coarsen ``b`` to the finest shift (>= its own) at which at most ``bins`` buckets remain."""
    if len(b) <= bins:
        return b
    lo, hi = 1, MAX_SHIFT - b.shift  # at MAX_SHIFT only the two signs remain: 2 <= bins buckets
    while lo < hi:
        mid = (lo + hi) // 2
        if _occupancy(b.ids, mid) <= bins:
            hi = mid
        else:
            lo = mid + 1
    return coarsen(b, b.shift + lo)


# -- queries -----------------------------------------------------------------------------------------
class Shape:
    """Float views of buckets for queries: ends, point masses and the mass strictly inside."""

    __slots__ = ("lo", "hi", "nlo", "nhi", "mid", "before", "total", "at_lo", "full", "inv_width", "odd", "width",
                 "minimum", "maximum", "memo")

    def __init__(self, b: Buckets) -> None:
        self.lo = values_of(b.lo)
        self.hi = values_of(b.hi)
        self.nlo = b.nlo.astype(np.float64)
        self.nhi = b.nhi.astype(np.float64)
        cnt = b.cnt.astype(np.float64)
        self.mid = cnt - self.nlo - self.nhi
        ends = np.cumsum(b.cnt)
        self.before = (ends - b.cnt).astype(np.float64)
        self.total = float(ends[-1]) if ends.shape[0] else 0.0
        self.at_lo = self.before + self.nlo  # values <= a bucket's smallest value
        self.full = self.before + cnt  # values <= its largest
        with np.errstate(over="ignore", divide="ignore"):
            width = self.hi - self.lo
            inv = 1.0 / np.where(width > 0, width, 1.0)
            plain = np.isfinite(width) & (width > 0) & np.isfinite(inv)
            self.inv_width = np.where(plain, inv, 0.0)
        # the buckets whose share cannot be (t - lo) * (1 / width): between two subnormals, where 1 / width
        # overflows (0 * inf is NaN); rare, so the common case keeps one multiplication. (No bucket is wider
        # than the float range: a bucket never holds values of both signs.)
        self.odd = (width > 0) & ~plain
        self.width = width if self.odd.any() else None
        self.memo: dict = {}  # answers worth keeping (NumericStats.quantiles); the buckets never change
        self.minimum = float(self.lo[0]) if len(b) else float("nan")
        self.maximum = float(self.hi[-1]) if len(b) else float("nan")

    def _share(self, t: np.ndarray, b: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """Where ``t`` sits in bucket ``b`` (from ``lo``), 0 to 1. (Points of the other sign than a bucket
        of values past 9e307 overflow ``t - lo``; they lie outside it, and the callers count them as outside.)"""
        with np.errstate(over="ignore", invalid="ignore"):
            frac = (t - lo) * self.inv_width[b]
            if self.width is not None:
                odd = self.odd[b]
                if odd.any():
                    frac = np.where(odd, (t - lo) / np.where(odd, self.width[b], 1.0), frac)
        return np.clip(frac, 0.0, 1.0)

    def counts_le(self, t: np.ndarray, *, inclusive: bool) -> np.ndarray:
        """Estimated number of values ``<= t`` (inclusive) or ``< t``, for finite ``t``.

        Exact at and outside every bucket's ends; inside, the values strictly between the ends
        are spread evenly (their count is the only unknown, hence :func:`rank_error`)."""
        b = np.searchsorted(self.lo, t, side="right" if inclusive else "left") - 1
        none = b < 0
        b = np.maximum(b, 0)
        lo, hi = self.lo[b], self.hi[b]
        frac = self._share(t, b, lo)
        inside = self.at_lo[b] + self.mid[b] * frac
        full = self.full[b]
        if inclusive:
            res = np.where(t >= hi, full, inside)
        else:
            res = np.where(t > hi, full, np.where(t == hi, full - self.nhi[b], inside))
        return np.where(none, 0.0, res)

    def counts_both(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(:meth:`counts_le` inclusive, exclusive) with one search: they differ only by the point
        masses sitting exactly at ``t`` (a bucket's ends)."""
        b = np.searchsorted(self.lo, t, side="right") - 1
        none = b < 0
        b = np.maximum(b, 0)
        lo, hi = self.lo[b], self.hi[b]
        frac = self._share(t, b, lo)
        le = np.where(t >= hi, self.full[b], self.at_lo[b] + self.mid[b] * frac)
        atoms = np.where(t == lo, self.nlo[b], 0.0) + np.where((t == hi) & (lo != hi), self.nhi[b], 0.0)
        return np.where(none, 0.0, le), np.where(none, 0.0, le - atoms)

    def quantiles(self, ranks: np.ndarray) -> np.ndarray:
        """Smallest value whose estimated count ``<=`` it reaches ``rank`` (a count in [0, total])."""
        ends = self.before + self.nlo + self.mid + self.nhi
        b = np.minimum(np.searchsorted(ends, ranks, side="left"), ends.shape[0] - 1)
        lo, hi, nlo, mid, before = (a[b] for a in (self.lo, self.hi, self.nlo, self.mid, self.before))
        need = ranks - before - nlo
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(mid > 0, need / np.where(mid > 0, mid, 1.0), 1.0)
        f = np.clip(frac, 0.0, 1.0)
        inside = np.clip(lo * (1.0 - f) + hi * f, lo, hi)  # never overflows, unlike lo + f (hi - lo)
        return np.where(need <= 0, lo, np.where(need <= mid, inside, hi))


def rank_error(b: Buckets) -> float:
    """Largest share of values whose place inside its bucket is interpolated: every CDF answer is
    within this of the truth (0.0 while every bucket holds at most two distinct values)."""
    total = b.total
    if total == 0:
        return 0.0
    mid = b.cnt - b.nlo - b.nhi
    return float(mid.max()) / total if mid.shape[0] else 0.0


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise StatisticsError(f"corrupt numeric buckets: {what}")


def validate(b: Buckets) -> None:
    """Raise :class:`StatisticsError` unless ``b`` is a canonical bucket set."""
    _check(0 <= b.shift <= MAX_SHIFT, f"shift {b.shift}")
    n = len(b)
    _check(all(a.shape == (n,) for a in b.arrays()), "array lengths differ")
    _check((b.lo_tag is None) == (b.hi_tag is None), "tags on one end only")
    if b.lo_tag is not None:
        _check(b.lo_tag.shape == (n,) and b.hi_tag.shape == (n,), "tag lengths differ")  # type: ignore[union-attr]
    if n == 0:
        return
    _check(bool((b.ids[1:] > b.ids[:-1]).all()), "bucket ids not increasing")
    _check(bool((b.lo <= b.hi).all()), "lo above hi")
    _check(bool(((b.lo >> b.shift) == b.ids).all() and ((b.hi >> b.shift) == b.ids).all()), "ends outside bucket")
    point = b.lo == b.hi
    _check(bool((b.cnt >= 1).all()), "empty bucket")
    _check(bool((b.nlo[point] == b.cnt[point]).all() and (b.nhi[point] == 0).all()), "point bucket counts")
    inner = ~point
    _check(bool((b.nlo[inner] >= 1).all() and (b.nhi[inner] >= 1).all()
                and (b.nlo[inner] + b.nhi[inner] <= b.cnt[inner]).all()), "end counts")
    if b.lo_tag is None:  # keys of numbers: finite values only
        finite = int(keys_of(np.array([np.finfo(np.float64).max]))[0])
        _check(int(b.lo[0]) >= -finite and int(b.hi[-1]) <= finite, "non-finite value")


# -- bytes -------------------------------------------------------------------------------------------
def encode(b: Buckets) -> bytes:
    """Canonical bytes of ``b`` (shift, bucket count, first id, then packed deltas and counts; the
    ends as offsets inside their bucket and their counts unless ``shift == 0``)."""
    n = len(b)
    parts = [struct.pack("<BI", b.shift, n)]
    if n == 0:
        return b"".join(parts)
    parts.append(struct.pack("<q", int(b.ids[0])))
    parts.append(pack_uints(np.diff(b.ids).astype(np.uint64)))
    parts.append(pack_uints(b.cnt.astype(np.uint64)))
    if b.shift:
        base = b.ids << b.shift
        parts.append(pack_uints((b.lo - base).astype(np.uint64)))
        parts.append(pack_uints((b.hi - base).astype(np.uint64)))
        parts.append(pack_uints(b.nlo.astype(np.uint64)))
        parts.append(pack_uints(b.nhi.astype(np.uint64)))
    return b"".join(parts)


def decode(reader: Reader) -> Buckets:
    """Buckets written by :func:`encode`, validated."""
    shift, n = reader.unpack(_HEAD)
    if n == 0:
        out = empty(shift)
        validate(out)
        return out
    if n > _MAX_BUCKETS:
        raise StatisticsError(f"corrupt numeric buckets: {n} buckets")
    (first,) = reader.unpack(_FIRST)
    deltas = reader.uints(n - 1)
    if (deltas == 0).any():
        raise StatisticsError("corrupt numeric buckets: repeated bucket id")
    with np.errstate(over="ignore"):
        ids = np.concatenate(([first], first + np.cumsum(deltas.astype(np.int64)))).astype(np.int64)
    cnt = reader.uints(n).astype(np.int64)
    if shift:
        base = ids << shift
        lo = base + reader.uints(n).astype(np.int64)
        hi = base + reader.uints(n).astype(np.int64)
        nlo = reader.uints(n).astype(np.int64)
        nhi = reader.uints(n).astype(np.int64)
        out = Buckets(shift, ids, cnt, lo, hi, nlo, nhi)
    else:
        out = exact(ids, cnt)
    validate(out)
    return out
