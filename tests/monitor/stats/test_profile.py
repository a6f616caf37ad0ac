"""Profile on the bike-sharing data: frames, columns and JSON instances agree with pandas and
with each other; bad instances are reported and skipped without losing the valid ones."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor.errors import SchemaError, StatisticsError
from monitor.schema import FeatureSpec
from monitor.stats import FORMAT_VERSION, CategoricalStats, NumericStats, Profile, columns_from_instances

DATA = Path(__file__).resolve().parents[3] / "data" / "bike_sharing_hourly.csv"
NUMERIC = ("temp", "atemp", "hum", "windspeed")
CATEGORICAL = ("season", "hr", "holiday", "weekday", "workingday", "weathersit")
SPECS = tuple(FeatureSpec(n, "numeric", "float") for n in NUMERIC) + tuple(
    FeatureSpec(n, "categorical", "string") for n in CATEGORICAL
)


@pytest.fixture(scope="module")
def bikes() -> pd.DataFrame:
    return pd.read_csv(DATA)


def instances_of(df: pd.DataFrame) -> list[dict]:
    """Rows as a client would send them: missing values absent or null, label columns extra."""
    out = []
    for i, row in enumerate(df.to_dict("records")):
        inst = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        if i % 2 and inst["weekday"] is None:
            del inst["weekday"]  # absent and null both mean missing
        out.append(inst)
    return out


def test_frame_matches_pandas(bikes: pd.DataFrame) -> None:
    p = Profile.empty(SPECS)
    for chunk in np.array_split(bikes, 9):
        p.update_frame(chunk)
    assert p.rows == len(bikes) == 17_379
    assert set(p.features) == set(NUMERIC + CATEGORICAL)
    for name in NUMERIC:
        s = p[name]
        assert isinstance(s, NumericStats)
        col = bikes[name]
        assert (s.count, s.missing) == (col.notna().sum(), col.isna().sum())
        assert s.mean == pytest.approx(col.mean(), rel=1e-9)
        assert s.variance == pytest.approx(col.var(ddof=1), rel=1e-9)
        assert (s.min, s.max) == (col.min(), col.max())
    for name in CATEGORICAL:
        s = p[name]
        assert isinstance(s, CategoricalStats)
        assert s.counts() == bikes[name].value_counts().to_dict()
        assert s.missing == bikes[name].isna().sum()
    assert (p["weekday"].missing, p["weathersit"].missing) == (875, 1258)
    assert p.unknown_features == {}  # frame columns that are not features are ignored


def test_instances_match_frame(bikes: pd.DataFrame) -> None:
    df = bikes.iloc[:3000]
    from_frame, from_instances = Profile.empty(SPECS), Profile.empty(SPECS)
    from_frame.update_frame(df)
    assert from_instances.update_instances(instances_of(df)) == []
    assert from_instances.rows == from_frame.rows
    for name in NUMERIC:
        a, b = from_frame[name], from_instances[name]
        assert (a.count, a.missing, a.min, a.max, a.sum, a.mean, a.m2) == (b.count, b.missing, b.min, b.max, b.sum, b.mean, b.m2)
    for name in CATEGORICAL:
        assert from_frame[name] == from_instances[name]
    extra = Counter(k for inst in instances_of(df) for k in inst if k not in {s.name for s in SPECS})
    assert from_instances.unknown_features == dict(extra)
    assert set(extra) == {"dteday", "casual", "registered", "cnt"}


def test_bad_instances_are_reported_and_skipped(bikes: pd.DataFrame) -> None:
    good = instances_of(bikes.iloc[:200])
    batch = list(good)
    batch[3] = {**good[3], "temp": "warm"}
    batch[10] = {**good[10], "hum": True}
    batch[11] = {**good[11], "season": ["spring"], "windspeed": "fast"}
    batch[50] = "not an object"
    batch[60] = {**good[60], "atemp": 10**400}
    bad_index = {3, 10, 11, 50, 60}

    strict = Profile.empty(SPECS)
    with pytest.raises(SchemaError) as info:
        strict.update_instances(batch)
    assert (info.value.instance, info.value.feature) == (3, "temp")
    assert strict == Profile.empty(SPECS)  # all or nothing

    lenient = Profile.empty(SPECS)
    errors = lenient.update_instances(batch, skip_invalid=True)
    # sorted by instance; within one instance in spec order (numeric features come first here)
    assert [(e.instance, e.feature) for e in errors] == [
        (3, "temp"), (10, "hum"), (11, "windspeed"), (11, "season"), (50, None), (60, "atemp"),
    ]  # fmt: skip
    only_valid = Profile.empty(SPECS)
    only_valid.update_instances([inst for i, inst in enumerate(batch) if i not in bad_index])
    assert lenient == only_valid
    assert lenient.rows == 200 - len(bad_index)


def test_columns_from_instances() -> None:
    specs = (FeatureSpec("x", "numeric", "int"), FeatureSpec("c", "categorical", "string"))
    instances = [{"x": 1, "c": "a"}, {"x": None}, {"c": 2}, {"x": "2", "c": "b"}, {"x": 2.5, "c": True, "z": 0}]
    columns, errors = columns_from_instances(instances, specs)
    assert [(e.instance, e.feature) for e in errors] == [(3, "x")]
    assert "instances[3] 'x'" in str(errors[0])
    np.testing.assert_array_equal(columns["x"], [1.0, np.nan, np.nan, 2.5])
    assert columns["c"].tolist() == ["a", None, 2, True]
    assert columns["x"].dtype == np.float64 and columns["c"].dtype == object
    p = Profile.empty(specs)
    assert p.columns_from_instances(instances)[0].keys() == columns.keys()
    p.update_columns(columns)
    assert p.rows == 4 and p["c"].counts() == {"a": 1, "2": 1, "true": 1} and p["x"].missing == 2


def test_update_columns_checks_before_changing() -> None:
    p = Profile.empty(SPECS)
    with pytest.raises(SchemaError) as info:
        p.update_columns({"temp": [1.0, 2.0], "hum": [1.0]})
    assert info.value.feature == "hum"
    with pytest.raises(SchemaError) as info:
        p.update_columns({"season": ["spring", "fall"], "temp": [1.0, "hot"]})
    assert info.value.feature == "temp"
    assert p == Profile.empty(SPECS)
    p.update_columns({"temp": [1.0, 2.0]})  # absent features count as missing
    assert p.rows == 2 and p["temp"].count == 2 and p["hum"].missing == 2 and p["season"].missing == 2


def test_merge_with_different_specs_fails() -> None:
    a = Profile.empty(SPECS)
    with pytest.raises(StatisticsError):
        a.merge(Profile.empty(SPECS[:-1]))
    with pytest.raises(StatisticsError):
        a.merge(Profile.empty(SPECS, bins=100))
    with pytest.raises(StatisticsError):
        a.merge(NumericStats())  # type: ignore[arg-type]
    with pytest.raises(SchemaError):
        Profile.empty((SPECS[0], SPECS[0]))
    with pytest.raises(SchemaError):
        a["nope"]


def test_bytes_round_trip_and_corruption(bikes: pd.DataFrame) -> None:
    p = Profile.empty(SPECS)
    p.update_instances(instances_of(bikes.iloc[:2000]))
    raw = p.to_bytes()
    back = Profile.from_bytes(raw)
    assert back == p and back.to_bytes() == raw and back.specs == SPECS
    assert back.unknown_features == p.unknown_features
    rng = np.random.default_rng(6)
    bad_inputs = [raw[:cut] for cut in rng.integers(0, len(raw), 100)] + [raw + b"\x00", bytes([FORMAT_VERSION + 1]) + raw[1:]]
    for pos in rng.integers(0, len(raw), 100):
        flipped = bytearray(raw)
        flipped[pos] ^= 0xFF
        bad_inputs.append(bytes(flipped))
    for bad in bad_inputs:
        with pytest.raises(StatisticsError):
            Profile.from_bytes(bad)
    with pytest.raises(StatisticsError):
        CategoricalStats.from_bytes(raw)


def test_whole_dataset_profile_is_small(bikes: pd.DataFrame) -> None:
    p = Profile.empty(SPECS)
    p.update_frame(bikes)
    assert len(p.to_bytes()) < 64 * 1024


def test_core_imports_no_tensorflow_or_kafka() -> None:
    code = (
        "import sys, monitor.stats; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'kafka', 'fastapi', 'sqlite3', 'httpx')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
