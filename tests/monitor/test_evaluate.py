"""evaluate(): every enabled applicable test per shared feature, one decision per window."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor.compare import TestName, applicable_tests
from monitor.config import MonitorConfig, parse_monitor_config
from monitor.decide import Finding
from monitor.errors import SchemaError
from monitor.evaluate import WindowReport, evaluate
from monitor.schema import FeatureSpec
from monitor.stats import Profile

DATA = Path(__file__).resolve().parents[2] / "data" / "bike_sharing_hourly.csv"
NUMERIC = ["x1", "x2", "x3", "shifted", "scaled"]
CATEGORICAL = ["c1", "c2", "c3"]
SPECS = [FeatureSpec(c, "numeric", "float") for c in NUMERIC] + [
    FeatureSpec(c, "categorical", "string") for c in CATEGORICAL]
VALUES = np.array(list("abcde"), dtype=object)
SHARES = np.array([0.4, 0.25, 0.15, 0.12, 0.08])


def synthetic(rng: np.random.Generator, n: int, *, drift: bool) -> pd.DataFrame:
    """x1, x2, c1 never change; with drift: x3 gets 20% missing, shifted moves 2 sd, scaled
    spreads 4x, c2's mix flips, c3 gets 5% of a new value."""
    d = {f"x{i}": rng.normal(10, 2, size=n) for i in (1, 2, 3)}
    d["shifted"] = rng.normal(14 if drift else 10, 2, size=n)
    d["scaled"] = rng.normal(10, 8 if drift else 2, size=n)
    d["c1"] = rng.choice(VALUES, p=SHARES, size=n)
    d["c2"] = rng.choice(VALUES, p=SHARES[::-1] if drift else SHARES, size=n)
    d["c3"] = rng.choice(VALUES, p=SHARES, size=n)
    if drift:
        d["x3"][rng.random(n) < 0.2] = np.nan
        d["c3"][rng.random(n) < 0.05] = "new"
    return pd.DataFrame(d)


def profile(df: pd.DataFrame, specs=SPECS) -> Profile:
    p = Profile.empty(specs)
    p.update_frame(df)
    return p


@pytest.fixture(scope="module")
def reference() -> Profile:
    return profile(synthetic(np.random.default_rng(0), 20_000, drift=False))


@pytest.fixture(scope="module")
def window() -> pd.DataFrame:
    return synthetic(np.random.default_rng(1), 5_000, drift=True)


def verdicts(report: WindowReport) -> dict[tuple[str, str], str]:
    return {(f.feature, f.test): f.verdict for f in report.findings}


def run(reference, current, config=MonitorConfig(), **kw) -> WindowReport:
    return evaluate(reference=reference, current=current, model="m", config=config, mode=kw.pop("mode", "drift"), **kw)


def test_every_applicable_test_runs_and_the_drifts_are_found(reference, window):
    report = run(reference, profile(window))
    expected = {(s.name, t.value) for s in SPECS for t in applicable_tests(s.kind)}
    assert set(verdicts(report)) == expected and len(report.findings) == len(expected)
    alerting = {(f.feature, f.test) for f in report.alerting}
    assert {f for f, _ in alerting} == {"x3", "shifted", "scaled", "c2", "c3"}
    assert ("x3", "missing_rate") in alerting
    assert {("shifted", "mean_shift"), ("shifted", "ks"), ("scaled", "variance_ratio"), ("c2", "chi_squared"),
            ("c2", "linf"), ("c3", "unseen_share")} <= alerting
    assert ("shifted", "variance_ratio") not in alerting and ("scaled", "mean_shift") not in alerting
    assert (report.rows, report.reference_rows, report.mode, report.model) == (5_000, 20_000, "drift", "m")


def test_one_extreme_row_flips_no_verdict(reference, window):
    spiked = window.copy()
    spiked.loc[2_500, NUMERIC] = 1e9
    spiked.loc[2_501, NUMERIC] = -1e12
    spiked.loc[2_500, CATEGORICAL] = "never-seen"
    assert len(spiked) == 5_000
    clean, dirty = run(reference, profile(window)), run(reference, profile(spiked))
    assert verdicts(dirty) == verdicts(clean)
    # and the rows really were extreme: the exact moments moved by orders of magnitude
    assert abs(profile(spiked).features["x1"].mean) > 1e5


def test_no_change_on_real_data_raises_no_alert():
    df = pd.read_csv(DATA)
    specs = [FeatureSpec(c, "numeric", "float") for c in ("temp", "atemp", "hum", "windspeed")] + [
        FeatureSpec(c, "categorical", "string") for c in ("season", "hr", "holiday", "weekday", "workingday",
                                                          "weathersit")]
    shuffled = df.sample(frac=1.0, random_state=3)
    ref, cur = profile(shuffled.iloc[:12_000], specs), profile(shuffled.iloc[12_000:], specs)
    report = run(ref, cur, mode="skew")
    assert report.alerting == (), [f.message for f in report.alerting]
    # a unit bug at serving time (Fahrenheit instead of Celsius) is training-serving skew
    skewed = shuffled.iloc[12_000:].copy()
    skewed["temp"] = skewed["temp"] * 9 / 5 + 32
    report = run(ref, profile(skewed, specs), mode="skew")
    assert {f.feature for f in report.alerting} == {"temp"}
    assert {f.verdict for f in report.alerting} == {"critical"}


def test_mean_shift_floor_end_to_end():
    rng = np.random.default_rng(5)
    specs = [FeatureSpec("temp", "numeric", "float")]
    ref = profile(pd.DataFrame({"temp": rng.normal(size=100_000)}), specs)
    tiny = profile(pd.DataFrame({"temp": rng.normal(0.05, 1, size=100_000)}), specs)
    half = profile(pd.DataFrame({"temp": rng.normal(0.5, 1, size=10_000)}), specs)
    config = parse_monitor_config({"defaults": {"tests": {t.value: t is TestName.MEAN_SHIFT for t in TestName}}})
    (quiet,) = run(ref, tiny, config).findings
    (loud,) = run(ref, half, config).findings
    assert quiet.test == "mean_shift" and quiet.significant and not quiet.alerting
    assert loud.alerting


def test_disabled_tests_do_not_run(reference, window):
    config = parse_monitor_config({
        "defaults": {"tests": {"wasserstein": False}},
        "models": {"m": {"features": {"shifted": {"tests": {"ks": False, "psi": False}}}}},
    })
    report = run(reference, profile(window), config)
    ran = set(verdicts(report))
    assert not any(t == "wasserstein" for _, t in ran)
    assert ("shifted", "ks") not in ran and ("shifted", "psi") not in ran and ("x1", "ks") in ran


def test_per_feature_floor_changes_the_verdict(reference, window):
    config = parse_monitor_config({"models": {"m": {"features": {"shifted": {"floors": {"mean_shift": 50.0}}}}}})
    by_key = {(f.feature, f.test): f for f in run(reference, profile(window), config).findings}
    assert by_key[("shifted", "mean_shift")].floor == 50.0 and not by_key[("shifted", "mean_shift")].alerting
    assert by_key[("shifted", "ks")].alerting  # the other tests keep their floors


def test_unmatched_features_and_kind_mismatch(reference, window):
    extra = window.assign(only_now=1.0)
    specs = SPECS[1:] + [FeatureSpec("only_now", "numeric", "float")]
    report = run(reference, profile(extra[[s.name for s in specs]], specs))
    assert report.unmatched == ("only_now", "x1")
    assert {f.feature for f in report.findings} == {s.name for s in SPECS[1:]}
    flipped = [FeatureSpec("x1", "categorical", "string")] + SPECS[1:]
    bad = profile(window.assign(x1=window["x1"].round().astype(str)), flipped)
    with pytest.raises(SchemaError) as exc:
        run(reference, bad)
    assert exc.value.feature == "x1"


def test_empty_window_yields_insufficient_data_findings(reference):
    report = run(reference, Profile.empty(SPECS))
    assert report.findings and report.alerting == () and report.rows == 0
    assert all(f.verdict == "insufficient_data" and f.min_samples >= 1 for f in report.findings)


def test_history_applies_persistence(reference, window):
    config = parse_monitor_config({"defaults": {"persistence": {"k": 2, "n": 2}}})
    first = run(reference, profile(window), config)
    assert first.alerting == () and first.decided  # the first window alone cannot make 2 of 2
    assert {f.feature for f in first.decided if f.alerting}
    assert all("needs 2" in f.message for f in first.findings if f.significant and f.effect >= 2 * f.floor)
    held = run(reference, profile(window), config, history=[()])
    assert held.alerting == ()
    # history is what was *decided* before persistence: the held-back alert counts towards k
    confirmed = run(reference, profile(window), config, history=[first.decided])
    assert confirmed.alerting
    assert {(f.feature, f.test) for f in confirmed.alerting} == {(f.feature, f.test) for f in first.decided if f.alerting}
    # feeding the persisted (held) verdicts instead would never confirm
    assert run(reference, profile(window), config, history=[first.findings]).alerting == ()


def test_report_to_dict_is_json_safe(reference, window):
    report = run(reference, profile(window))
    d = report.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert len(d["findings"]) == len(report.findings) and d["failures"] == []
    assert all(isinstance(f, Finding) for f in report.findings)


def _drifting(rng: np.random.Generator, n: int, window: int) -> pd.DataFrame:
    """x drifts 0.01 sd per window (floor / 20); c's share of "a" creeps 0.4 points per window."""
    share = 0.3 + 0.004 * window
    c = np.where(rng.random(n) < share, "a", np.where(rng.random(n) < 0.5, "b", "c")).astype(object)
    return pd.DataFrame({"x": rng.normal(0.01 * window, 1.0, n), "c": c})


TREND_SPECS = [FeatureSpec("x", "numeric", "float"), FeatureSpec("c", "categorical", "string")]


def test_slow_drift_is_caught_by_the_trend_test_within_twelve_windows():
    rng = np.random.default_rng(8)
    ref = profile(_drifting(rng, 100_000, 0), TREND_SPECS)
    history: list = []
    first: dict[str, int] = {}
    for w in range(14):
        report = run(ref, profile(_drifting(rng, 10_000, w), TREND_SPECS), mode="skew", history=history)
        history.append(report.decided)
        for f in report.alerting:
            first.setdefault(f.test, w)
    # the drift reaches 0.3 x floor at window 6; with the 8 windows Mann-Kendall needs, it is reported by
    # window 12 (measured: 9-10), long before mean_shift's own floor (0.2 sd: window 20) or linf's (window 25)
    assert first.get("trend_mean_shift", 99) <= 12 and first.get("trend_linf", 99) <= 12
    assert "mean_shift" not in first and "linf" not in first
    assert all(f.verdict == "warning" for f in report.alerting if f.test.startswith("trend_"))


def test_stationary_windows_raise_no_trend():
    rng = np.random.default_rng(9)
    ref = profile(_drifting(rng, 100_000, 0), TREND_SPECS)
    history: list = []
    for _ in range(30):
        report = run(ref, profile(_drifting(rng, 1_000, 0), TREND_SPECS), mode="skew", history=history)
        history.append(report.decided)
        assert report.alerting == (), [f.message for f in report.alerting]
    assert any(f.test.startswith("trend_") and f.verdict == "ok" for f in report.decided)


def test_drift_mode_has_no_trend_findings(reference, window):
    report = run(reference, profile(window), mode="drift", history=[()] * 12)
    assert not any(f.test.startswith("trend_") for f in report.findings)


def test_tiny_windows_of_real_rows_never_alert():
    """The issue's probe: 1-row and 2-row windows of real training rows (40 trials each)."""
    df = pd.read_csv(DATA)
    specs = [FeatureSpec(c, "numeric", "float") for c in ("temp", "atemp", "hum", "windspeed")] + [
        FeatureSpec(c, "categorical", "string") for c in ("season", "hr", "holiday", "weekday", "workingday",
                                                          "weathersit")]
    ref = profile(df, specs)
    rng = np.random.default_rng(10)
    for rows in (1, 2):
        for _ in range(40):
            report = run(ref, profile(df.iloc[rng.integers(0, len(df), rows)], specs), mode="skew")
            assert report.alerting == ()
            assert all(f.verdict == "insufficient_data" and f.min_samples > rows for f in report.findings)


def test_kept_views_give_the_findings_of_fresh_ones(reference, window):
    """A merge stage keeps the views of the baseline and of each decided window (ViewCache): every
    window compared with both, as skew and drift, gives exactly what fresh views give."""
    from monitor.compare.views import ViewCache

    rng = np.random.default_rng(5)
    windows = [profile(synthetic(rng, 2_000, drift=i % 2 == 1)) for i in range(4)]
    views = ViewCache()
    previous = None
    for current in windows:
        for mode, ref in (("skew", reference), ("drift", previous)):
            if ref is None:
                continue
            fresh = run(ref, current, mode=mode)
            kept = run(ref, current, mode=mode, views=views)
            assert repr(kept.findings) == repr(fresh.findings)  # NaN never equals itself
        previous = current
    assert 0 < len(views) <= len(SPECS) * (len(windows) + 1)


def test_a_kept_view_is_not_used_once_its_statistics_changed(reference, window):
    from monitor.compare.views import ViewCache

    views = ViewCache(capacity=4)
    current = profile(window)
    before = views.numeric(current.features["x1"])
    assert views.numeric(current.features["x1"]) is before
    current.update_frame(window.iloc[:10])  # a profile still being updated must not be kept: guarded anyway
    after = views.numeric(current.features["x1"])
    assert after is not before and after.count == before.count + 10
    for name in NUMERIC:
        views.numeric(reference.features[name])
    assert len(views) == 4  # the least recently used dropped
    assert repr(run(reference, current, views=views).findings) == repr(run(reference, current).findings)


def test_kept_views_do_not_hold_on_to_every_earlier_window(reference):
    """Each window compared with the one before: a kept view must not keep the previous window's view
    alive (through what it memoised against it), or every window ever decided stays in memory."""
    import gc

    from monitor.compare.views import CategoricalView, NumericView, ViewCache

    rng = np.random.default_rng(6)
    views = ViewCache(capacity=4 * len(SPECS))
    previous = None
    for _ in range(30):
        current = profile(synthetic(rng, 500, drift=False))
        run(reference, current, mode="skew", views=views)
        if previous is not None:
            run(previous, current, mode="drift", views=views)
        previous = current
    gc.collect()
    alive = sum(1 for o in gc.get_objects() if isinstance(o, (NumericView, CategoricalView)))
    assert alive <= views.capacity, alive  # 30 windows chained would be some 240
