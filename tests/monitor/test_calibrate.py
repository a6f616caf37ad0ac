"""skewwatch calibrate: the replay's counts against a brute-force loop over the same windows."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor.calibrate import read_rows, render, replay, window_plan
from monitor.config import parse_monitor_config
from monitor.evaluate import evaluate
from monitor.stats import Profile
from trainer.data import BIKESHARE_FEATURES, load_bikeshare

DATA = Path(__file__).resolve().parents[2] / "data" / "bike_sharing_hourly.csv"


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    df = load_bikeshare(DATA)
    return df[df["event_time"].dt.year == 2011].reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(rows) -> Profile:
    p = Profile.empty(BIKESHARE_FEATURES)
    p.update_frame(rows)
    return p


@pytest.fixture(scope="module")
def other_year() -> Profile:
    """2012 as the reference of 2011's rows: real differences, so that the replay has alerts to count."""
    df = load_bikeshare(DATA)
    p = Profile.empty(BIKESHARE_FEATURES)
    p.update_frame(df[df["event_time"].dt.year == 2012])
    return p


def test_window_plan_shapes():
    shuffled = list(window_plan(10, window_rows=4, windows=7, seed=1, order="shuffled"))
    assert len(shuffled) == 7 and all(len(w) == 4 and len(set(w.tolist())) == 4 for w in shuffled)
    assert list(window_plan(10, window_rows=4, windows=7, seed=1, order="shuffled"))[3].tolist() == shuffled[3].tolist()
    times = np.array([5, 1, 4, 2, 3, 0, 9, 8, 7, 6])
    ordered = list(window_plan(10, window_rows=3, windows=99, seed=0, order="time", times=times))
    assert [w.tolist() for w in ordered] == [[5, 1, 3], [4, 2, 0], [9, 8, 7]]
    assert all(len(w) == 25 for w in window_plan(10, window_rows=25, windows=3, seed=0, order="shuffled"))


@pytest.mark.parametrize("order", ["shuffled", "time"])
def test_replay_counts_equal_a_brute_force_count(rows, other_year, order):
    # a reference that differs, low floors so that some findings alert and some do not, and a
    # persistence rule so that the history the replay threads through matters
    reference = other_year
    config = parse_monitor_config({"defaults": {"floors": {"ks": 0.05, "linf": 0.05, "chi_squared": 0.05,
                                                           "mean_shift": 0.1},
                                                "persistence": {"k": 2, "n": 3}},
                                   "calibration": {"window_rows": 500, "windows": 25, "seed": 4}})
    report = replay(reference=reference, rows=rows, specs=BIKESHARE_FEATURES, model="bikeshare", config=config,
                    order=order)
    brute: Counter = Counter()
    brute_critical: Counter = Counter()
    windows_alerting = 0
    history: list = []
    plan = list(window_plan(len(rows), window_rows=500, windows=25, seed=4, order=order,
                            times=rows["event_time"].to_numpy()))
    for picks in plan:
        current = Profile.empty(BIKESHARE_FEATURES)
        current.update_frame(rows.iloc[picks][[s.name for s in BIKESHARE_FEATURES]])
        result = evaluate(reference=reference, current=current, model="bikeshare", config=config, mode="skew",
                          history=history)
        history.append(result.decided)
        hit = False
        for f in result.findings:
            if f.verdict in ("warning", "critical"):
                brute[(f.test, f.feature)] += 1
                brute_critical[(f.test, f.feature)] += f.verdict == "critical"
                hit = True
        windows_alerting += hit
    assert report.windows == len(plan) == (25 if order == "shuffled" else len(rows) // 500)
    assert dict(report.alerts) == dict(brute) and sum(brute.values()) > 0
    assert any(v < report.windows for v in brute.values())  # not everything alerts in every window
    assert {k: v for k, v in report.critical.items() if v} == {k: v for k, v in brute_critical.items() if v}
    assert report.windows_alerting == windows_alerting
    text = render(report)
    assert f"{report.windows} windows of 500 rows" in text
    top_test, top_feature = max(brute, key=lambda k: (brute[k], k))
    assert top_test in text and f"{1000 * brute[(top_test, top_feature)] / report.windows:.1f}" in text


def test_default_config_is_quiet_on_shuffled_training_rows(rows, reference):
    report = replay(reference=reference, rows=rows, specs=BIKESHARE_FEATURES, model="bikeshare",
                    config=parse_monitor_config({"calibration": {"window_rows": 1000, "windows": 40}}))
    assert report.windows == 40 and report.windows_alerting == 0


def test_read_rows_parses_a_bundle_sample(tmp_path, rows):
    sample = rows.head(50).copy()
    sample["event_time"] = sample["event_time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    sample.loc[3, "weathersit"] = None
    path = tmp_path / "sample.csv"
    sample.to_csv(path, index=False)
    back = read_rows(path, BIKESHARE_FEATURES)
    assert back["temp"].dtype == np.float64 and back.loc[3, "weathersit"] is None
    assert str(back["event_time"].dt.tz) == "UTC" and len(back) == 50
