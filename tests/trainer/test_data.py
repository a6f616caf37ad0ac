"""trainer.data: loading, missing values, event time, the calendar split."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor.errors import SchemaError
from trainer.data import BIKESHARE_FEATURES, LABEL, LEAKY_COLUMNS, load_bikeshare, parse_hour, split_by_time

DATA = Path(__file__).resolve().parents[2] / "data" / "bike_sharing_hourly.csv"


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return load_bikeshare(DATA)


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return pd.read_csv(DATA, dtype=str, keep_default_na=False)


def test_feature_specs_exclude_label_and_leaks() -> None:
    names = {s.name for s in BIKESHARE_FEATURES}
    assert names == {"temp", "atemp", "hum", "windspeed", "season", "hr", "holiday", "weekday", "workingday", "weathersit"}
    assert LABEL not in names and not names & set(LEAKY_COLUMNS)
    assert {s.name for s in BIKESHARE_FEATURES if s.kind == "numeric"} == {"temp", "atemp", "hum", "windspeed"}
    assert all(s.dtype == ("float" if s.kind == "numeric" else "string") for s in BIKESHARE_FEATURES)


@pytest.mark.parametrize(
    ("text", "hour"), [("12am", 0), ("1am", 1), ("6am", 6), ("11am", 11), ("12pm", 12), ("1pm", 13), ("11pm", 23)]
)
def test_parse_hour(text: str, hour: int) -> None:
    assert parse_hour(text) == hour


@pytest.mark.parametrize("text", ["13pm", "0am", "6", "", "6 am", None])
def test_parse_hour_rejects(text: object) -> None:
    with pytest.raises(SchemaError) as err:
        parse_hour(text)  # type: ignore[arg-type]
    assert err.value.feature == "hr"


def test_load_keeps_every_row_sorted_by_event_time(df: pd.DataFrame, raw: pd.DataFrame) -> None:
    assert len(df) == len(raw) == 17379
    assert df["event_time"].is_monotonic_increasing
    assert str(df["event_time"].dt.tz) == "UTC"
    # event_time = dteday + parsed hour, for every row
    expected = pd.to_datetime(raw["dteday"], utc=True) + pd.to_timedelta(raw["hr"].map(parse_hour), unit="h")
    assert sorted(df["event_time"]) == sorted(expected)
    assert (df["event_time"].dt.hour == df["hr"].map(parse_hour)).all()
    assert (df["event_time"].dt.normalize() == df["dteday"]).all()


def test_missing_strings_become_none(df: pd.DataFrame, raw: pd.DataFrame) -> None:
    for spec in BIKESHARE_FEATURES:
        col = df[spec.name]
        if spec.kind == "categorical":
            assert col.dtype == object
            assert not (col == "").any()
            assert col.isna().sum() == (raw[spec.name] == "").sum()
            assert all(v is None or type(v) is str for v in col)
            assert col.value_counts().to_dict() == raw.loc[raw[spec.name] != "", spec.name].value_counts().to_dict()
        else:
            assert col.dtype == np.float64
            np.testing.assert_allclose(np.sort(col.to_numpy()), np.sort(raw[spec.name].astype(float).to_numpy()))
    assert df["weekday"].isna().sum() == 875
    assert df["weathersit"].isna().sum() == 1258
    assert df[LABEL].dtype == np.int64
    assert (df[LABEL] == df["casual"] + df["registered"]).all()


def _write_csv(path: Path, rows: list[dict[str, str]], columns: list[str]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row[c] for c in columns})
    return path


def test_missing_required_column_is_named(tmp_path: Path, raw: pd.DataFrame) -> None:
    rows = raw.head(5).to_dict("records")
    columns = [c for c in raw.columns if c != "hum"]
    path = _write_csv(tmp_path / "no_hum.csv", rows, columns)
    with pytest.raises(SchemaError) as err:
        load_bikeshare(path)
    assert err.value.feature == "hum"
    assert "hum" in str(err.value)


def test_empty_numeric_cell_is_an_error_naming_feature_and_row(tmp_path: Path, raw: pd.DataFrame) -> None:
    rows = raw.head(5).to_dict("records")
    rows[3]["temp"] = ""
    path = _write_csv(tmp_path / "gap.csv", rows, list(raw.columns))
    with pytest.raises(SchemaError) as err:
        load_bikeshare(path)
    assert (err.value.feature, err.value.instance) == ("temp", 3)


def test_unsorted_file_is_sorted(tmp_path: Path, raw: pd.DataFrame) -> None:
    rows = raw.head(48).to_dict("records")[::-1]
    df = load_bikeshare(_write_csv(tmp_path / "rev.csv", rows, list(raw.columns)))
    assert df["event_time"].is_monotonic_increasing
    assert df[LABEL].tolist() == raw.head(48)["cnt"].astype(int).tolist()


def test_split_by_time(df: pd.DataFrame) -> None:
    s = split_by_time(df, 2011)
    assert (s.train["event_time"].dt.year == 2011).all()
    assert (s.serving["event_time"].dt.year == 2012).all()
    assert len(s.train) + len(s.serving) == len(df)
    assert len(s.fit) + len(s.validation) == len(s.train)
    assert set(s.validation["event_time"].dt.month) == {11, 12}
    assert s.fit["event_time"].max() < s.validation["event_time"].min()
    assert s.train["event_time"].max() < s.serving["event_time"].min()
    assert len(s.train) == int((df["event_time"].dt.year == 2011).sum())
    for part in (s.train, s.fit, s.validation, s.serving):
        assert part.index.equals(pd.RangeIndex(len(part)))


def test_split_with_no_rows_for_a_year_fails(df: pd.DataFrame) -> None:
    with pytest.raises(SchemaError):
        split_by_time(df, 2012)  # nothing after 2012 to serve
