import numpy as np
import pandas as pd
import pytest

from monitor.errors import SchemaError
from monitor.report import MISSING, OTHER, compare_feature, findings_table
from monitor.schema import FeatureSpec
from monitor.stats import Profile

SPECS = (FeatureSpec("x", "numeric", "float"), FeatureSpec("c", "categorical", "string"))


def _profile(x, c):
    p = Profile.empty(SPECS)
    p.update_columns({"x": x, "c": c})
    return p


def test_numeric_table_matches_numpy_and_states_moves_in_reference_sd():
    rng = np.random.default_rng(1)
    a, b = rng.normal(10, 2, 150), rng.normal(13, 2, 120)  # <= 200 values: the sketches are exact
    b_missing = np.concatenate([b, [np.nan] * 30])
    table = compare_feature(_profile(a, ["u"] * 150), _profile(b_missing, ["u"] * 150), "x")
    assert table.loc["mean", "reference"] == pytest.approx(a.mean())
    assert table.loc["std", "window"] == pytest.approx(b.std(ddof=1))
    assert table.loc["p50", "window"] == pytest.approx(np.quantile(b, 0.5, method="inverted_cdf"))
    assert table.loc["missing share", "window"] == pytest.approx(30 / 150)
    assert table.loc["mean", "change (reference sd)"] == pytest.approx((b.mean() - a.mean()) / a.std(ddof=1))
    assert np.isnan(table.loc["std", "change (reference sd)"])


def test_categorical_table_flags_unseen_pools_the_rest_and_sorts_by_change():
    ref = ["a"] * 50 + ["b"] * 30 + ["c"] * 10 + ["d"] * 10
    cur = ["a"] * 20 + ["b"] * 30 + ["new"] * 40 + [None] * 10
    table = compare_feature(_profile([1.0] * 100, ref), _profile([1.0] * 100, cur), "c", top=3)
    assert table.index[0] == "new" and bool(table.loc["new", "unseen in reference"])
    assert table.loc["new", "change (points)"] == pytest.approx(40)
    assert table.loc["a", "change (points)"] == pytest.approx(-30)
    assert table.loc[MISSING, "window share"] == pytest.approx(0.1)
    assert OTHER in table.index  # c and d pooled
    assert table["reference share"].sum() == pytest.approx(1.0)


def test_unknown_feature_is_a_schema_error():
    with pytest.raises(SchemaError):
        compare_feature(_profile([1.0], ["a"]), _profile([1.0], ["a"]), "nope")


def test_findings_table_puts_the_worst_first():
    rows = [dict(feature="a", test="ks", mode="skew", verdict="ok", effect=0.01, floor=0.1, q_value=0.5, message=""),
            dict(feature="b", test="ks", mode="skew", verdict="critical", effect=0.5, floor=0.1, q_value=0.0, message=""),
            dict(feature="c", test="psi", mode="skew", verdict="warning", effect=0.3, floor=0.2, q_value=None, message="")]
    table = findings_table(rows)
    assert list(table["feature"]) == ["b", "c", "a"]
    assert table.loc[0, "effect / floor"] == pytest.approx(5.0)
    assert findings_table([]).empty
