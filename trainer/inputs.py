"""Raw feature values -> model inputs: the one conversion training and serving share.

Training feeds pandas columns through :func:`to_model_inputs`; serving feeds the JSON
instances of a request through the same function, so the model sees identical
preprocessing by construction. Everything else (scaling, buckets, vocabularies) happens
inside the Keras model.

This module needs numpy only (no TensorFlow), so it can be imported and tested cheaply.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, Mapping, Sequence

import numpy as np

from monitor.errors import SchemaError
from monitor.schema import FeatureSpec

__all__ = ["MISSING_STRING", "to_model_inputs", "columns_from_instances"]

# A missing categorical value reaches the model as this string; it is never in a
# vocabulary, so StringLookup maps it to the out-of-vocabulary index.
MISSING_STRING = ""


def _as_list(values: Any, feature: str) -> list[Any]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise SchemaError(f"column must be a sequence of values, got {type(values).__name__}", feature=feature)
    if hasattr(values, "tolist"):  # numpy arrays and pandas Series: plain Python scalars
        return values.tolist()
    return list(values)


def _numeric(values: list[Any], feature: str) -> np.ndarray:
    out = np.empty((len(values), 1), dtype=np.float32)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            raise SchemaError("numeric value is missing", feature=feature, instance=i)
        if isinstance(v, bool) or not isinstance(v, Real):
            raise SchemaError(f"expected a number, got {type(v).__name__} {v!r}", feature=feature, instance=i)
        if not math.isfinite(v):
            raise SchemaError(f"numeric value is not finite: {v!r}", feature=feature, instance=i)
        out[i, 0] = v
    return out


def _categorical(values: list[Any], feature: str) -> np.ndarray:
    out = np.empty((len(values), 1), dtype=object)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):  # NaN: pandas' missing marker
            out[i, 0] = MISSING_STRING
        elif isinstance(v, str):
            out[i, 0] = str(v)  # plain str, also for str subclasses such as numpy.str_
        else:
            raise SchemaError(f"expected a string or null, got {type(v).__name__} {v!r}", feature=feature, instance=i)
    return out


def to_model_inputs(columns: Mapping[str, Sequence[Any]], specs: Sequence[FeatureSpec]) -> dict[str, np.ndarray]:
    """Turn columns of raw JSON-like values into the model's named inputs.

    Numeric features become ``float32`` arrays of shape ``(n, 1)``; a missing (``None``/NaN),
    non-numeric or non-finite value raises :class:`SchemaError` naming the feature and the
    instance index. String features become numpy *object* arrays of Python ``str`` of shape
    ``(n, 1)``; ``None`` (or NaN) becomes ``""``, which the model maps to out-of-vocabulary.
    Columns not in ``specs`` are ignored; a missing column or a length mismatch raises.
    """
    if not specs:
        raise SchemaError("no feature specs given")
    out: dict[str, np.ndarray] = {}
    n: int | None = None
    first = None
    for spec in specs:
        if spec.name not in columns:
            raise SchemaError("feature column is missing from the input", feature=spec.name)
        values = _as_list(columns[spec.name], spec.name)
        if n is None:
            n, first = len(values), spec.name
        elif len(values) != n:
            raise SchemaError(f"has {len(values)} values but {first!r} has {n}", feature=spec.name)
        if spec.kind == "numeric":
            out[spec.name] = _numeric(values, spec.name)
        else:
            out[spec.name] = _categorical(values, spec.name)
    return out


def columns_from_instances(instances: Sequence[Mapping[str, Any]], specs: Sequence[FeatureSpec]) -> dict[str, list[Any]]:
    """Pivot JSON instances (one object per row) into columns; an absent key is ``None``."""
    columns: dict[str, list[Any]] = {s.name: [] for s in specs}
    for i, inst in enumerate(instances):
        if not isinstance(inst, Mapping):
            raise SchemaError(f"instance must be an object, got {type(inst).__name__}", instance=i)
        for spec in specs:
            columns[spec.name].append(inst.get(spec.name))
    return columns
