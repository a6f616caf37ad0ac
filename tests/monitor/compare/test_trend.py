"""Trends computed together equal trends computed one by one, bit for bit."""

import numpy as np

from monitor.compare.results import TestName
from monitor.compare.trend import MIN_TREND_WINDOWS, trend, trends


def test_trends_together_equal_trends_one_by_one():
    rng = np.random.default_rng(5)
    items = []
    for k in range(300):
        n = int(rng.integers(1, 40))
        kind = k % 6
        if kind == 0:
            e = rng.normal(0.1, 0.05, n)
        elif kind == 1:
            e = np.round(rng.normal(0.1, 0.05, n), 2)  # many ties
        elif kind == 2:
            e = np.linspace(0.0, 0.3, n) + rng.normal(0, 0.01, n)  # a rising trend
        elif kind == 3:
            e = np.full(n, 0.2)  # all tied
        elif kind == 4:
            e = rng.choice([0.0, -0.0, 0.5], n)
        else:
            e = rng.normal(0.1, 0.05, n)
            e[int(rng.integers(0, n))] = 1e300  # a huge effect among small ones
        test = [TestName.TREND_KS, TestName.TREND_MEAN_SHIFT][k % 2]
        items.append((test, e.tolist(), int(rng.integers(0, 10_000)), int(rng.integers(0, 10_000))))
    together = trends(items)
    alone = [trend(test=t, effects=e, n_current=c, n_reference=r) for t, e, c, r in items]
    assert [repr(x) for x in together] == [repr(x) for x in alone]
    assert sum(1 for x in alone if x.computed) > 100
    assert any(len(e) >= MIN_TREND_WINDOWS and x.p_value is not None and x.p_value < 0.01
               for (_t, e, _c, _r), x in zip(items, alone))
    assert trends([]) == []


def test_a_series_that_is_not_finite_fails_as_it_does_alone():
    import pytest

    from monitor.errors import StatisticsError

    nan = [0.1] * 9 + [float("nan")]
    with pytest.raises(StatisticsError) as alone:
        trend(test=TestName.TREND_KS, effects=nan, n_current=5, n_reference=5)
    with pytest.raises(StatisticsError) as together:
        trends([(TestName.TREND_KS, [0.1] * 10, 5, 5), (TestName.TREND_KS, nan, 5, 5)])
    assert str(together.value) == str(alone.value)
    inf = [0.1] * 9 + [float("inf")]
    with np.errstate(invalid="ignore"):  # inf - inf in the pairwise differences, as alone
        assert repr(trends([(TestName.TREND_KS, inf, 5, 5)])) == \
            repr([trend(test=TestName.TREND_KS, effects=inf, n_current=5, n_reference=5)])
