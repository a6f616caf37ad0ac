"""A record's columns checked for the profile (``collectors.columns.check_columns``) against a
row-by-row oracle: the same rows kept and dropped, and the same profile bytes, whichever path
(valid columns counted at once, or checked value by value) each column takes."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from collectors.columns import MAX_CATEGORY_CHARS, check_columns, clip_category
from monitor.schema import FeatureSpec
from monitor.stats import Profile

SPECS = (FeatureSpec("x", "numeric", "float"), FeatureSpec("c", "categorical", "string"),
         FeatureSpec("d", "categorical", "string"))

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([0.0, 1.0, 2.5, -1.0, 1e300]),
    st.sampled_from(["a", "b", "1", "true", "", "x" * (MAX_CATEGORY_CHARS + 5), "x" * (MAX_CATEGORY_CHARS + 6)]))
_values = st.one_of(_scalars, st.just([1, 2]), st.just({"k": 1}), st.integers(2**64, 2**65))


def _valid(spec: FeatureSpec, v) -> bool:
    if spec.kind == "numeric":
        if v is None or type(v) is float:
            return True
        if type(v) is not int:
            return False  # a string, bool, list or object
        try:
            float(v)
        except OverflowError:
            return False
        return True
    return type(v) in (str, int, float, bool, type(None))


def _oracle(columns: dict[str, list], rows: int) -> tuple[Profile, list[bool]]:
    keep = [all(_valid(s, columns[s.name][i]) for s in SPECS if s.name in columns) for i in range(rows)]
    cols = {}
    for s in SPECS:
        if s.name not in columns:
            continue
        kept = [columns[s.name][i] for i in range(rows) if keep[i]]
        if s.kind == "numeric":
            cols[s.name] = np.array([np.nan if v is None else float(v) for v in kept], dtype=np.float64)
        else:
            arr = np.empty(len(kept), dtype=object)
            arr[:] = [clip_category(v) if type(v) is str else v for v in kept]
            cols[s.name] = arr
    p = Profile.empty(SPECS)
    p.update_columns(cols or {"x": [None] * sum(keep)})
    return p, keep


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 12).flatmap(lambda n: st.tuples(
    st.just(n),
    st.dictionaries(st.sampled_from(["x", "c", "d"]),
                    st.one_of(st.lists(_scalars, min_size=n, max_size=n), st.lists(_values, min_size=n, max_size=n)),
                    min_size=1))))
def test_check_columns_matches_a_row_by_row_oracle(case):
    rows, columns = case
    checked = check_columns(columns, rows, SPECS)
    got = Profile.empty(SPECS)
    got.update_columns(checked.columns or {"x": [None] * checked.rows})
    expected, keep = _oracle(columns, rows)
    assert checked.rows == sum(keep)
    assert checked.invalid == rows - sum(keep)
    assert (checked.keep is None) == all(keep)
    if checked.keep is not None:
        assert checked.keep.tolist() == keep
    assert got.to_bytes() == expected.to_bytes()


def test_a_bool_and_the_number_one_stay_apart_when_counted():
    checked = check_columns({"c": [True, 1, 1.0, "1", False, 0]}, 6, SPECS)
    p = Profile.empty(SPECS)
    p.update_columns(checked.columns)
    assert p["c"].counts() == {"true": 1, "1": 3, "false": 1, "0": 1}
