"""Exact sums of float64 arrays, as integers: the moments of a multiset, whatever its grouping.

Floating-point addition is not associative, so a mean accumulated batch by batch depends on
the batching and on the order partial statistics are merged in. Every finite double is an
integer multiple of ``2**-1074`` and every square of one a multiple of ``2**-2148``, so the sum
of a batch and of its squares can be kept *exactly* as Python integers in those units: adding
integers is associative and commutative, and the mean and M2 read off them are the correctly
rounded values of the exact ones. That is what makes a profile a function of the multiset of
its values (see :mod:`monitor.stats.numeric`).

:func:`exact_sum` is vectorised: the array is cut into "pieces" at fixed powers of two (the
classic ``(x + C) - C`` rounding, Dekker 1971 / Rump, Ogita and Oishi 2008) so that each
piece is a multiple of ``2**s`` small enough for numpy's own (pairwise) summation to make no
rounding error; each piece sum is then an exact integer. Data with 53 significant bits needs
two pieces. :func:`exact_square_sum` makes every square exact first with Dekker's
TwoProduct (``x*x = p + e`` with both ``p`` and ``e`` doubles). Values outside the range where
those tricks are exact (about ``2**-458 <= |x| <= 2**500``) take a slow exact path in Python.
"""

from __future__ import annotations

import math

import numpy as np

try:
    from monitor.stats._exact import moments as _native
except ImportError:  # built by `make install`; optional (no C compiler): numpy_moments gives the same
    _native = None

__all__ = ["SUM_UNIT_EXP", "SQUARE_UNIT_EXP", "exact_sum", "exact_square_sum", "exact_moments", "numpy_moments",
           "int_to_bytes", "int_from_bytes"]

#: ``exact_sum`` counts in units of ``2**-SUM_UNIT_EXP``.
SUM_UNIT_EXP = 1074
#: ``exact_square_sum`` counts in units of ``2**-SQUARE_UNIT_EXP``.
SQUARE_UNIT_EXP = 2148
_FAST_MAX_EXP = 900  # |x| < 2**900: the rounding constants below stay finite
_SPLIT = 134217729.0  # 2**27 + 1, Veltkamp's splitter
_SQ_LOW, _SQ_HIGH = 2.0**-458, 2.0**500  # Dekker's product is exact (no under/overflow) in between
_LG_BLOCK = 10
_BLOCK = 1 << _LG_BLOCK  # numpy sums blocks of this many pieces exactly
_CHUNK = 1 << 16  # exact_moments works through this many values at a time


def _slow_sum(a: np.ndarray) -> int:
    total = 0
    for x in a.tolist():
        num, den = float(x).as_integer_ratio()  # den is a power of two <= 2**1074
        total += num * ((1 << SUM_UNIT_EXP) // den)
    return total


def _exact_piece_sum(piece: np.ndarray, s: int) -> int:
    """Exact sum of ``piece`` (multiples of ``2**s``, at most ``_BLOCK * max|piece| <= 2**(53 + s)``
    per block) in units of ``2**-1074``: numpy sums each block of ``_BLOCK`` without rounding, the
    block sums are whole multiples of ``2**s`` and are added as Python integers."""
    n = piece.shape[0]
    full = n - n % _BLOCK
    multiples = 0
    if full:
        blocks = np.ldexp(piece[:full].reshape(-1, _BLOCK).sum(axis=1), -s)  # whole numbers below 2**53
        if blocks.shape[0] <= 512:  # their sum stays below 2**62: exact in int64
            multiples = int(blocks.astype(np.int64).sum())
        else:
            multiples = sum(int(v) for v in blocks.tolist())
    if full < n:
        multiples += int(np.ldexp(piece[full:].sum(), -s))
    return multiples << (s + SUM_UNIT_EXP)


def exact_sum(a: np.ndarray, *, amax: float | None = None, low: int | None = None) -> int:
    """``sum(a)`` exactly, as an integer count of ``2**-1074`` (``a``: finite float64, 1-D).

    Piece k rounds what is left to a multiple of ``2**s_k``, with ``s_k`` chosen so that a block of
    ``_BLOCK`` pieces sums below ``2**(53 + s_k)``: every partial sum numpy forms inside a block is
    then a representable multiple of ``2**s_k``, exact whatever order it is added in. Callers that
    know ``amax`` (the largest ``|a|``) and ``low`` (every value is a multiple of ``2**low``) save
    passes: data with 53 significant bits spanning up to 2**34 in magnitude then takes one
    rounding and two block sums.
    """
    n = a.shape[0]
    if n == 0:
        return 0
    if amax is None:
        amax = max(-float(a.min()), float(a.max()))
    if amax == 0.0:
        return 0
    top = math.frexp(amax)[1]  # |a| < 2**top
    if top > _FAST_MAX_EXP:
        return _slow_sum(a)
    if low is not None:
        low = max(low, -SUM_UNIT_EXP)  # every double is a multiple of 2**-1074
    total = 0
    rest = a
    piece: np.ndarray | None = None
    while True:
        s = max(top + _LG_BLOCK - 53, -SUM_UNIT_EXP)
        if low is not None and low >= s:  # what is left is already a multiple of 2**s
            return total + _exact_piece_sum(rest, s)
        c = 1.5 * 2.0 ** (52 + s)
        if piece is None or piece is rest:
            piece = np.empty_like(a)
        np.add(rest, c, out=piece)
        piece -= c  # rest rounded to a multiple of 2**s, exactly (|rest| <= 2**(51 + s))
        total += _exact_piece_sum(piece, s)
        np.subtract(rest, piece, out=piece)  # exact: the bits below 2**s
        rest = piece
        if low is None and not rest.any():
            return total
        top = s


def exact_square_sum(a: np.ndarray, *, amax: float | None = None, amin: float | None = None) -> int:
    """``sum(a**2)`` exactly, as an integer count of ``2**-2148`` (``a``: finite float64, 1-D).

    ``amax``/``amin``: the largest and the smallest non-zero ``|a|``, when the caller knows them
    (they decide whether any value needs the slow path, and bound the pieces)."""
    if a.shape[0] == 0:
        return 0
    total = 0
    if amax is None or amin is None or amax > _SQ_HIGH or amin < _SQ_LOW:
        mag = np.abs(a)
        odd = ((mag < _SQ_LOW) & (mag != 0.0)) | (mag > _SQ_HIGH)
        if odd.any():
            for x in a[odd].tolist():
                num, den = float(x).as_integer_ratio()
                total += num * num * ((1 << SQUARE_UNIT_EXP) // (den * den))
            a = a[~odd]
        if a.shape[0] == 0:
            return total
        nz = mag[(mag != 0.0) & ~odd]
        if nz.shape[0] == 0:
            return total
        amax, amin = float(nz.max()), float(nz.min())
    # Dekker's TwoProduct: x*x = p + e exactly, p = fl(x*x), e a double
    p = a * a
    hi = a * _SPLIT
    lo = hi - a
    np.subtract(hi, lo, out=hi)  # hi: upper 26 bits of x
    np.subtract(a, hi, out=lo)  # lo: the rest
    e = hi * hi
    e -= p
    np.multiply(hi, lo, out=hi)
    hi *= 2.0
    e += hi
    np.multiply(lo, lo, out=lo)
    e += lo
    low_x = math.frexp(amin)[1] - 53  # every x is a multiple of 2**low_x
    pmax = amax * amax
    low_p = max(math.frexp(amin * amin)[1] - 54, -SUM_UNIT_EXP)  # fl(x*x) >= fl(amin**2)
    shift = SQUARE_UNIT_EXP - SUM_UNIT_EXP
    emax = math.ldexp(1.0, math.frexp(pmax)[1] - 53)  # |e| <= ulp(p) / 2
    low_e = max(2 * low_x, -SUM_UNIT_EXP)  # e = x*x - p is a multiple of 2**(2 low_x)
    return total + ((exact_sum(p, amax=pmax, low=low_p) + exact_sum(e, amax=emax, low=low_e)) << shift)


def exact_moments(a: np.ndarray, *, amax: float, amin: float) -> tuple[int, int]:
    """``(exact_sum(a), exact_square_sum(a))`` of finite values whose largest ``|a|`` is ``amax``
    and smallest non-zero ``|a|`` is ``amin``: in one pass of compiled code when
    ``monitor.stats._exact`` is built (about 8x faster), else with numpy (:func:`numpy_moments`).
    The two give the same integers: both are the exact sums."""
    if _native is not None:
        return _native(np.ascontiguousarray(a, dtype=np.float64))
    return numpy_moments(a, amax=amax, amin=amin)


def numpy_moments(a: np.ndarray, *, amax: float, amin: float) -> tuple[int, int]:
    """:func:`exact_moments` with numpy, in cache-sized chunks (the temporaries then stay in cache
    instead of paging in fresh memory for every step)."""
    low = None if amin == 0.0 else math.frexp(amin)[1] - 53
    total = squares = 0
    for start in range(0, a.shape[0], _CHUNK):
        part = a[start : start + _CHUNK]
        total += exact_sum(part, amax=amax, low=low)
        squares += exact_square_sum(part, amax=amax, amin=amin if amin else None)
    return total, squares


def int_to_bytes(value: int) -> bytes:
    """A signed integer as minimal little-endian two's complement bytes (``b""`` for 0)."""
    if value == 0:
        return b""
    return value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)


def int_from_bytes(data: bytes) -> int:
    return int.from_bytes(data, "little", signed=True) if data else 0
