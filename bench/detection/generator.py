"""Seeded streams of serving windows drawn from the training distribution, with and without a change.

Base rows: the real 2011 bike-sharing training rows (``trainer.data.BIKESHARE_FEATURES``),
resampled with replacement, so a stationary window follows the training distribution exactly
(every feature, joint structure included). One synthetic feature is added: ``z``, exactly
standard normal, drawn once for the reference (one value per training row) and *fresh* for
every window -- the only feature whose windows carry the sampling noise of a real population
and not just of a resample, so the mean and variance changes are injected there.

A change acts on one column of an otherwise stationary window, after the base draw, so
``window(rows, change, stream=s, index=i)`` and ``window(rows, None, stream=s, index=i)`` hold
the same base rows (paired windows). Sizes are exact (deterministic changes) or exact in
expectation (random ones):

* ``mean_shift`` d:   x + d * sd_ref                       (sd_ref: the reference's population sd)
* ``variance`` v:     mean_ref + (x - mean_ref) * sqrt(v)  (variance times v)
* ``share`` d:        non-missing values not equal to the category become it with probability
                      d / (1 - p_ref): its share of the non-missing values goes from p_ref to p_ref + d
* ``new_category`` s: each non-missing value becomes a category never seen, with probability s
* ``missing`` d:      each present value becomes missing with probability d / (1 - m_ref):
                      the missing share goes from m_ref to m_ref + d
* ``unit`` f:         x * f (a value sent in other units)

Every window has its own ``numpy`` Generator seeded with ``(seed, stream, rows, index)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from os import PathLike

import numpy as np
import pandas as pd

from monitor.errors import ConfigError, SchemaError
from monitor.schema import FeatureSpec
from trainer.data import BIKESHARE_FEATURES, load_bikeshare

__all__ = [
    "ChangeKind",
    "Change",
    "SYNTHETIC",
    "SPECS",
    "DEFAULT_CHANGES",
    "StreamGenerator",
]

SYNTHETIC = FeatureSpec("z", "numeric", "float")
SPECS: tuple[FeatureSpec, ...] = (*BIKESHARE_FEATURES, SYNTHETIC)
_REFERENCE_STREAM = 2**31  # the stream of the reference's z column; windows use smaller ones


class ChangeKind(StrEnum):
    MEAN_SHIFT = "mean_shift"
    VARIANCE = "variance"
    SHARE = "share"
    NEW_CATEGORY = "new_category"
    MISSING = "missing"
    UNIT = "unit"


_NUMERIC_ONLY = {ChangeKind.MEAN_SHIFT, ChangeKind.VARIANCE, ChangeKind.UNIT}
_CATEGORICAL_ONLY = {ChangeKind.SHARE, ChangeKind.NEW_CATEGORY}


@dataclass(frozen=True, slots=True)
class Change:
    """One injected change: ``kind`` of ``size`` on ``feature`` (``category`` for share/new_category)."""

    name: str
    kind: ChangeKind
    feature: str
    size: float
    category: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ChangeKind(self.kind))
        if not (isinstance(self.size, (int, float)) and math.isfinite(self.size)):
            raise ConfigError(f"must be a finite number, got {self.size!r}", field="size")
        if self.kind in _CATEGORICAL_ONLY and not self.category:
            raise ConfigError(f"a {self.kind.value} change needs a category", field="category")
        probability = self.kind in (ChangeKind.SHARE, ChangeKind.NEW_CATEGORY, ChangeKind.MISSING)
        if probability and not 0 < self.size < 1:
            raise ConfigError(f"a {self.kind.value} change is a share in (0, 1), got {self.size}", field="size")
        if self.kind in (ChangeKind.VARIANCE, ChangeKind.UNIT) and self.size <= 0:
            raise ConfigError(f"a {self.kind.value} factor must be > 0, got {self.size}", field="size")


DEFAULT_CHANGES: tuple[Change, ...] = (
    Change("mean +0.05 sd (z)", ChangeKind.MEAN_SHIFT, "z", 0.05),
    Change("mean +0.2 sd (z)", ChangeKind.MEAN_SHIFT, "z", 0.2),
    Change("mean +0.5 sd (z)", ChangeKind.MEAN_SHIFT, "z", 0.5),
    Change("variance x1.5 (z)", ChangeKind.VARIANCE, "z", 1.5),
    Change("season=summer +5 pp", ChangeKind.SHARE, "season", 0.05, "summer"),
    Change("season=summer +20 pp", ChangeKind.SHARE, "season", 0.20, "summer"),
    Change("weathersit new 'Fog' 2%", ChangeKind.NEW_CATEGORY, "weathersit", 0.02, "Fog"),
    Change("hum missing +10 pp", ChangeKind.MISSING, "hum", 0.10),
    Change("temp units x41", ChangeKind.UNIT, "temp", 41.0),
)


class StreamGenerator:
    """Windows of ``rows`` rows resampled from ``training`` (plus a fresh normal ``z``), seeded.

    ``training`` must hold the columns of :data:`trainer.data.BIKESHARE_FEATURES` (numeric as
    float64, categorical as object of ``str``/``None``); other columns are dropped.
    """

    def __init__(self, training: pd.DataFrame, *, seed: int) -> None:
        if not (isinstance(seed, int) and seed >= 0):
            raise ConfigError(f"must be an integer >= 0, got {seed!r}", field="seed")
        names = [s.name for s in BIKESHARE_FEATURES]
        absent = [n for n in names if n not in training.columns]
        if absent:
            raise SchemaError("training frame lacks this feature", feature=absent[0])
        if len(training) == 0:
            raise SchemaError("training frame is empty")
        self.seed = seed
        base = training[names].reset_index(drop=True)
        self._columns = {n: base[n].to_numpy() for n in names}
        z = np.random.default_rng([seed, _REFERENCE_STREAM]).standard_normal(len(base))
        self.reference = base.assign(**{SYNTHETIC.name: z})
        self._kinds = {s.name: s.kind for s in SPECS}

    @classmethod
    def from_csv(cls, path: str | PathLike[str], *, seed: int, year: int = 2011) -> "StreamGenerator":
        """The generator over the ``year`` rows of the bike-sharing CSV at ``path``."""
        df = load_bikeshare(path)
        return cls(df[df["event_time"].dt.year == year], seed=seed)

    # -- reference facts the changes are stated against -------------------------------------
    def reference_sd(self, feature: str) -> float:
        return float(np.nanstd(self.reference[feature].to_numpy(dtype=np.float64)))

    def reference_share(self, feature: str, category: str) -> float:
        """Share of ``category`` among the reference's non-missing values of ``feature``."""
        values = self.reference[feature].dropna()
        return float((values == category).mean())

    def reference_missing(self, feature: str) -> float:
        return float(self.reference[feature].isna().mean())

    # -- windows --------------------------------------------------------------------------------
    def window(self, rows: int, change: Change | None = None, *, stream: int = 0, index: int = 0) -> pd.DataFrame:
        """Window ``index`` of ``stream`` with ``rows`` rows, ``change`` injected (None: stationary)."""
        if not (isinstance(rows, int) and rows >= 1):
            raise ConfigError(f"must be an integer >= 1, got {rows!r}", field="rows")
        if not (isinstance(stream, int) and 0 <= stream < _REFERENCE_STREAM):
            raise ConfigError(f"must be an integer in [0, 2**31), got {stream!r}", field="stream")
        if not (isinstance(index, int) and index >= 0):
            raise ConfigError(f"must be an integer >= 0, got {index!r}", field="index")
        rng = np.random.default_rng([self.seed, stream, rows, index])
        picks = rng.integers(0, len(self.reference), size=rows)
        data = {name: col[picks] for name, col in self._columns.items()}
        data[SYNTHETIC.name] = rng.standard_normal(rows)
        if change is not None:
            self._inject(data, change, rng)
        return pd.DataFrame(data)

    def _inject(self, data: dict[str, np.ndarray], change: Change, rng: np.random.Generator) -> None:
        kind = self._kinds.get(change.feature)
        if kind is None:
            raise SchemaError("not a feature of the stream", feature=change.feature)
        if (change.kind in _NUMERIC_ONLY and kind != "numeric") or (change.kind in _CATEGORICAL_ONLY
                                                                      and kind != "categorical"):
            raise SchemaError(f"a {change.kind.value} change does not apply to a {kind} feature",
                              feature=change.feature)
        x = data[change.feature].copy()
        if kind == "numeric":
            present = ~np.isnan(x)
        else:
            present = np.fromiter((v is not None for v in x), dtype=bool, count=len(x))
        if change.kind is ChangeKind.MEAN_SHIFT:
            x = x + change.size * self.reference_sd(change.feature)
        elif change.kind is ChangeKind.VARIANCE:
            mean = float(np.nanmean(self.reference[change.feature].to_numpy(dtype=np.float64)))
            x = mean + (x - mean) * math.sqrt(change.size)
        elif change.kind is ChangeKind.UNIT:
            x = x * change.size
        elif change.kind is ChangeKind.SHARE:
            share = self.reference_share(change.feature, change.category)  # type: ignore[arg-type]
            if share + change.size >= 1:
                raise ConfigError(f"share {share:.3f} + {change.size} reaches 1", field="size")
            switch = present & (x != change.category) & (rng.random(len(x)) < change.size / (1 - share))
            x[switch] = change.category
        elif change.kind is ChangeKind.NEW_CATEGORY:
            if (self.reference[change.feature] == change.category).any():
                raise ConfigError(f"{change.category!r} is not new: the reference has it", field="category")
            x[present & (rng.random(len(x)) < change.size)] = change.category
        else:  # MISSING
            missing = self.reference_missing(change.feature)
            if missing + change.size >= 1:
                raise ConfigError(f"missing share {missing:.3f} + {change.size} reaches 1", field="size")
            drop = present & (rng.random(len(x)) < change.size / (1 - missing))
            if kind == "numeric":
                x[drop] = np.nan
            else:
                x = x.astype(object)
                x[drop] = None
        data[change.feature] = x
