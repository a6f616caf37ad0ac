"""The merge contract every mergeable statistic in ``monitor.stats`` must honour.

Classes are discovered from ``monitor.stats.__all__``: anything implementing the
:class:`~monitor.stats.Mergeable` protocol must have a case below (a new statistic without one
fails ``test_every_statistic_has_a_contract_case``). Each case knows how to build a small
instance (small KLL ``k`` and categorical ``capacity``, so sketches reach estimation mode and
Misra-Gries reductions happen), generate batches, feed them, and tell whether two instances
hold the same data: exact parts exactly (or within 1e-9 relative where floating-point sums are
regrouped), sketch answers within their stated rank error, Misra-Gries counts within their
error bounds.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import monitor.stats as stats_pkg
from monitor.schema import FeatureSpec
from monitor.stats import CategoricalStats, Mergeable, NumericStats, Profile

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REL = 1e-9


# -- equivalence of two instances that saw the same data ------------------------------------------
def _close(a: float, b: float, scale: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= REL * max(abs(a), abs(b)) + REL * scale


def numeric_equivalent(a: NumericStats, b: NumericStats, *, exact: bool) -> None:
    assert (a.count, a.missing, a.nonfinite, a.k) == (b.count, b.missing, b.nonfinite, b.k)
    assert (a.min, a.max) == (b.min, b.max) or (math.isnan(a.min) and math.isnan(b.min))
    big = max(abs(a.min), abs(a.max)) if a.count else 0.0
    if exact:
        assert (a.sum, a.mean, a.m2) == (b.sum, b.mean, b.m2) or a.count == 0
    else:
        assert _close(a.sum, b.sum, a.count * big)
        assert _close(a.mean, b.mean, big)
        assert _close(a.m2, b.m2, a.count * big * big)
    if a.count:
        points = np.unique(np.concatenate([np.linspace(a.min, a.max, 17), a.quantiles(np.linspace(0, 1, 11))]))
        tolerance = a.rank_error + b.rank_error + 1e-12
        assert np.abs(a.cdf(points) - b.cdf(points)).max() <= tolerance
        if tolerance < 1e-9:  # both sketches still exact: every query agrees
            np.testing.assert_array_equal(a.quantiles(np.linspace(0, 1, 11)), b.quantiles(np.linspace(0, 1, 11)))


def categorical_equivalent(a: CategoricalStats, b: CategoricalStats, *, exact: bool) -> None:
    assert (a.count, a.missing, a.capacity) == (b.count, b.missing, b.capacity)
    ca, cb = a.counts(), b.counts()
    if exact or (a.is_exact and b.is_exact):
        assert (ca, a.error_bound) == (cb, b.error_bound)
        assert a.distinct_estimate == b.distinct_estimate
    else:  # both are lower bounds of the same true counts, each within its own error bound
        for key in ca.keys() | cb.keys():
            assert abs(ca.get(key, 0) - cb.get(key, 0)) <= max(a.error_bound, b.error_bound), key
        assert math.isclose(a.distinct_estimate, b.distinct_estimate, rel_tol=0.05)


def profile_equivalent(a: Profile, b: Profile, *, exact: bool) -> None:
    assert (a.specs, a.rows, a.unknown_features) == (b.specs, b.rows, b.unknown_features)
    for name, fa in a.features.items():
        fb = b.features[name]
        if isinstance(fa, NumericStats):
            numeric_equivalent(fa, fb, exact=exact)
        else:
            categorical_equivalent(fa, fb, exact=exact)


# -- per-class cases ---------------------------------------------------------------------------------
NUMBERS = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.integers(min_value=-1000, max_value=1000),
    st.sampled_from([None, math.nan, math.inf, -math.inf, 0.0, 1.5, 2.5]),
)
CATEGORIES = st.one_of(
    st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "", None, math.nan, 1.0, 2.5]),
    st.integers(min_value=0, max_value=5),
    st.booleans(),
    st.text(alphabet="xyzé✓", max_size=2),
)
SPECS = (FeatureSpec("x", "numeric", "float"), FeatureSpec("c", "categorical", "string"))
INSTANCE = st.fixed_dictionaries(
    {}, optional={"x": NUMBERS, "c": CATEGORIES, "extra": st.integers(0, 3), "other": st.none()}
)


@st.composite
def numeric_batch(draw: st.DrawFn) -> Any:
    values = draw(st.lists(NUMBERS, max_size=60))
    if draw(st.booleans()):
        return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    return values


@dataclass(frozen=True)
class Case:
    make: Callable[[], Any]
    batch: st.SearchStrategy
    feed: Callable[[Any, Any], None]
    equivalent: Callable[..., None]


CASES: dict[type, Case] = {
    NumericStats: Case(
        make=lambda: NumericStats(k=8),
        batch=numeric_batch(),
        feed=lambda s, b: s.update(b),
        equivalent=numeric_equivalent,
    ),
    CategoricalStats: Case(
        make=lambda: CategoricalStats(capacity=4),
        batch=st.lists(CATEGORIES, max_size=60),
        feed=lambda s, b: s.update(b),
        equivalent=categorical_equivalent,
    ),
    Profile: Case(
        make=lambda: Profile.empty(SPECS, k=8, capacity=4),
        batch=st.lists(INSTANCE, max_size=40),
        feed=lambda p, b: p.update_instances(b),
        equivalent=profile_equivalent,
    ),
}


def discovered() -> list[type]:
    found = []
    for name in stats_pkg.__all__:
        obj = getattr(stats_pkg, name)
        if inspect.isclass(obj) and obj not in (Mergeable, stats_pkg.Statistic) and issubclass(obj, Mergeable):
            found.append(obj)
    return found


def test_every_statistic_has_a_contract_case() -> None:
    found = discovered()
    assert {NumericStats, CategoricalStats, Profile} <= set(found)
    assert set(found) == set(CASES), f"statistics without a contract case: {set(found) - set(CASES)}"


CLASSES = pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.__name__)


def build(case: Case, batches: list) -> Any:
    stat = case.make()
    for batch in batches:
        case.feed(stat, batch)
    return stat


@CLASSES
@SETTINGS
@given(data=st.data())
def test_zero_is_identity_and_merge_is_pure(cls: type, data: st.DataObject) -> None:
    case = CASES[cls]
    x = build(case, data.draw(st.lists(case.batch, max_size=4)))
    before = x.to_bytes()
    assert x.merge(x.zero()) == x
    assert x.zero().merge(x) == x
    assert x.to_bytes() == before  # inputs unchanged
    assert x.zero() == case.make()


@CLASSES
@SETTINGS
@given(data=st.data())
def test_merge_is_commutative(cls: type, data: st.DataObject) -> None:
    case = CASES[cls]
    a = build(case, data.draw(st.lists(case.batch, max_size=3)))
    b = build(case, data.draw(st.lists(case.batch, max_size=3)))
    a_bytes, b_bytes = a.to_bytes(), b.to_bytes()
    case.equivalent(a.merge(b), b.merge(a), exact=True)
    assert (a.to_bytes(), b.to_bytes()) == (a_bytes, b_bytes)


@CLASSES
@SETTINGS
@given(data=st.data())
def test_merge_is_associative(cls: type, data: st.DataObject) -> None:
    case = CASES[cls]
    a, b, c = (build(case, data.draw(st.lists(case.batch, max_size=2))) for _ in range(3))
    case.equivalent(a.merge(b).merge(c), a.merge(b.merge(c)), exact=False)


@CLASSES
@SETTINGS
@given(data=st.data())
def test_merge_of_parts_equals_update_of_whole(cls: type, data: st.DataObject) -> None:
    case = CASES[cls]
    batches = data.draw(st.lists(case.batch, min_size=1, max_size=5))
    whole = build(case, batches)
    merged = case.make()
    for batch in batches:
        merged = merged.merge(build(case, [batch]))
    case.equivalent(whole, merged, exact=False)


@CLASSES
def test_empty_plus_empty_is_empty(cls: type) -> None:
    case = CASES[cls]
    e = case.make().merge(case.make())
    assert e == case.make()
    assert e.is_empty()
    assert type(e).from_bytes(e.to_bytes()) == e


@CLASSES
@SETTINGS
@given(data=st.data())
def test_bytes_round_trip_and_stability(cls: type, data: st.DataObject) -> None:
    case = CASES[cls]
    x = build(case, data.draw(st.lists(case.batch, max_size=4)))
    y = build(case, data.draw(st.lists(case.batch, max_size=2)))
    for stat in (x, x.merge(y)):
        raw = stat.to_bytes()
        back = cls.from_bytes(raw)
        assert back == stat
        assert back.to_bytes() == raw
        assert stat.to_bytes() == raw  # serialising twice gives the same bytes
        case.equivalent(back, stat, exact=True)
