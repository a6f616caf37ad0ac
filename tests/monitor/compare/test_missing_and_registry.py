"""missing_rate against scipy's 2x2 chi-square, the registry table, and TestResult guards."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
from scipy import stats

from monitor.compare import (ADAPTER_TESTS, MAX_EFFECT, REGISTRY, TREND_TESTS, TestName, TestResult, applicable_tests,
                             missing_rate)
from monitor.errors import StatisticsError
from monitor.stats import CategoricalStats, NumericStats


def num(values) -> NumericStats:
    s = NumericStats()
    s.update(np.asarray(values, dtype=np.float64))
    return s


def test_missing_rate_is_the_two_proportion_z_test():
    ref = num([1.0] * 950 + [np.nan] * 50)      # 5% missing
    cur = num([1.0] * 170 + [np.nan] * 30)      # 15% missing
    r = missing_rate(reference=ref, current=cur)
    table = np.array([[50, 950], [30, 170]])
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    assert r.statistic ** 2 == pytest.approx(chi2, rel=1e-12)
    assert r.statistic > 0
    assert r.p_value == pytest.approx(p, rel=1e-9)
    assert r.effect == pytest.approx(0.10)
    assert (r.n_reference, r.n_current) == (1000, 200)
    assert r.detail("share_reference") == pytest.approx(0.05)


def test_missing_rate_counts_non_finite_as_missing():
    ref = num([1.0, 2.0, 3.0, 4.0])
    cur = num([1.0, np.inf, -np.inf, np.nan])
    r = missing_rate(reference=ref, current=cur)
    assert r.detail("share_current") == pytest.approx(0.75) and r.effect == pytest.approx(0.75)


def test_missing_rate_works_for_categorical_summaries():
    ref, cur = CategoricalStats(), CategoricalStats()
    ref.update(np.array(["a"] * 90 + [None] * 10, dtype=object))
    cur.update(np.array(["a"] * 90 + [None] * 10, dtype=object))
    r = missing_rate(reference=ref, current=cur)
    assert r.effect == 0.0 and r.p_value == pytest.approx(1.0)


def test_missing_rate_degenerate_cases():
    none_missing = missing_rate(reference=num([1.0] * 10), current=num([2.0] * 10))
    assert (none_missing.statistic, none_missing.p_value, none_missing.effect) == (0.0, 1.0, 0.0)
    all_missing = missing_rate(reference=num([np.nan] * 10), current=num([np.nan] * 3))
    assert (all_missing.statistic, all_missing.p_value) == (0.0, 1.0)
    empty = missing_rate(reference=num([1.0]), current=NumericStats())
    assert empty.p_value is None and empty.note == "empty window" and not empty.computed
    # everything missing now, nothing before: a large, finite z
    flipped = missing_rate(reference=num([1.0] * 1000), current=num([np.nan] * 1000))
    assert flipped.effect == 1.0 and math.isfinite(flipped.statistic) and flipped.p_value < 1e-12


def test_registry_covers_every_core_test_once_with_keyword_only_functions():
    assert set(REGISTRY) == set(TestName) - ADAPTER_TESTS - TREND_TESTS
    for name, entry in REGISTRY.items():
        params = inspect.signature(entry.function).parameters
        assert params["reference"].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert params["current"].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values()), name
        assert entry.kinds and entry.kinds <= {"numeric", "categorical"}


def test_applicable_tests_by_kind():
    numeric, categorical = applicable_tests("numeric"), applicable_tests("categorical")
    assert TestName.KS in numeric and TestName.KS not in categorical
    assert TestName.LINF in categorical and TestName.LINF not in numeric
    assert TestName.MISSING_RATE in numeric and TestName.MISSING_RATE in categorical
    assert set(numeric) | set(categorical) == set(TestName) - ADAPTER_TESTS - TREND_TESTS


def test_registered_functions_return_their_own_name():
    n = num(np.arange(300.0))
    c = CategoricalStats()
    c.update(np.array(["a", "b"] * 50, dtype=object))
    for name, entry in REGISTRY.items():
        stats_obj = n if "numeric" in entry.kinds else c
        assert entry.function(reference=stats_obj, current=stats_obj).test is name


def test_test_result_refuses_nan_and_caps_infinity():
    with pytest.raises(StatisticsError):
        TestResult(test=TestName.KS, statistic=math.nan, p_value=None, effect=0.0, n_reference=1, n_current=1)
    with pytest.raises(StatisticsError):
        TestResult(test=TestName.KS, statistic=0.0, p_value=math.nan, effect=0.0, n_reference=1, n_current=1)
    with pytest.raises(StatisticsError):
        TestResult(test=TestName.KS, statistic=0.0, p_value=None, effect=-1.0, n_reference=1, n_current=1)
    r = TestResult(test="ks", statistic=math.inf, p_value=1.5, effect=math.inf, n_reference=1, n_current=1)
    assert r.test is TestName.KS and r.statistic == MAX_EFFECT and r.effect == MAX_EFFECT and r.p_value == 1.0
