"""The statistics of one dataset or window: one mergeable statistic per feature spec."""

from __future__ import annotations

import json
import struct
from collections import Counter
from types import MappingProxyType
from typing import Any, Mapping, Self, Sequence

import numpy as np
import pandas as pd

from monitor.errors import SchemaError, StatisticsError
from monitor.schema import FeatureSpec, specs_from_dicts, specs_to_dicts
from monitor.stats.categorical import DEFAULT_CAPACITY, CategoricalStats, Tally, tally
from monitor.stats.codec import Reader, Tag, blob, header, seal
from monitor.stats.instances import columns_from_instances, unknown_feature_counts
from monitor.stats.numeric import DEFAULT_BINS, NumericStats, to_float_array

__all__ = ["Profile", "FeatureStats"]

FeatureStats = NumericStats | CategoricalStats
_ROWS = struct.Struct("<Q")


class Profile:
    """Per-feature statistics of one dataset/window, keyed by feature name in spec order.

    ``numeric`` specs get a :class:`NumericStats`, ``categorical`` ones a :class:`CategoricalStats`.
    Every update is all-or-nothing: the whole batch is checked before any statistic changes.
    """

    __slots__ = ("_specs", "_rows", "_features", "_unknown")

    def __init__(self, specs: Sequence[FeatureSpec], *, bins: int = DEFAULT_BINS, capacity: int = DEFAULT_CAPACITY) -> None:
        specs = tuple(specs)
        if not all(isinstance(s, FeatureSpec) for s in specs):
            raise SchemaError("specs must be FeatureSpec objects")
        names = [s.name for s in specs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SchemaError(f"duplicate feature names: {dupes}")
        self._specs = specs
        self._rows = 0
        self._features: dict[str, FeatureStats] = {
            s.name: NumericStats(bins) if s.kind == "numeric" else CategoricalStats(capacity) for s in specs
        }
        self._unknown: Counter[str] = Counter()

    @classmethod
    def empty(cls, specs: Sequence[FeatureSpec], *, bins: int = DEFAULT_BINS, capacity: int = DEFAULT_CAPACITY) -> Self:
        """An empty profile: numeric features get ``bins`` buckets, categorical ones ``capacity``
        exact values (windows: the defaults; baselines: ``BASELINE_BINS``/``BASELINE_CAPACITY``)."""
        return cls(specs, bins=bins, capacity=capacity)

    # -- reading -------------------------------------------------------------------------------
    @property
    def specs(self) -> tuple[FeatureSpec, ...]:
        return self._specs

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def features(self) -> Mapping[str, FeatureStats]:
        """Feature name -> statistic (read-only view, spec order)."""
        return MappingProxyType(self._features)

    @property
    def unknown_features(self) -> dict[str, int]:
        """Names seen in instances but not in the specs -> number of instances carrying them."""
        return dict(self._unknown)

    def __getitem__(self, name: str) -> FeatureStats:
        try:
            return self._features[name]
        except KeyError:
            raise SchemaError("not a feature of this profile", feature=name) from None

    def is_empty(self) -> bool:
        return self._rows == 0

    # -- updating ------------------------------------------------------------------------------
    def update_columns(self, columns: Mapping[str, Any]) -> None:
        """Fold in one batch given as columns of equal length (``rows`` grows by that length).

        A spec feature without a column counts as missing in every row; columns that are not
        features are ignored. A categorical column may also be given already counted, as a
        :class:`~monitor.stats.categorical.Tally` of its values. Raises :class:`SchemaError` naming
        the feature when a column has the wrong length or type, before anything is changed.
        """
        n = None
        for name, col in columns.items():
            length = col.count + col.missing if isinstance(col, Tally) else len(col)
            if n is None:
                n = length
            elif length != n:
                raise SchemaError(f"column has {length} rows, expected {n}", feature=str(name))
        if n is not None:
            self._update(columns, n)

    def _update(self, columns: Mapping[str, Any], n: int) -> None:
        prepared: dict[str, np.ndarray | Tally] = {}
        for spec in self._specs:
            if spec.name in columns:
                col = columns[spec.name]
                if isinstance(col, Tally):
                    if spec.kind == "numeric":
                        raise SchemaError("a numeric feature cannot be given as counted categories", feature=spec.name)
                    prepared[spec.name] = col
                elif spec.kind == "numeric":
                    prepared[spec.name] = to_float_array(col, feature=spec.name)
                else:
                    prepared[spec.name] = tally(col, feature=spec.name)
        for name, stats in self._features.items():
            batch = prepared.get(name)
            if batch is None:
                stats._add_missing(n)
            elif isinstance(batch, Tally):
                stats.update_tally(batch)  # type: ignore[union-attr]
            else:
                stats.update(batch)
        self._rows += n

    def update_frame(self, df: pd.DataFrame) -> None:
        """Fold in a DataFrame; its columns named like features are used, the others ignored."""
        if df.columns.has_duplicates:
            dupes = sorted(map(str, df.columns[df.columns.duplicated()].unique()))
            raise SchemaError(f"duplicate DataFrame columns: {dupes}")
        self._update({name: df[name] for name in self._features if name in df.columns}, len(df))

    def columns_from_instances(self, instances: Sequence[Any]) -> tuple[dict[str, np.ndarray], list[SchemaError]]:
        """:func:`~monitor.stats.columns_from_instances` with this profile's specs (no state change)."""
        return columns_from_instances(instances, self._specs)

    def update_instances(self, instances: Sequence[Any], *, skip_invalid: bool = False) -> list[SchemaError]:
        """Fold in JSON instances (dicts); absent or null features are missing.

        With ``skip_invalid=False`` a bad instance raises its :class:`SchemaError` (feature and
        instance index) and nothing changes. With ``skip_invalid=True`` the bad instances are
        left out, the valid ones are counted, and the errors are returned (sorted by instance).
        Keys that are not features are counted in :attr:`unknown_features`.
        """
        columns, errors = columns_from_instances(instances, self._specs)
        if errors and not skip_invalid:
            raise errors[0]
        bad = {e.instance for e in errors}
        valid = instances if not bad else [inst for i, inst in enumerate(instances) if i not in bad]
        unknown = unknown_feature_counts(valid, self._features)
        self._update(columns, len(valid))
        self._unknown.update(unknown)
        return errors

    # -- merging -------------------------------------------------------------------------------
    def zero(self) -> Profile:
        out = Profile.__new__(Profile)
        out._specs, out._rows, out._unknown = self._specs, 0, Counter()
        out._features = {name: stats.zero() for name, stats in self._features.items()}
        return out

    def merge(self, other: Profile) -> Profile:
        """A new profile holding both inputs; neither input changes. Specs must be equal."""
        if not isinstance(other, Profile):
            raise StatisticsError(f"cannot merge Profile with {type(other).__name__}")
        if other._specs != self._specs:
            raise StatisticsError(f"cannot merge profiles with different specs: {self._specs} vs {other._specs}")
        out = Profile.__new__(Profile)
        out._specs = self._specs
        out._rows = self._rows + other._rows
        out._unknown = self._unknown + other._unknown
        out._features = {name: stats.merge(other._features[name]) for name, stats in self._features.items()}  # type: ignore[arg-type]
        return out

    # -- bytes ---------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        specs = json.dumps(specs_to_dicts(self._specs), separators=(",", ":"), ensure_ascii=False)
        unknown = json.dumps(dict(sorted(self._unknown.items())), separators=(",", ":"), ensure_ascii=False)
        parts = [
            header(Tag.PROFILE),
            blob(specs.encode("utf-8", "surrogatepass")),
            _ROWS.pack(self._rows),
            blob(unknown.encode("utf-8", "surrogatepass")),
        ]
        parts.extend(blob(self._features[s.name].to_bytes()) for s in self._specs)
        return seal(b"".join(parts))

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        reader = Reader(data, Tag.PROFILE)
        try:
            specs = specs_from_dicts(json.loads(reader.blob().decode("utf-8", "surrogatepass")))
            (rows,) = reader.unpack(_ROWS)
            unknown = json.loads(reader.blob().decode("utf-8", "surrogatepass"))
        except (ValueError, TypeError, AttributeError, SchemaError) as exc:
            raise StatisticsError(f"corrupt profile header: {exc}") from None
        if not isinstance(unknown, dict) or not all(isinstance(v, int) and v > 0 for v in unknown.values()):
            raise StatisticsError("corrupt profile: unknown feature counts must be positive ints")
        features: dict[str, FeatureStats] = {}
        for spec in specs:
            kind = NumericStats if spec.kind == "numeric" else CategoricalStats
            stats = kind.from_bytes(reader.blob())
            if stats.total != rows:
                raise StatisticsError(f"feature {spec.name!r} holds {stats.total} values for {rows} rows")
            features[spec.name] = stats
        reader.finish()
        out = cls.__new__(cls)
        out._specs, out._rows, out._features, out._unknown = specs, rows, features, Counter(unknown)
        return out

    # -- comparison ----------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Profile):
            return NotImplemented
        return (
            self._specs == other._specs
            and self._rows == other._rows
            and self._unknown == other._unknown
            and self._features == other._features
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Profile(rows={self._rows}, features={list(self._features)}, unknown={dict(self._unknown)})"
