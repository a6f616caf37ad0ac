"""The merge contract every mergeable statistic in ``monitor.stats`` must honour.

Classes are discovered from ``monitor.stats.__all__``: anything implementing the
:class:`~monitor.stats.Mergeable` protocol must have a case below (a new statistic without one
fails ``test_every_statistic_has_a_contract_case``). Each case knows how to build a small
instance (few numeric ``bins`` and a small categorical ``capacity``, so the bucket grids coarsen
and values get hashed), generate batches and feed them.

Every statistic is a function of the multiset of its values, so the contract is byte equality:
identity, commutativity, associativity, merge of parts = one update of everything (under random
splits of the same rows, partials merged in any order and grouping), empty + empty, and the
serialisation round trip all compare ``to_bytes()``.
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


def same(a: Any, b: Any) -> None:
    assert a == b
    assert a.to_bytes() == b.to_bytes()


# -- per-class cases ---------------------------------------------------------------------------------
NUMBERS = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.floats(allow_nan=False, allow_infinity=False),  # any finite double: huge, subnormal, -0.0
    st.integers(min_value=-1000, max_value=1000),
    st.sampled_from([None, math.nan, math.inf, -math.inf, 0.0, -0.0, 1.5, 2.5, 5e-324, 1.7976931348623157e308]),
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
    concat: Callable[[list], Any]  # the batches as one batch


def _concat_numeric(batches: list) -> list:
    out: list = []
    for b in batches:
        out.extend(b.tolist() if isinstance(b, np.ndarray) else b)
    return out


CASES: dict[type, Case] = {
    NumericStats: Case(
        make=lambda: NumericStats(bins=8),
        batch=numeric_batch(),
        feed=lambda s, b: s.update(b),
        concat=_concat_numeric,
    ),
    CategoricalStats: Case(
        make=lambda: CategoricalStats(capacity=4),
        batch=st.lists(CATEGORIES, max_size=60),
        feed=lambda s, b: s.update(b),
        concat=lambda batches: [v for b in batches for v in b],
    ),
    Profile: Case(
        make=lambda: Profile.empty(SPECS, bins=8, capacity=4),
        batch=st.lists(INSTANCE, max_size=40),
        feed=lambda p, b: p.update_instances(b),
        concat=lambda batches: [v for b in batches for v in b],
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
    same(a.merge(b), b.merge(a))
    assert (a.to_bytes(), b.to_bytes()) == (a_bytes, b_bytes)


@CLASSES
@SETTINGS
@given(data=st.data())
def test_merge_is_associative(cls: type, data: st.DataObject) -> None:
    case = CASES[cls]
    a, b, c = (build(case, data.draw(st.lists(case.batch, max_size=2))) for _ in range(3))
    same(a.merge(b).merge(c), a.merge(b.merge(c)))


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
    same(whole, merged)


@CLASSES
@SETTINGS
@given(data=st.data())
def test_partials_of_any_split_merge_to_the_bytes_of_one_update(cls: type, data: st.DataObject) -> None:
    """The collectors' case: rows split into partials (one per Kafka partition, each fed in
    batches), merged in any order and grouping, must equal all rows folded in at once."""
    case = CASES[cls]
    rows = case.concat(data.draw(st.lists(case.batch, min_size=1, max_size=4)))
    at_once = build(case, [rows])
    n_parts = data.draw(st.integers(1, 5))
    owner = data.draw(st.lists(st.integers(0, n_parts - 1), min_size=len(rows), max_size=len(rows)))
    partials = []
    for part in range(n_parts):
        mine = [row for row, o in zip(rows, owner) if o == part]
        cuts = sorted(data.draw(st.lists(st.integers(0, len(mine)), max_size=3)))
        pieces = [mine[a:b] for a, b in zip([0, *cuts], [*cuts, len(mine)])]
        partials.append(build(case, pieces))
    order = data.draw(st.permutations(range(n_parts)))
    pool = [partials[i] for i in order]
    while len(pool) > 1:  # any grouping: merge a random neighbouring pair
        i = data.draw(st.integers(0, len(pool) - 2))
        left_first = data.draw(st.booleans())
        pool[i : i + 2] = [pool[i].merge(pool[i + 1]) if left_first else pool[i + 1].merge(pool[i])]
    same(pool[0], at_once)


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
        same(back, stat)
        assert back.to_bytes() == raw
        assert stat.to_bytes() == raw  # serialising twice gives the same bytes
