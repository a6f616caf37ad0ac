"""Baselines of slices of the training rows: per calendar slot and per segment.

* Per slot (every kind of :mod:`monitor.slots`: hour of day, day of week, hour of week, month of
  year, ISO week of year, from each row's ``event_time``): a window of serving traffic can be compared with the training rows of the same
  hour, weekday or month, so a season is not mistaken for skew.
* Per segment: for every categorical feature with at most :data:`MAX_SEGMENT_VALUES` values, the
  training rows of each of its :data:`TOP_SEGMENTS` most frequent values, so a segment's window is
  compared with its own slice of the baseline.

Each slice holds the inputs (``features/<name>``) and the model's outputs on those rows
(``output/<name>``), in one profile set (:mod:`monitor.profileset`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from monitor.schema import FeatureSpec
from monitor.slots import SLOT_KINDS, slot_of
from monitor.stats import Profile
from trainer.baseline import feature_profile, prediction_profile

__all__ = ["SLOT_KINDS_BUILT", "MAX_SEGMENT_VALUES", "TOP_SEGMENTS", "slot_baselines", "slot_series", "segment_baselines"]

SLOT_KINDS_BUILT = SLOT_KINDS  # every kind a monitor config may name as skew slots
MAX_SEGMENT_VALUES = 64
TOP_SEGMENTS = 32
MIN_ROWS = 24  # a slice with fewer training rows is not worth comparing with


def _slices(df: pd.DataFrame, specs: Sequence[FeatureSpec], predictions: np.ndarray, groups: pd.Series,
            prefix: str) -> dict[str, Profile]:
    out: dict[str, Profile] = {}
    predictions = np.asarray(predictions, dtype=np.float64).reshape(-1)
    for value, index in groups.groupby(groups).groups.items():
        if len(index) < MIN_ROWS:
            continue
        positions = df.index.get_indexer(index)
        name = f"{prefix}{value}"
        out[f"features/{name}"] = feature_profile(df.iloc[positions], specs)
        out[f"output/{name}"] = prediction_profile(predictions[positions])
    return out


def slot_baselines(df: pd.DataFrame, specs: Sequence[FeatureSpec], predictions: np.ndarray) -> dict[str, Profile]:
    """Profiles of the training rows of every calendar slot of :data:`SLOT_KINDS_BUILT`."""
    df = df.reset_index(drop=True)
    times = pd.to_datetime(df["event_time"], utc=True)
    out: dict[str, Profile] = {}
    for kind in SLOT_KINDS_BUILT:
        out.update(_slices(df, specs, predictions, slot_series(times, kind), prefix=f"{kind}:"))
    return out


def slot_series(times: pd.Series, kind: str) -> pd.Series:
    """:func:`monitor.slots.slot_of` of every instant of a UTC datetime series, vectorised."""
    dt = times.dt
    if kind == "hour_of_day":
        return dt.hour
    if kind == "day_of_week":
        return dt.weekday
    if kind == "hour_of_week":
        return dt.weekday * 24 + dt.hour
    if kind == "month_of_year":
        return dt.month
    if kind == "week_of_year":
        return dt.isocalendar().week.astype("int64")
    return pd.Series([slot_of(0, kind)])  # raises naming the kinds


def segment_baselines(df: pd.DataFrame, specs: Sequence[FeatureSpec], predictions: np.ndarray) -> dict[str, Profile]:
    """Profiles of the training rows of each frequent value of every low-cardinality categorical feature."""
    df = df.reset_index(drop=True)
    out: dict[str, Profile] = {}
    for spec in specs:
        if spec.kind != "categorical":
            continue
        col = df[spec.name].astype(object).where(df[spec.name].notna(), None)
        counts = col.value_counts()
        if len(counts) > MAX_SEGMENT_VALUES:
            continue
        top = set(counts.index[:TOP_SEGMENTS])
        keep = col.where(col.isin(top), None).dropna()
        out.update(_slices(df.loc[keep.index], specs, np.asarray(predictions).reshape(-1)[keep.index.to_numpy()],
                           keep.astype(str), prefix=f"{spec.name}="))
    return out
