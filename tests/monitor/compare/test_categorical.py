"""Categorical comparisons against hand-worked values and scipy oracles."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from monitor.compare import CategoricalView, TestName, chi_squared, linf, psi_categorical, unseen_share
from monitor.compare.shares import PSI_EPSILON
from monitor.errors import ConfigError
from monitor.stats import CategoricalStats

CATEGORICAL_TESTS = (linf, chi_squared, psi_categorical, unseen_share)


def cat(counts: dict[str, int], *, missing: int = 0, capacity: int = 4096) -> CategoricalStats:
    s = CategoricalStats(capacity)
    values = [k for k, n in counts.items() for _ in range(n)] + [None] * missing
    s.update(np.array(values, dtype=object))
    return s


def test_linf_is_tfdv_infinity_norm():
    # separately normalised shares over the union: a .5/.3/.2/0 vs .4/.3/0/.3
    r = linf(reference=cat({"a": 50, "b": 30, "c": 20}), current=cat({"a": 40, "b": 30, "d": 30}))
    assert r.statistic == pytest.approx(0.3) and r.effect == r.statistic
    assert r.detail("value") in {"d"}  # |0 - .3| = .3 beats |.2 - 0| = .2 and |.5 - .4| = .1
    assert r.p_value is None and (r.n_reference, r.n_current) == (100, 100)


def test_linf_ignores_missing_values():
    r = linf(reference=cat({"a": 5, "b": 5}, missing=90), current=cat({"a": 50, "b": 50}))
    assert r.statistic == 0.0


def test_chi_squared_matches_scipy_chisquare_with_unseen_pooled():
    ref = {"a": 500, "b": 300, "c": 200}
    cur = {"a": 40, "b": 30, "c": 25, "d": 3, "e": 2}
    r = chi_squared(reference=cat(ref), current=cat(cur))
    denominator = 1000 + 0.5                    # Jeffreys pseudo-count for the unseen bucket
    expected = np.array([500, 300, 200, 0.5]) * 100 / denominator
    observed = np.array([40, 30, 25, 5])        # d and e pooled as "unseen"
    oracle = stats.chisquare(observed, expected)
    assert r.statistic == pytest.approx(oracle.statistic, rel=1e-12)
    assert r.p_value == pytest.approx(oracle.pvalue, rel=1e-9)
    assert r.effect == pytest.approx(np.max(np.abs(observed - expected)) / 100, rel=1e-12)
    assert r.detail("buckets") == 4


def test_chi_squared_pools_rare_categories_hand_worked():
    # expected counts of r1 and r2 are 0.5 each (< 5): pooled into one bucket, O=5, E=1
    r = chi_squared(reference=cat({"a": 990, "r1": 5, "r2": 5}), current=cat({"a": 95, "r1": 3, "r2": 2}))
    assert r.statistic == pytest.approx((95 - 99) ** 2 / 99 + (5 - 1) ** 2 / 1, rel=1e-12)
    assert r.p_value == pytest.approx(stats.chi2.sf(r.statistic, 1), rel=1e-12)
    assert r.effect == pytest.approx(0.04)


def test_chi_squared_no_change_is_not_significant():
    r = chi_squared(reference=cat({"a": 600, "b": 300, "c": 100}), current=cat({"a": 60, "b": 30, "c": 10}))
    assert r.statistic == pytest.approx(0.0, abs=1e-12) and r.p_value == pytest.approx(1.0)


def test_chi_squared_calibrated_under_no_change():
    rng = np.random.default_rng(8)
    values, probs = np.array(list("abcdef")), np.array([0.4, 0.25, 0.15, 0.1, 0.07, 0.03])
    ref = CategoricalStats()
    ref.update(rng.choice(values, p=probs, size=50_000).astype(object))
    hits = 0
    for _ in range(300):
        cur = CategoricalStats()
        cur.update(rng.choice(values, p=probs, size=300).astype(object))
        hits += chi_squared(reference=ref, current=cur).p_value <= 0.05
    assert 3 <= hits <= 30  # binomial(300, 0.05): mean 15, sd 3.8


def test_psi_categorical_golden_value():
    r = psi_categorical(reference=cat({"a": 50, "b": 50}), current=cat({"a": 25, "b": 50, "c": 25}))
    eps, b = PSI_EPSILON, 3
    p = (np.array([0.5, 0.5, 0.0]) + eps) / (1 + b * eps)
    q = (np.array([0.25, 0.5, 0.25]) + eps) / (1 + b * eps)
    assert r.statistic == pytest.approx(float(np.sum((q - p) * np.log(q / p))), rel=1e-12)
    # unsmoothed a-term and c-term: .25 ln 2 + .25 ln(.25 / eps)
    assert r.statistic == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(0.25 / eps), rel=0.01)
    assert r.p_value is None


def test_unseen_share():
    r = unseen_share(reference=cat({"a": 10, "b": 10}), current=cat({"a": 90, "z": 7, "y": 3}, missing=50))
    assert r.effect == pytest.approx(0.1) and r.statistic == r.effect
    assert r.detail("top") == "z" and r.detail("distinct") == 2
    assert r.note is None and r.n_current == 100 and r.computed
    # no singleton in the reference: p0 = 0.5 / 21; P(X >= 10) for X ~ Binomial(100, p0)
    p0 = 0.5 / 21
    assert r.detail("p0") == pytest.approx(p0)
    assert r.p_value == pytest.approx(stats.binom.sf(9, 100, p0), rel=1e-9)


def test_unseen_share_p_value_follows_the_reference_missing_mass():
    none_new = unseen_share(reference=cat({"a": 10, "b": 10}), current=cat({"a": 5, "b": 5}))
    assert none_new.p_value == 1.0 and none_new.effect == 0.0
    # a reference full of singletons expects new values: 3 unseen in 10 is then unremarkable
    loose = unseen_share(reference=cat({str(i): 1 for i in range(20)}), current=cat({"x": 3, "0": 7}))
    assert loose.detail("p0") == 1.0 and loose.p_value == pytest.approx(1.0)
    # the same 3 in 10 against a reference that saw two values many times: significant
    tight = unseen_share(reference=cat({"a": 500, "b": 500}), current=cat({"x": 3, "a": 7}))
    assert tight.p_value == pytest.approx(stats.binom.sf(2, 10, 0.5 / 1001), rel=1e-9) and tight.p_value < 1e-6


def test_hashed_summaries_are_compared_on_their_common_buckets():
    rng = np.random.default_rng(2)
    values = rng.zipf(1.5, size=20_000).astype(str).astype(object)
    ref = CategoricalStats(capacity=16)
    ref.update(values)
    cur = CategoricalStats(capacity=16)
    cur_values = rng.zipf(1.5, size=20_000).astype(str).astype(object)
    cur.update(cur_values)
    assert not ref.is_exact and sum(ref.counts().values()) < ref.count
    view = CategoricalView(ref)
    assert view.remainder == ref.count - sum(ref.counts().values())
    for test in CATEGORICAL_TESTS:
        r = test(reference=ref, current=cur)
        assert math.isfinite(r.statistic) and math.isfinite(r.effect)
    assert psi_categorical(reference=ref, current=cur).effect < 0.2
    assert unseen_share(reference=ref, current=cur).note.startswith("hashed buckets")
    # the same data exactly: the hashed comparison moves the effects by little
    exact_ref, exact_cur = CategoricalStats(capacity=100_000), CategoricalStats(capacity=100_000)
    exact_ref.update(values)
    exact_cur.update(cur_values)
    for test in (linf, chi_squared):
        hashed, exact = test(reference=ref, current=cur), test(reference=exact_ref, current=exact_cur)
        assert hashed.effect == pytest.approx(exact.effect, abs=0.01)
    # a real shift of the most frequent value is still seen through its bucket
    shifted = CategoricalStats(capacity=16)
    shifted.update(np.concatenate([cur_values[:16_000], np.full(4_000, "1", dtype=object)]))
    exact_shifted = CategoricalStats(capacity=100_000)
    exact_shifted.update(np.concatenate([cur_values[:16_000], np.full(4_000, "1", dtype=object)]))
    seen = chi_squared(reference=ref, current=shifted).effect
    truth = chi_squared(reference=exact_ref, current=exact_shifted).effect
    # diluted by the other values of its bucket (16 buckets for ~1,000 values here), not hidden
    assert 0.5 * truth < seen <= truth


@pytest.mark.parametrize("test", CATEGORICAL_TESTS)
def test_empty_window_gives_a_defined_result(test):
    empty = cat({}, missing=5)
    for ref, cur in ((cat({"a": 3}), empty), (empty, cat({"a": 3})), (empty, empty)):
        r = test(reference=ref, current=cur)
        assert r.effect == 0.0 and r.p_value is None and r.note == "empty window" and not r.computed


def test_single_category_gives_defined_results():
    ref, cur = cat({"a": 100}), cat({"a": 40})
    r = chi_squared(reference=ref, current=cur)
    assert (r.statistic, r.p_value, r.effect, r.note) == (0.0, 1.0, 0.0, "single category")
    for test in CATEGORICAL_TESTS:
        assert test(reference=ref, current=cur).effect == pytest.approx(0.0, abs=1e-12)


def test_single_reference_category_with_a_new_one_is_caught():
    r = chi_squared(reference=cat({"a": 1000}), current=cat({"a": 80, "b": 20}))
    assert r.p_value < 1e-12 and r.effect == pytest.approx(0.2, abs=1e-3)


def test_bad_min_expected_is_a_config_error():
    with pytest.raises(ConfigError) as exc:
        chi_squared(reference=cat({"a": 1}), current=cat({"a": 1}), min_expected=-1)
    assert exc.value.field == "min_expected"


def test_results_are_named():
    ref, cur = cat({"a": 5, "b": 5}), cat({"a": 5, "c": 5})
    assert [t(reference=ref, current=cur).test for t in CATEGORICAL_TESTS] == [
        TestName.LINF, TestName.CHI_SQUARED, TestName.PSI_CATEGORICAL, TestName.UNSEEN_SHARE]


def test_linf_agrees_with_the_tfdv_adapter_on_bike_data():
    from monitor import tfdv_interop  # pure numpy reproduction, tested against TFDV
    import pandas as pd
    from pathlib import Path

    df = pd.read_csv(Path(__file__).resolve().parents[3] / "data" / "bike_sharing_hourly.csv")
    first, second = df.iloc[:8_000], df.iloc[8_000:]
    for column in ("season", "hr", "weekday", "weathersit"):
        ref, cur = CategoricalStats(), CategoricalStats()
        ref.update(first[column].to_numpy(dtype=object))
        cur.update(second[column].to_numpy(dtype=object))
        ours = linf(reference=ref, current=cur)
        theirs = tfdv_interop.linf_tfdv(reference=ref, current=cur)
        assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-12), column


def test_psi_categorical_pools_a_long_tail_of_rare_values():
    """Thousands of values seen once or twice on each side are sampling noise, not a shift."""
    rng = np.random.default_rng(12)
    def tail(n):
        head = rng.choice(np.array(["a", "b", "c"], dtype=object), size=n // 2, p=[0.5, 0.3, 0.2])
        rest = np.array([f"id{i}" for i in rng.integers(0, 10**7, n - n // 2)], dtype=object)
        return np.concatenate([head, rest])
    ref, cur = CategoricalStats(capacity=100_000), CategoricalStats(capacity=100_000)
    ref.update(tail(20_000))
    cur.update(tail(20_000))
    r = psi_categorical(reference=ref, current=cur)
    assert r.effect < 0.05  # both halves match: a, b, c and "some rare id" in the same shares
    shifted = CategoricalStats(capacity=100_000)
    shifted.update(np.concatenate([np.full(10_000, "a", dtype=object), tail(20_000)[10_000:]]))
    assert psi_categorical(reference=ref, current=shifted).effect > 0.2
