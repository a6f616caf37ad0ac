"""JSON instances to columns: the collectors' hot path into a :class:`~monitor.stats.Profile`.

A prediction-log record carries ``instances``: one JSON object per row. This module turns a
batch of them into one array per feature, checking types column by column (one ``set(map(type,
...))`` per column, a Python loop only over a column that holds a bad value). An instance with a
bad value is dropped from every column and reported; the valid ones are kept.
"""

from __future__ import annotations

import numbers
from collections import Counter
from typing import Any, Iterable, Sequence

import numpy as np

from monitor.errors import SchemaError
from monitor.schema import FeatureSpec

__all__ = ["columns_from_instances", "unknown_feature_counts"]

_NUMERIC_OK = frozenset({int, float, type(None)})
_CATEGORICAL_OK = frozenset({str, int, float, bool, type(None)})


def columns_from_instances(
    instances: Sequence[Any], specs: Iterable[FeatureSpec]
) -> tuple[dict[str, np.ndarray], list[SchemaError]]:
    """One column per spec from ``instances`` (a feature absent or null in an instance is missing).

    Numeric columns are float64 (NaN = missing); categorical ones are object arrays of the raw
    JSON scalars. Instances that are not objects, or hold a value of the wrong type (a string,
    bool, list or object for a numeric feature; a list or object for a categorical one), are left
    out of every column; each offence is returned as a :class:`SchemaError` carrying the feature
    and the instance index, sorted by instance.
    """
    specs = tuple(specs)
    errors: list[SchemaError] = []
    rows: Sequence[Any] = instances
    if set(map(type, instances)) - {dict}:
        rows = []
        for i, inst in enumerate(instances):
            if isinstance(inst, dict):
                rows.append(inst)
            else:
                errors.append(SchemaError(f"an instance must be a JSON object, got {type(inst).__name__}", instance=i))
                rows.append({})
    n = len(rows)
    columns: dict[str, np.ndarray] = {}
    for spec in specs:
        name = spec.name
        col = [row.get(name) for row in rows]
        if spec.kind == "numeric":
            columns[name] = _numeric_column(col, name, errors)
        else:
            columns[name] = _categorical_column(col, name, errors)
    if errors:
        keep = np.ones(n, dtype=bool)
        keep[[e.instance for e in errors]] = False
        columns = {name: arr[keep] for name, arr in columns.items()}
        errors.sort(key=lambda e: e.instance)  # stable: keeps spec order within an instance
    return columns, errors


def _numeric_column(col: list[Any], name: str, errors: list[SchemaError]) -> np.ndarray:
    if set(map(type, col)) <= _NUMERIC_OK:
        try:
            return np.array(col, dtype=np.float64)
        except OverflowError:  # an int beyond float64: find it below
            pass
    for i, v in enumerate(col):
        if v is None or type(v) is float:
            continue
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            problem = f"expected a number, got {type(v).__name__} {v!r:.40}"
        else:
            try:
                float(v)
                continue
            except OverflowError:
                problem = f"number {v!r:.40} is out of the float64 range"
        errors.append(SchemaError(problem, feature=name, instance=i))
        col[i] = None
    return np.array(col, dtype=np.float64)


def _categorical_column(col: list[Any], name: str, errors: list[SchemaError]) -> np.ndarray:
    if not set(map(type, col)) <= _CATEGORICAL_OK:
        for i, v in enumerate(col):
            if type(v) not in _CATEGORICAL_OK:
                errors.append(SchemaError(f"expected a string, number or bool, got {type(v).__name__}", feature=name, instance=i))
                col[i] = None
    arr = np.empty(len(col), dtype=object)
    arr[:] = col
    return arr


def unknown_feature_counts(instances: Iterable[Any], names: Iterable[str]) -> Counter[str]:
    """How many instances carry each key that is not a known feature name.

    Instances of one request usually share their keys, so they are grouped by key tuple first
    (a C-level count) and only each distinct key tuple is compared with the feature names.
    """
    known = frozenset(names)
    if not isinstance(instances, (list, tuple)):
        instances = list(instances)
    if set(map(type, instances)) - {dict}:
        instances = [inst for inst in instances if isinstance(inst, dict)]
    shapes = Counter(map(tuple, instances))
    unknown: Counter[str] = Counter()
    for shape, n in shapes.items():
        for key in shape:
            if key not in known:
                unknown[str(key)] += n
    return unknown
