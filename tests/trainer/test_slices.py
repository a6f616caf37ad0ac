"""Per-slot and per-segment baselines: every slot kind a config may name is built, each slice is the
profile of exactly its training rows, and slices too small to compare with are left out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitor.schema import FeatureSpec
from monitor.slots import SLOT_KINDS, slot_key, slot_of
from trainer.baseline import feature_profile, prediction_profile
from trainer.slices import MIN_ROWS, slot_baselines, slot_series

SPECS = (FeatureSpec("temp", "numeric", "float"), FeatureSpec("weathersit", "categorical", "string"))


def _rows(hours: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    times = pd.date_range("2011-01-01", periods=hours, freq="h", tz="UTC")
    df = pd.DataFrame({"event_time": times, "temp": rng.normal(0.5, 0.2, hours),
                       "weathersit": rng.choice(["1", "2", "3"], hours)})
    return df, rng.normal(100, 30, hours)


@pytest.mark.parametrize("kind", SLOT_KINDS)
def test_slot_series_matches_slot_of(kind):
    times = pd.Series(pd.to_datetime(
        ["1970-01-01T00:00:00Z", "2011-01-02T23:59:59Z", "2012-12-31T12:00:00Z", "2015-12-28T05:00:00Z",
         "2016-01-03T17:30:00Z", "2020-02-29T23:00:00Z"], utc=True))
    ms = times.astype("int64") // 1_000_000
    assert slot_series(times, kind).tolist() == [slot_of(int(t), kind) for t in ms]


def test_every_slot_kind_is_built_from_exactly_its_rows():
    df, predictions = _rows(24 * 7 * 60)  # 60 weeks: every slot of every kind has at least 24 rows
    built = slot_baselines(df, SPECS, predictions)
    ms = (df["event_time"].astype("int64") // 1_000_000).to_numpy()
    for kind in SLOT_KINDS:
        slots = np.array([slot_of(int(t), kind) for t in ms])
        for slot in np.unique(slots):
            rows = slots == slot
            name = slot_key(kind, int(slot))
            if rows.sum() < MIN_ROWS:
                assert f"features/{name}" not in built
                continue
            assert built[f"features/{name}"].to_bytes() == feature_profile(df[rows], SPECS).to_bytes()
            assert built[f"output/{name}"].to_bytes() == prediction_profile(predictions[rows]).to_bytes()
    assert {k.split("/")[1].split(":")[0] for k in built} == set(SLOT_KINDS)


def test_slots_with_too_few_rows_are_left_out():
    df, predictions = _rows(24 * 3)  # three days: each hour of the week has one row
    built = slot_baselines(df, SPECS, predictions)
    assert not any(k.startswith("features/hour_of_week:") for k in built)
    assert "features/hour_of_day:0" not in built  # 3 rows
    assert f"features/{slot_key('month_of_year', 1)}" in built  # 72 rows
