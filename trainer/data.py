"""The bike-sharing data: loading, feature specs and the time split.

``load_bikeshare`` reads the UCI bike-sharing hourly CSV into a frame whose categorical
columns hold Python ``str`` or ``None`` (an empty cell is missing), whose numeric columns
are ``float64``, and which carries an ``event_time`` column (UTC, ``dteday`` plus the
hour parsed from ``"6am"``/``"12pm"``), sorted by it.

``split_by_time`` cuts it by calendar time, never at random, so evaluation looks like
production: the model learns from the past and is judged on the future.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from monitor.errors import SchemaError
from monitor.schema import FeatureSpec

__all__ = [
    "BIKESHARE_FEATURES",
    "LABEL",
    "LEAKY_COLUMNS",
    "REQUIRED_COLUMNS",
    "TimeSplit",
    "load_bikeshare",
    "parse_hour",
    "split_by_time",
]

BIKESHARE_FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("temp", "numeric", "float"),
    FeatureSpec("atemp", "numeric", "float"),
    FeatureSpec("hum", "numeric", "float"),
    FeatureSpec("windspeed", "numeric", "float"),
    FeatureSpec("season", "categorical", "string"),
    FeatureSpec("hr", "categorical", "string"),
    FeatureSpec("holiday", "categorical", "string"),
    FeatureSpec("weekday", "categorical", "string"),
    FeatureSpec("workingday", "categorical", "string"),
    FeatureSpec("weathersit", "categorical", "string"),
)
LABEL = "cnt"
# casual + registered == cnt: they leak the label and must never be features.
LEAKY_COLUMNS = ("casual", "registered")
REQUIRED_COLUMNS: tuple[str, ...] = ("dteday", *(s.name for s in BIKESHARE_FEATURES), LABEL)

_HOUR = re.compile(r"^(1[0-2]|[1-9])(am|pm)$")


def parse_hour(value: str) -> int:
    """``"12am"`` -> 0, ``"6am"`` -> 6, ``"12pm"`` -> 12, ``"11pm"`` -> 23."""
    match = _HOUR.match(value) if isinstance(value, str) else None
    if match is None:
        raise SchemaError(f"not an hour like '6am' or '12pm': {value!r}", feature="hr")
    hour = int(match.group(1)) % 12
    return hour + (12 if match.group(2) == "pm" else 0)


def load_bikeshare(path: str | PathLike[str]) -> pd.DataFrame:
    """Read the hourly CSV; empty cells become ``None`` (categorical) or raise (numeric, label)."""
    path = Path(path)
    categorical = [s.name for s in BIKESHARE_FEATURES if s.kind == "categorical"]
    numeric = [s.name for s in BIKESHARE_FEATURES if s.kind == "numeric"]
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise SchemaError(f"{path} lacks required column(s) {missing}", feature=missing[0])

    df = pd.DataFrame(index=raw.index)
    for col in raw.columns:
        if col in numeric or col == LABEL or col in LEAKY_COLUMNS:
            values = pd.to_numeric(raw[col].replace("", np.nan), errors="coerce")
            bad = values.isna()
            if bad.any() and (col in numeric or col == LABEL):
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise SchemaError(f"missing or non-numeric value {raw[col].iloc[row]!r} in {path}", feature=col, instance=row)
            df[col] = values if col in numeric or bad.any() else values.astype("int64")
        else:
            df[col] = raw[col].astype(object).where(raw[col] != "", None)

    try:
        day = pd.to_datetime(raw["dteday"], format="%Y-%m-%d", utc=True)
    except (ValueError, TypeError) as exc:
        raise SchemaError(f"dteday not YYYY-MM-DD ({exc})", feature="dteday") from None
    if df["hr"].isna().any():
        row = int(np.flatnonzero(df["hr"].isna().to_numpy())[0])
        raise SchemaError("hour is missing; event_time needs it", feature="hr", instance=row)
    hours = df["hr"].map(parse_hour).astype("int64")
    df["dteday"] = day
    df["event_time"] = day + pd.to_timedelta(hours, unit="h")
    return df.sort_values("event_time", kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class TimeSplit:
    """Calendar split of the data.

    ``train`` is the whole training year: preprocessing is adapted on it and the baselines
    describe it. Gradient descent sees ``fit`` only; ``validation`` (the last
    ``validation_months`` of the training year, held out of ``fit``) drives early stopping.
    ``serving`` is everything after the training year: the holdout and the replay stream.
    """

    train: pd.DataFrame
    fit: pd.DataFrame
    validation: pd.DataFrame
    serving: pd.DataFrame


def split_by_time(df: pd.DataFrame, train_year: int = 2011, *, validation_months: int = 2) -> TimeSplit:
    """Split on ``event_time``: ``train_year`` trains (its last months validate), later years serve."""
    if "event_time" not in df.columns:
        raise SchemaError("frame lacks event_time; load it with load_bikeshare", feature="event_time")
    if not 1 <= validation_months <= 11:
        raise SchemaError(f"validation_months must be in 1..11, got {validation_months}", feature="validation_months")
    year = df["event_time"].dt.year
    month = df["event_time"].dt.month
    train_mask = (year == train_year).to_numpy()
    val_mask = train_mask & (month > 12 - validation_months).to_numpy()
    serve_mask = (year > train_year).to_numpy()
    parts = {
        "train": df[train_mask],
        "fit": df[train_mask & ~val_mask],
        "validation": df[val_mask],
        "serving": df[serve_mask],
    }
    for name, part in parts.items():
        if part.empty:
            raise SchemaError(f"no rows for the {name} split with train_year={train_year}", feature="event_time")
    return TimeSplit(**{k: v.reset_index(drop=True) for k, v in parts.items()})
