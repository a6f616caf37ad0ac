"""The decision rule: BH across the window, practical floors, severity, persistence."""

from __future__ import annotations

import json
import math
from dataclasses import fields, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from monitor.compare import TestName, TestResult, mean_shift
from monitor.decide import (
    DEFAULT_FLOORS,
    MODES,
    Finding,
    LargeSample,
    Persistence,
    Policy,
    Trend,
    apply_persistence,
    bh_adjust,
    decide,
    default_min_samples,
    family_adjust,
    trend_findings,
)
from monitor.errors import ConfigError
from monitor.stats import NumericStats


def result(test=TestName.MEAN_SHIFT, *, p=1e-20, effect=1.0, statistic=5.0, n=10_000, **kw) -> TestResult:
    return TestResult(test=test, statistic=statistic, p_value=p, effect=effect, n_reference=n, n_current=n, **kw)


BASE = Policy(large_sample=LargeSample(enabled=False))  # rules 1-3 only


def one(results, policy=BASE, **kw) -> tuple[Finding, ...]:
    return decide(results, policy=policy, model="bikeshare", mode=kw.pop("mode", "skew"), **kw)


# -- Benjamini-Hochberg --------------------------------------------------------------------------

def test_bh_hand_worked_example():
    # sorted: .005 (1), .01 (2), .03 (3), .04 (4); p*m/i = .02, .02, .04, .04; running min from the top
    q = bh_adjust([0.01, 0.04, 0.03, 0.005])
    assert q.tolist() == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # a later small p pulls earlier q-values down (step-up): .02*3/2 = .03 > .021*3/3
    assert bh_adjust([0.02, 0.02, 0.021]).tolist() == pytest.approx([0.021, 0.021, 0.021])
    assert bh_adjust([]).size == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0, allow_nan=False), min_size=1, max_size=60))
def test_bh_matches_scipy_false_discovery_control(ps):
    assert bh_adjust(ps) == pytest.approx(stats.false_discovery_control(np.array(ps)), rel=1e-12, abs=1e-15)


def test_bh_family_is_the_whole_window():
    # three p-values below .01, but among 10 tests only the smallest survives BH at .01:
    # q = .0005*10/1 = .005; .009*10/3 = .03 for both .009s
    rs = [("f%d" % i, result(p=p)) for i, p in enumerate([0.0005, 0.009, 0.009] + [0.9] * 7)]
    fs = one(rs)
    assert [f.significant for f in fs] == [True] + [False] * 9
    assert [f.q_value for f in fs[:3]] == pytest.approx([0.005, 0.03, 0.03])
    assert all(f.verdict == "ok" for f in fs[1:])


# -- floors, severity, gates ---------------------------------------------------------------------

def test_floor_and_severity():
    floor = DEFAULT_FLOORS[TestName.MEAN_SHIFT]
    fs = one([("a", result(effect=0.1)), ("b", result(effect=floor)), ("c", result(effect=0.39)),
              ("d", result(effect=0.4)), ("e", result(effect=5.0, p=0.5))])
    assert [f.verdict for f in fs] == ["ok", "warning", "warning", "critical", "ok"]
    assert [f.significant for f in fs] == [True, True, True, True, False]
    assert all(f.floor == floor for f in fs)
    assert [f.alerting for f in fs] == [False, True, True, True, False]


def test_severity_multiplier_is_configurable():
    fs = one([("a", result(effect=0.5))], Policy(severity_multiplier=3.0))
    assert fs[0].verdict == "warning"


def test_tests_without_p_value_need_min_count_values():
    small = TestResult(test=TestName.WASSERSTEIN, statistic=0.5, p_value=None, effect=0.5,
                       n_reference=50_000, n_current=999)
    large = TestResult(test=TestName.WASSERSTEIN, statistic=0.5, p_value=None, effect=0.5,
                       n_reference=50_000, n_current=1000)
    fs = one([("x", small), ("y", large)], Policy(min_count=1000))
    assert (fs[0].significant, fs[0].verdict, fs[0].q_value, fs[0].min_samples) == (False, "insufficient_data", None, 1000)
    assert not fs[0].alerting and "needs 1000 values" in fs[0].message
    assert (fs[1].significant, fs[1].verdict, fs[1].min_samples) == (True, "critical", None)


def test_p_less_results_do_not_enter_the_bh_family():
    p_less = TestResult(test=TestName.LINF, statistic=0.0, p_value=None, effect=0.0, n_reference=5000, n_current=5000)
    fs = one([("a", result(p=0.004)), ("a", p_less), ("b", result(p=0.008))])
    assert fs[0].q_value == pytest.approx(0.008) and fs[2].q_value == pytest.approx(0.008)


def test_per_feature_policy():
    strict = Policy(floors={TestName.MEAN_SHIFT: 2.0})
    policies = {"temp": strict, "hum": Policy()}
    fs = decide([("temp", result(effect=1.0, p=1e-5)), ("hum", result(effect=1.0, p=1e-5))],
                policy=policies.__getitem__, model="m", mode="drift")
    assert [(f.floor, f.verdict) for f in fs] == [(2.0, "ok"), (0.2, "critical")]
    assert all(f.mode == "drift" and f.model == "m" for f in fs)


def test_every_result_yields_a_finding_with_the_exact_fields():
    insufficient = TestResult(test=TestName.KS, statistic=0.0, p_value=None, effect=0.0, n_reference=5000,
                              n_current=0, note="empty window", computed=False)
    rs = [("temp", result()), ("temp", insufficient)]
    fs = one(rs)
    assert len(fs) == 2
    assert [f.name for f in fields(Finding)] == [
        "model", "feature", "test", "mode", "statistic", "p_value", "q_value", "effect", "floor",
        "significant", "verdict", "message", "min_samples"]
    assert fs[0].test == "mean_shift" and isinstance(fs[0].test, str)
    assert (fs[1].verdict, fs[1].significant, fs[1].alerting, fs[1].min_samples) == ("insufficient_data", False, False, 20)
    assert fs[1].message == "temp: ks has too little data (empty window; needs 20 values each side; n_ref=5000, n_cur=0)"


def test_message_is_one_human_line():
    f = one([("temp", result(effect=4.1, p=1e-30))])[0]
    assert f.message == "temp: mean moved 4.1 baseline sd (floor 0.2), q<1e-12"
    f = one([("temp", result(effect=0.25, p=0.001))])[0]
    assert f.message == "temp: mean moved 0.25 baseline sd (floor 0.2), q=0.001"
    missing = TestResult(test=TestName.MISSING_RATE, statistic=9.0, p_value=1e-6, effect=0.1, n_reference=1000,
                         n_current=1000, details=(("share_reference", 0.05), ("share_current", 0.15)))
    assert one([("hum", missing)])[0].message.startswith("hum: missing share 5.0% -> 15.0% (change 0.1, floor 0.05)")
    assert all("\n" not in f.message for f in one([("x", result()), ("y", missing)]))


def test_to_dict_is_json_safe():
    f = one([("temp", result())])[0]
    d = f.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert set(d) == {x.name for x in fields(Finding)}
    weird = Finding(model="m", feature="f", test="ks", mode="skew", statistic=math.inf, p_value=math.nan,
                    q_value=None, effect=0.0, floor=0.1, significant=False, verdict="ok", message="x")
    assert weird.to_dict()["statistic"] is None and weird.to_dict()["p_value"] is None


def test_invalid_mode_and_policy_values_are_config_errors():
    with pytest.raises(ConfigError) as exc:
        one([("a", result())], mode="later")
    assert exc.value.field == "mode"
    for kwargs, field in (({"bh_level": 0.0}, "bh_level"), ({"bh_level": 1.0}, "bh_level"),
                          ({"severity_multiplier": 0.5}, "severity_multiplier"), ({"min_count": 0}, "min_count"),
                          ({"floors": {"psi": -1.0}}, "floors.psi"), ({"floors": {"nope": 1.0}}, "floors.nope")):
        with pytest.raises(ConfigError) as exc:
            Policy(**kwargs)
        assert exc.value.field == field
    with pytest.raises(ConfigError):
        Persistence(k=3, n=2)


# -- the practical floor on real statistics ------------------------------------------------------

def _stats(x: np.ndarray) -> NumericStats:
    s = NumericStats()
    s.update(x)
    return s


def test_tiny_shift_at_large_n_is_significant_but_below_floor():
    rng = np.random.default_rng(12)
    ref = _stats(rng.normal(size=100_000))
    cur = _stats(rng.normal(0.05, 1.0, size=100_000))
    f = one([("temp", mean_shift(reference=ref, current=cur))])[0]
    assert f.significant and f.effect < f.floor and f.verdict == "ok"


def test_half_sd_shift_at_10k_alerts():
    rng = np.random.default_rng(13)
    ref = _stats(rng.normal(size=100_000))
    cur = _stats(rng.normal(0.5, 1.0, size=10_000))
    f = one([("temp", mean_shift(reference=ref, current=cur))])[0]
    assert f.significant and f.verdict == "critical"  # 0.5 >= 2 x 0.2
    assert f.effect == pytest.approx(0.5, abs=0.06)  # trimmed mean of a 1% trim vs the true shift
    assert f.message.startswith("temp: mean moved 0.") and f.message.endswith("(floor 0.2), q<1e-12")


# -- persistence ---------------------------------------------------------------------------------

def _finding(verdict="warning", feature="temp", test="mean_shift") -> Finding:
    return Finding(model="bikeshare", feature=feature, test=test, mode="drift", statistic=1.0, p_value=0.0,
                   q_value=0.0, effect=1.0, floor=0.2, significant=True, verdict=verdict, message="temp: moved")


def test_persistence_k_of_n():
    policy = Policy(persistence=Persistence(k=2, n=3))
    now = (_finding(),)
    assert apply_persistence(now, [], policy=policy)[0].verdict == "ok"
    assert "1 of the last 3 windows" in apply_persistence(now, [], policy=policy)[0].message
    assert apply_persistence(now, [(_finding(),)], policy=policy)[0].verdict == "warning"
    # only the last n - 1 = 2 earlier windows count
    old_alert = [(_finding(),), (_finding("ok"),), (_finding("ok"),)]
    assert apply_persistence(now, old_alert, policy=policy)[0].verdict == "ok"
    # other features and tests do not count
    other = [(_finding(feature="hum"), _finding(test="ks"))]
    assert apply_persistence(now, other, policy=policy)[0].verdict == "ok"


def test_persistence_leaves_ok_and_unruled_findings_alone():
    ok = (_finding("ok"),)
    assert apply_persistence(ok, [], policy=Policy(persistence=Persistence(k=2, n=2))) == ok
    alert = (_finding("critical"),)
    assert apply_persistence(alert, [], policy=Policy()) == alert
    assert apply_persistence(alert, [], policy=Policy(persistence=Persistence(k=1, n=1))) == alert


def test_adapter_results_are_decided_like_the_others():
    r = TestResult(test=TestName.LINF_TFDV, statistic=0.3, p_value=None, effect=0.3, n_reference=5000,
                   n_current=5000, details=(("value", "fall"),))
    (f,) = one([("season", r)])
    assert (f.test, f.floor, f.verdict) == ("linf_tfdv", 0.1, "critical")
    assert f.message == "season: TFDV L-infinity distance 0.3, value 'fall' (floor 0.1)"


# -- minimum sample sizes (rule 0) ----------------------------------------------------------------

def test_default_minimum_sample_sizes_follow_the_table():
    pol = Policy()
    expected = {TestName.MEAN_SHIFT: 100, TestName.VARIANCE_RATIO: 100, TestName.KS: 20, TestName.WASSERSTEIN: 1000,
                TestName.PSI: 1000, TestName.JSD: 1000, TestName.LINF: 1000, TestName.CHI_SQUARED: 20,
                TestName.PSI_CATEGORICAL: 1000, TestName.UNSEEN_SHARE: 200, TestName.MISSING_RATE: 40,
                TestName.JSD_TFDV: 1000, TestName.LINF_TFDV: 1000, TestName.TFDV_SCHEMA: 1}
    assert {t: pol.minimum(t) for t in expected} == expected
    # the share-scale minimum follows the floor: one value moves the share by at most half of it
    assert Policy(floors={TestName.MISSING_RATE: 0.02}).minimum(TestName.MISSING_RATE) == 100
    assert default_min_samples(TestName.KS, floor=0.05, min_count=1000) == 40
    assert Policy(min_samples={"ks": 7}).minimum(TestName.KS) == 7
    with pytest.raises(ConfigError) as exc:
        Policy(min_samples={"ks": 0})
    assert exc.value.field == "min_samples.ks"


def test_a_one_row_window_never_alerts_and_says_what_it_needs():
    """The two cases of the issue: one missing value, two rows with moments far from the baseline."""
    one_missing = TestResult(test=TestName.MISSING_RATE, statistic=25.0, p_value=1e-6, effect=0.93,
                             n_reference=8645, n_current=1)
    moved = TestResult(test=TestName.MEAN_SHIFT, statistic=40.0, p_value=1e-14, effect=3.0, n_reference=8645,
                       n_current=2)
    spread = TestResult(test=TestName.VARIANCE_RATIO, statistic=30.0, p_value=1e-13, effect=3.4,
                        n_reference=8645, n_current=2)
    fs = one([("hum", one_missing), ("temp", moved), ("temp", spread)])
    assert [(f.verdict, f.min_samples, f.alerting) for f in fs] == [
        ("insufficient_data", 40, False), ("insufficient_data", 100, False), ("insufficient_data", 100, False)]
    assert all(f.q_value is None for f in fs)  # they stay out of the BH family


def test_insufficient_results_do_not_dilute_the_bh_family():
    tiny = TestResult(test=TestName.KS, statistic=0.5, p_value=0.5, effect=0.5, n_reference=5000, n_current=3)
    fs = one([("a", result(p=0.004)), ("b", tiny), ("c", result(p=0.008))])
    assert fs[0].q_value == pytest.approx(0.008) and fs[1].verdict == "insufficient_data"


def test_every_mode_is_accepted():
    assert MODES == ("skew", "drift", "seasonal", "median", "pinned", "version")
    for mode in MODES:
        assert one([("a", result())], mode=mode)[0].mode == mode


# -- large-sample tier (rule 4) -------------------------------------------------------------------

def _share(effect, p, n):
    return TestResult(test=TestName.CHI_SQUARED, statistic=900.0, p_value=p, effect=effect, n_reference=8645,
                      n_current=n)


def test_overwhelming_evidence_on_large_samples_warns_from_half_the_floor():
    fs = decide([("season", _share(0.07, 1e-100, 50_000)), ("hr", _share(0.07, 1e-100, 5_000)),
                 ("wx", _share(0.04, 1e-100, 50_000)), ("day", _share(0.07, 1e-5, 50_000))],
                policy=Policy(), model="m", mode="skew")
    assert [f.verdict for f in fs] == ["warning", "ok", "ok", "ok"]
    assert "large-sample tier" in fs[0].message and fs[0].significant
    big = decide([("season", _share(0.5, 1e-100, 50_000))], policy=Policy(), model="m", mode="skew")[0]
    assert big.verdict == "critical"  # the normal rule still decides above the floor
    off = decide([("season", _share(0.07, 1e-100, 50_000))], policy=BASE, model="m", mode="skew")[0]
    assert off.verdict == "ok"
    with pytest.raises(ConfigError):
        LargeSample(fraction=0.0)


# -- trends (rule 5) ------------------------------------------------------------------------------

def _base(effect, *, verdict="ok", test="mean_shift", mode="skew", significant=True):
    return Finding(model="m", feature="temp", test=test, mode=mode, statistic=1.0, p_value=1e-4, q_value=1e-4,
                   effect=effect, floor=0.2, significant=significant, verdict=verdict, message="x")


def test_a_steadily_rising_effect_is_a_trend_warning():
    history = [(_base(0.01 * i),) for i in range(11)]
    (f,) = trend_findings((_base(0.11),), history, policy=Policy())
    assert f.test == "trend_mean_shift" and f.floor == pytest.approx(0.06) and f.verdict == "warning"
    assert f.effect == pytest.approx(0.11) and f.significant and "rising" in f.message
    # the same values in random order: no trend
    rng = np.random.default_rng(0)
    shuffled = [(_base(e),) for e in rng.permutation([0.01 * i for i in range(11)])]
    (g,) = trend_findings((_base(0.05),), shuffled, policy=Policy())
    assert g.verdict == "ok"


def test_trend_gates_history_length_mode_and_redundancy():
    history = [(_base(0.01 * i),) for i in range(11)]
    (short,) = trend_findings((_base(0.11),), history[-5:], policy=Policy())
    assert (short.verdict, short.min_samples) == ("insufficient_data", 8)
    assert trend_findings((_base(0.11, mode="drift"),), [(_base(0.01 * i, mode="drift"),) for i in range(11)],
                          policy=Policy()) == ()
    (already,) = trend_findings((_base(0.25, verdict="warning"),), history, policy=Policy())
    assert already.verdict == "ok" and "already alerting" in already.message
    (quiet,) = trend_findings((_base(0.11, significant=False),), history, policy=Policy())
    assert quiet.verdict == "ok"
    assert trend_findings((_base(0.11),), history, policy=Policy(trend=Trend(enabled=False))) == ()
    assert trend_findings((_base(0.11, test="psi"),), history, policy=Policy()) == ()  # no trend for psi


def test_a_trend_counts_only_the_last_windows_not_the_last_computed_results():
    # Trend: "over the last `windows` windows (this one included)": windows where the base test had too little
    # data count as windows, and results older than them are not reached for (they were, to fill the series)
    rising = [(_base(0.01 * i),) for i in range(15)]
    thin = [(replace(_base(0.0), verdict="insufficient_data", min_samples=100),)] * 5
    (f,) = trend_findings((_base(0.2),), rising + thin, policy=Policy())
    assert (f.verdict, f.min_samples) == ("insufficient_data", 8) and "7 windows of history, needs 8" in f.message
    (g,) = trend_findings((_base(0.2),), rising + thin[:3], policy=Policy())  # 8 computed of the last 12
    assert g.verdict == "warning"
    (h,) = trend_findings((_base(0.2),), rising + thin, policy=Policy(trend=Trend(windows=16)))
    assert h.verdict == "warning"  # a longer rule reaches back further
    # only the last windows - 1 earlier windows count, whatever the history holds
    (k,) = trend_findings((_base(0.11),), [(_base(5.0),)] * 20 + [(_base(0.01 * i),) for i in range(11)],
                          policy=Policy())
    assert k == trend_findings((_base(0.11),), [(_base(0.01 * i),) for i in range(11)], policy=Policy())[0]


def test_mann_kendall_and_sen_against_scipy():
    from monitor.compare.trend import mann_kendall, trend

    rng = np.random.default_rng(3)
    y = np.round(rng.normal(0, 1, 15) + 0.1 * np.arange(15), 1)  # with ties
    s, p = mann_kendall(y)
    tau = stats.kendalltau(np.arange(15), y)
    _, ties = np.unique(y, return_counts=True)
    n0 = 15 * 14 / 2
    n2 = float(np.sum(ties * (ties - 1) / 2))
    assert s == pytest.approx(tau.statistic * math.sqrt(n0 * (n0 - n2)))
    r = trend(test=TestName.TREND_KS, effects=y, n_current=1, n_reference=1)
    sen = stats.theilslopes(y, np.arange(15), method="joint")
    assert r.detail("slope") == pytest.approx(sen.slope) and r.effect == pytest.approx(max(0.0, sen.intercept + 14 * sen.slope))
    assert r.p_value == pytest.approx(p)


# -- several families decided apart (segments) ---------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(1e-30, 1.0), min_size=1, max_size=40), st.integers(1, 12))
def test_families_run_each_bh_at_level_over_families(ps, families):
    """Alerting with ``families`` is BH at bh_level / families on the same p-values."""
    results = [(f"f{i}", result(p=p)) for i, p in enumerate(ps)]
    level = BASE.bh_level
    got = [f.significant for f in one(results, families=families)]
    q = bh_adjust(ps)
    assert got == [bool(v <= level / families) for v in q]
    assert [f.significant for f in one(results, families=1)] == [bool(v <= level) for v in q]


def test_families_keep_the_false_discovery_rate_over_all_of_them():
    """Twelve null families of 30 tests each (uniform p-values): with the adjustment the share of
    runs with any false alert across all families stays near bh_level (every null is false, so
    FDR = FWER here); deciding each family alone at bh_level has about 12x as many."""
    rng = np.random.default_rng(7)
    level, families, runs = 0.05, 12, 1000
    pol = Policy(bh_level=level, large_sample=LargeSample(enabled=False))
    joint = alone = 0
    for _ in range(runs):
        ps = rng.uniform(size=(families, 30))
        any_joint = any(f.significant for fam in ps for f in one([(f"f{i}", result(p=p)) for i, p in enumerate(fam)],
                                                                 policy=pol, families=families))
        any_alone = any((bh_adjust(fam) <= level).any() for fam in ps)
        joint += any_joint
        alone += any_alone
    assert joint / runs <= level + 3 * math.sqrt(level * (1 - level) / runs)
    assert alone / runs > 5 * level


def test_family_adjust_and_bad_family_counts():
    q = np.array([0.001, 0.02, 0.5])
    assert family_adjust(q, 1) is q
    np.testing.assert_allclose(family_adjust(q, 4), [0.004, 0.08, 1.0])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError) as err:
            one([("f", result())], families=bad)
        assert err.value.field == "families"
