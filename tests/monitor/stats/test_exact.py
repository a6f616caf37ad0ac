"""Exact sums against exact rational arithmetic (fractions.Fraction) on the same doubles."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from monitor.stats.exact import (SQUARE_UNIT_EXP, SUM_UNIT_EXP, exact_moments, exact_square_sum, exact_sum,
                                 int_from_bytes, int_to_bytes, numpy_moments)

FINITE = st.floats(allow_nan=False, allow_infinity=False)


def native():
    return pytest.importorskip("monitor.stats._exact", reason="the compiled moments are not built").moments


def bounds(x: np.ndarray) -> dict[str, float]:
    mag = np.abs(x)
    nz = mag[mag > 0]
    return {"amax": float(mag.max()) if mag.size else 0.0, "amin": float(nz.min()) if nz.size else 0.0}


def exact_sums(x: np.ndarray) -> tuple[Fraction, Fraction]:
    values = [Fraction(v) for v in x.tolist()]
    return sum(values, Fraction(0)), sum((v * v for v in values), Fraction(0))


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, st.integers(0, 80), elements=FINITE))
def test_any_finite_doubles(x: np.ndarray) -> None:
    total, squares = exact_sums(x)
    assert Fraction(exact_sum(x), 1 << SUM_UNIT_EXP) == total
    assert Fraction(exact_square_sum(x), 1 << SQUARE_UNIT_EXP) == squares


@settings(max_examples=300, deadline=None)
@given(arrays(np.float64, st.integers(0, 80), elements=FINITE | st.sampled_from(
    [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308])))
def test_the_compiled_moments_are_the_exact_sums(x: np.ndarray) -> None:
    total, squares = exact_sums(x)
    assert native()(x) == (total * (1 << SUM_UNIT_EXP), squares * (1 << SQUARE_UNIT_EXP))
    assert native()(x) == numpy_moments(x, **bounds(x))


def test_the_compiled_moments_carry_past_128_bits_in_one_exponent() -> None:
    # 2**22 squares of a full 53-bit mantissa overflow a 128-bit integer; 5M of them, both signs
    x = np.full(5_000_000, 2.0 - 2.0**-52)
    x[::2] = -x[::2]
    v = Fraction(float(x[1]))
    total, squares = native()(x)
    assert Fraction(total, 1 << SUM_UNIT_EXP) == 0
    assert Fraction(squares, 1 << SQUARE_UNIT_EXP) == 5_000_000 * v * v
    big = np.full(3_000_000, -1.7976931348623157e308)  # the largest exponent, every carry at the top
    total, squares = native()(big)
    assert Fraction(total, 1 << SUM_UNIT_EXP) == 3_000_000 * Fraction(float(big[0]))
    assert Fraction(squares, 1 << SQUARE_UNIT_EXP) == 3_000_000 * Fraction(float(big[0])) ** 2


def test_the_compiled_moments_refuse_what_is_not_finite_float64() -> None:
    moments = native()
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match="value 2 is not"):
            moments(np.array([1.0, 2.0, bad, 3.0]))
    for wrong in (np.arange(3), np.ones(3, np.float32), np.ones((2, 2)), np.ones(6)[::2], b"12345678"):
        with pytest.raises((TypeError, ValueError, BufferError)):
            moments(wrong)
    assert moments(np.array([])) == (0, 0)
    x = np.arange(10.0)[::3]  # exact_moments hands the compiled code a contiguous copy
    assert exact_moments(x, **bounds(x)) == numpy_moments(x, **bounds(x))


@pytest.mark.parametrize("kind", ["normal", "offset", "lognormal", "ints", "zeros", "wide"])
def test_large_arrays_with_known_bounds(kind: str) -> None:
    rng = np.random.default_rng(1)
    n = 150_000  # several chunks and blocks
    x = {
        "normal": lambda: rng.normal(0, 1, n),
        "offset": lambda: rng.normal(1.7e9, 3.0, n),  # epoch seconds: the cancellation-prone case
        "lognormal": lambda: rng.lognormal(0, 3, n),
        "ints": lambda: rng.integers(-10**6, 10**6, n).astype(np.float64),
        "zeros": lambda: np.where(rng.random(n) < 0.5, 0.0, rng.exponential(3.0, n)),
        "wide": lambda: rng.normal(0, 1, n) * 10.0 ** rng.integers(-200, 200, n),
    }[kind]()
    oracle_total, oracle_squares = exact_sums(x)
    for moments in (exact_moments, numpy_moments):  # compiled (when built) and numpy
        total, squares = moments(x, **bounds(x))
        assert Fraction(total, 1 << SUM_UNIT_EXP) == oracle_total
        assert Fraction(squares, 1 << SQUARE_UNIT_EXP) == oracle_squares


def test_integer_bytes_round_trip() -> None:
    for v in (0, 1, -1, 255, -256, 2**1100 + 7, -(2**2000)):
        assert int_from_bytes(int_to_bytes(v)) == v
    assert int_to_bytes(0) == b""
