"""HyperLogLog registers: the estimate against true distinct counts, and order independence."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.errors import StatisticsError
from monitor.stats import hll


@pytest.mark.parametrize("n", [0, 1, 50, 3_000, 60_000, 2_000_000])
def test_estimate_within_four_standard_errors(n: int) -> None:
    rng = np.random.default_rng(n)
    hashes = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    estimate = hll.estimate(hll.add_hashes(hll.new_registers(), hashes))
    assert abs(estimate - n) <= 4 * 1.04 / np.sqrt(hll.REGISTERS) * n + 1e-9


def test_registers_depend_on_the_set_only() -> None:
    rng = np.random.default_rng(5)
    hashes = rng.integers(0, 2**64 - 1, 10_000, dtype=np.uint64, endpoint=True)
    whole = hll.add_hashes(hll.new_registers(), hashes)
    parts = [hll.add_hashes(hll.new_registers(), p) for p in np.array_split(rng.permutation(np.concatenate([hashes, hashes[:99]])), 5)]
    np.testing.assert_array_equal(np.maximum.reduce(parts), whole)


def test_bad_registers_are_refused() -> None:
    with pytest.raises(StatisticsError):
        hll.check_registers(np.full(hll.REGISTERS, 200, dtype=np.uint8))
    with pytest.raises(StatisticsError):
        hll.check_registers(np.zeros(10, dtype=np.uint8))
