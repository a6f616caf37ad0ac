"""Exact sums against exact rational arithmetic (fractions.Fraction) on the same doubles."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from monitor.stats.exact import (SQUARE_UNIT_EXP, SUM_UNIT_EXP, exact_moments, exact_square_sum, exact_sum,
                                 int_from_bytes, int_to_bytes)

FINITE = st.floats(allow_nan=False, allow_infinity=False)


def exact_sums(x: np.ndarray) -> tuple[Fraction, Fraction]:
    values = [Fraction(v) for v in x.tolist()]
    return sum(values, Fraction(0)), sum((v * v for v in values), Fraction(0))


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, st.integers(0, 80), elements=FINITE))
def test_any_finite_doubles(x: np.ndarray) -> None:
    total, squares = exact_sums(x)
    assert Fraction(exact_sum(x), 1 << SUM_UNIT_EXP) == total
    assert Fraction(exact_square_sum(x), 1 << SQUARE_UNIT_EXP) == squares


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
    mag = np.abs(x)
    nz = mag[mag > 0]
    total, squares = exact_moments(x, amax=float(mag.max()), amin=float(nz.min()) if nz.size else 0.0)
    oracle_total, oracle_squares = exact_sums(x)
    assert Fraction(total, 1 << SUM_UNIT_EXP) == oracle_total
    assert Fraction(squares, 1 << SQUARE_UNIT_EXP) == oracle_squares


def test_integer_bytes_round_trip() -> None:
    for v in (0, 1, -1, 255, -256, 2**1100 + 7, -(2**2000)):
        assert int_from_bytes(int_to_bytes(v)) == v
    assert int_to_bytes(0) == b""
