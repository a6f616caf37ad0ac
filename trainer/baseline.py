"""Baselines of the training data: TFDV statistics and schema, and skewwatch profiles.

TFDV is imported here (and in ``monitor/tfdv_interop.py``) only. The TFDV schema carries
skew and drift comparators (categorical: L-infinity norm, numeric: Jensen-Shannon
divergence) and explicit string domains equal to the model's training vocabularies, so
``tfdv.validate_statistics`` can be run against serving statistics directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from monitor.bundle import PREDICTION_SPEC
from monitor.errors import SchemaError
from monitor.schema import FeatureSpec
from monitor.stats import BASELINE_BINS, BASELINE_CAPACITY, Profile

__all__ = [
    "CATEGORICAL_THRESHOLD",
    "NUMERIC_THRESHOLD",
    "feature_frame",
    "feature_profile",
    "prediction_profile",
    "tfdv_schema",
    "tfdv_statistics",
    "write_tfdv",
]

CATEGORICAL_THRESHOLD = 0.1  # infinity_norm of the category distributions
NUMERIC_THRESHOLD = 0.1  # jensen_shannon_divergence of the histograms


def feature_frame(df: pd.DataFrame, specs: Sequence[FeatureSpec]) -> pd.DataFrame:
    """Only the feature columns, default index, plain dtypes (float64 / object of str-or-None).

    TFDV turns a non-default index into a feature and fails on pandas ``category`` dtype,
    so both are normalised away here.
    """
    out = {}
    for spec in specs:
        if spec.name not in df.columns:
            raise SchemaError("frame lacks this feature", feature=spec.name)
        col = df[spec.name].reset_index(drop=True)
        if spec.kind == "numeric":
            out[spec.name] = pd.to_numeric(col, errors="raise").astype("float64")
        else:
            values = col.astype(object)
            out[spec.name] = values.where(values.notna() & (values != ""), None)
    return pd.DataFrame(out)


def tfdv_statistics(df: pd.DataFrame, specs: Sequence[FeatureSpec]) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics of the feature columns of ``df`` (in process, one job)."""
    return tfdv.generate_statistics_from_dataframe(feature_frame(df, specs), n_jobs=1)


def tfdv_schema(
    statistics: statistics_pb2.DatasetFeatureStatisticsList,
    specs: Sequence[FeatureSpec],
    vocabularies: Mapping[str, Sequence[str]],
) -> schema_pb2.Schema:
    """Infer the schema, then set comparators and explicit string domains on every feature."""
    schema = tfdv.infer_schema(statistics)
    domains = {d.name: d for d in schema.string_domain}
    for spec in specs:
        feature = tfdv.get_feature(schema, spec.name)
        if spec.kind == "categorical":
            vocab = vocabularies.get(spec.name)
            if not vocab:
                raise SchemaError("no vocabulary for a categorical feature", feature=spec.name)
            domain = domains.get(spec.name)
            if domain is None:
                domain = schema.string_domain.add(name=spec.name)
                domains[spec.name] = domain
            del domain.value[:]
            domain.value.extend(sorted(vocab))
            feature.domain = spec.name
            feature.skew_comparator.infinity_norm.threshold = CATEGORICAL_THRESHOLD
            feature.drift_comparator.infinity_norm.threshold = CATEGORICAL_THRESHOLD
        else:
            feature.skew_comparator.jensen_shannon_divergence.threshold = NUMERIC_THRESHOLD
            feature.drift_comparator.jensen_shannon_divergence.threshold = NUMERIC_THRESHOLD
    return schema


def write_tfdv(
    statistics: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
    *,
    statistics_path: Path,
    schema_path: Path,
) -> None:
    """Statistics as a binary proto, the schema as a text proto."""
    statistics_path.parent.mkdir(parents=True, exist_ok=True)
    schema_path.parent.mkdir(parents=True, exist_ok=True)
    statistics_path.write_bytes(statistics.SerializeToString())
    tfdv.write_schema_text(schema, str(schema_path))


def feature_profile(df: pd.DataFrame, specs: Sequence[FeatureSpec]) -> Profile:
    """Skewwatch profile of the feature columns of ``df``, sized as a baseline: every window is
    compared with it, so it keeps ``BASELINE_BINS`` numeric buckets and ``BASELINE_CAPACITY``
    exact categories (a window keeps the defaults)."""
    profile = Profile.empty(tuple(specs), bins=BASELINE_BINS, capacity=BASELINE_CAPACITY)
    profile.update_frame(feature_frame(df, specs))
    return profile


def prediction_profile(predictions: np.ndarray) -> Profile:
    """Skewwatch profile of model outputs, as the one numeric feature ``prediction``."""
    values = np.asarray(predictions, dtype=np.float64).reshape(-1)
    profile = Profile.empty((PREDICTION_SPEC,), bins=BASELINE_BINS, capacity=BASELINE_CAPACITY)
    profile.update_frame(pd.DataFrame({PREDICTION_SPEC.name: values}))
    return profile
