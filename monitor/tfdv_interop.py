"""TFDV interop: skewwatch windows as TFDV statistics, and TFDV's own skew/drift checks on them.

The one module of ``monitor`` that uses TFDV. ``tensorflow_data_validation`` (and so TensorFlow)
is imported only inside :func:`tfdv_skew_drift`, and nothing in the monitor core imports this
module: a collector starts without TensorFlow and calls it only when TFDV checks are asked for.
Importing it costs the ``tensorflow_metadata`` protos (protobuf), not TensorFlow.

* :func:`profile_to_tfdv` exports a :class:`~monitor.stats.Profile` as a TFDV
  ``DatasetFeatureStatisticsList`` built as TFDV's ``basic_stats_generator`` and top-k generator
  build theirs (``tfdv.StatsOptions`` defaults). Exact sketches give TFDV's protos field for
  field (tested against ``tfdv.generate_statistics_from_dataframe`` on the bike data).
* :func:`tfdv_skew_drift` runs ``tfdv.validate_statistics`` and returns, per feature, the
  L-infinity / JSD values TFDV reports (``drift_skew_info``) and its anomalies as records.
* :func:`linf_tfdv` and :func:`jsd_tfdv` (from :mod:`monitor.tfdv`) give the same two numbers
  without TFDV.

A bundle's skewwatch baseline keeps 16,384 numeric buckets (``BASELINE_BINS``): exact while a
feature has at most that many distinct values, otherwise within its ``rank_error``; for numbers
equal to TFDV's on a continuous feature with more distinct values, pass the bundle's own
``tfdv/statistics.pb`` as ``baseline``. See :mod:`monitor.tfdv.metrics`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from os import PathLike
from typing import Literal

import numpy as np
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from monitor.errors import ConfigError, SchemaError
from monitor.stats import CategoricalStats, NumericStats, Profile
from monitor.tfdv import (
    NUM_QUANTILES_HISTOGRAM_BUCKETS,
    NUM_RANK_HISTOGRAM_BUCKETS,
    jsd_error_bound,
    jsd_tfdv,
    linf_tfdv,
    ranked_counts,
    standard_histogram,
    tfdv_histograms,
)

__all__ = [
    "TfdvMode",
    "TfdvMetric",
    "TfdvValue",
    "TfdvAnomaly",
    "TfdvMeasurement",
    "DATASET_KEY",
    "NUM_TOP_VALUES",
    "profile_to_tfdv",
    "tfdv_skew_drift",
    "linf_tfdv",
    "jsd_tfdv",
    "jsd_error_bound",
    "standard_histogram",
]

NUM_TOP_VALUES = 20  # StatsOptions.num_top_values
#: Key of the dataset-level anomalies in :func:`tfdv_skew_drift`'s result.
DATASET_KEY = "__dataset__"
_NEVER = 1.0  # a threshold no L-infinity or JSD (both <= 1) exceeds: measured, never an anomaly
_Statistics = statistics_pb2.DatasetFeatureStatisticsList


class TfdvMode(StrEnum):
    SKEW = "skew"  # serving_statistics= and each feature's skew_comparator
    DRIFT = "drift"  # previous_statistics= and each feature's drift_comparator


class TfdvMetric(StrEnum):
    LINF = "linf"
    JSD = "jsd"
    NORMALIZED_ABS_DIFFERENCE = "normalized_abs_difference"


_METRICS = {
    anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: TfdvMetric.LINF,
    anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE: TfdvMetric.JSD,
    anomalies_pb2.DriftSkewInfo.Measurement.NORMALIZED_ABSOLUTE_DIFFERENCE: TfdvMetric.NORMALIZED_ABS_DIFFERENCE,
}


@dataclass(frozen=True, slots=True)
class TfdvValue:
    """One value TFDV measured; ``threshold`` is None when the schema set none (measured anyway)."""

    metric: TfdvMetric
    value: float
    threshold: float | None


@dataclass(frozen=True, slots=True)
class TfdvAnomaly:
    """One reason of a TFDV anomaly; ``kind`` is the ``AnomalyInfo.Type`` name."""

    feature: str
    kind: str
    severity: Literal["UNKNOWN", "WARNING", "ERROR"]
    short_description: str
    description: str

    @property
    def is_comparator(self) -> bool:
        """A skew/drift comparator anomaly, not a schema check (type, domain, range, presence)."""
        return self.kind.startswith("COMPARATOR_")


@dataclass(frozen=True, slots=True)
class TfdvMeasurement:
    """What TFDV reported for one feature in one skew or drift check."""

    feature: str
    mode: TfdvMode
    values: tuple[TfdvValue, ...]
    anomalies: tuple[TfdvAnomaly, ...]

    def value(self, metric: TfdvMetric) -> float | None:
        return next((v.value for v in self.values if v.metric == metric), None)

    @property
    def linf(self) -> float | None:
        return self.value(TfdvMetric.LINF)

    @property
    def jsd(self) -> float | None:
        return self.value(TfdvMetric.JSD)

    @property
    def schema_anomalies(self) -> tuple[TfdvAnomaly, ...]:
        return tuple(a for a in self.anomalies if not a.is_comparator)


# -- export ---------------------------------------------------------------------------------------
def _common(out: statistics_pb2.CommonStatistics, present: int, missing: int) -> None:
    out.num_non_missing, out.num_missing, out.tot_num_values = present, missing, present
    if present:
        out.min_num_values = out.max_num_values = 1
        out.avg_num_values = 1.0
        hist = out.num_values_histogram
        hist.type = statistics_pb2.Histogram.QUANTILES
        for _ in range(NUM_QUANTILES_HISTOGRAM_BUCKETS):
            hist.buckets.add(low_value=1.0, high_value=1.0, sample_count=present / NUM_QUANTILES_HISTOGRAM_BUCKETS)


def _numeric(out: statistics_pb2.NumericStatistics, stats: NumericStats) -> None:
    # +-inf are present values, but the sketch holds the finite ones only: they count as present
    # and are listed as the custom statistic "skewwatch_nonfinite", outside the histograms.
    _common(out.common_stats, stats.count + stats.nonfinite, stats.missing)
    if stats.count == 0:
        return
    out.mean = stats.mean
    out.std_dev = math.sqrt(max(stats.m2 / stats.count, 0.0))  # population sd, as TFDV
    zero_share = float(np.diff(stats.cdf([np.nextafter(0.0, -1.0), 0.0]))[0])
    out.num_zeros = round(stats.count * zero_share)  # exact while the sketch is exact
    out.min, out.max = stats.min, stats.max
    hists = tfdv_histograms(stats)
    out.median = hists.median
    for kind, buckets in ((statistics_pb2.Histogram.STANDARD, hists.standard),
                          (statistics_pb2.Histogram.QUANTILES, hists.quantiles)):
        hist = out.histograms.add(type=kind)
        for lo, hi, count in buckets:
            hist.buckets.add(low_value=lo, high_value=hi, sample_count=count)


def _strings(out: statistics_pb2.StringStatistics, stats: CategoricalStats) -> None:
    _common(out.common_stats, stats.count, stats.missing)
    ranked = ranked_counts(stats)
    out.unique = len(ranked) if stats.is_exact else round(stats.distinct_estimate)
    kept = sum(c for _, c in ranked)
    if kept:
        out.avg_length = sum(len(v.encode("utf-8", "surrogatepass")) * c for v, c in ranked) / kept
    for value, count in ranked[:NUM_TOP_VALUES]:
        out.top_values.add(value=value, frequency=count)
    for rank, (value, count) in enumerate(ranked[:NUM_RANK_HISTOGRAM_BUCKETS]):
        out.rank_histogram.buckets.add(low_rank=rank, high_rank=rank, label=value, sample_count=count)


def profile_to_tfdv(profile: Profile, *, name: str = "window") -> _Statistics:
    """A skewwatch profile as TFDV statistics of one dataset named ``name``.

    Numeric features: FLOAT (INT for dtype "int"), ``num_stats`` with the common counts, mean,
    population std_dev, num_zeros and median (read off the sketch: exact while it is), min, max,
    the STANDARD and QUANTILES histograms. Categorical features: STRING (INT for dtype "int"),
    ``string_stats`` with unique, the top 20 values, avg_length (UTF-8 bytes) and the rank
    histogram of the top 1000. Once a categorical statistic has left its exact mode its counts
    are Misra-Gries lower bounds and ``unique`` is the HLL estimate.
    """
    if not isinstance(profile, Profile):
        raise ConfigError(f"expected a Profile, got {type(profile).__name__}", field="profile")
    result = _Statistics()
    dataset = result.datasets.add(name=name, num_examples=profile.rows)
    types = statistics_pb2.FeatureNameStatistics
    for spec in profile.specs:
        stats = profile.features[spec.name]
        feature = dataset.features.add()
        feature.path.step.append(spec.name)
        if spec.kind == "numeric":
            feature.type = types.INT if spec.dtype == "int" else types.FLOAT
            _numeric(feature.num_stats, stats)
            if stats.nonfinite:
                feature.custom_stats.add(name="skewwatch_nonfinite", num=stats.nonfinite)
        else:
            feature.type = types.INT if spec.dtype == "int" else types.STRING
            _strings(feature.string_stats, stats)
    return result


# -- TFDV's validation ----------------------------------------------------------------------------
def _load_schema(schema: schema_pb2.Schema | str | PathLike[str]) -> schema_pb2.Schema:
    """A private copy of ``schema`` (a proto, or the path of a text proto)."""
    out = schema_pb2.Schema()
    if isinstance(schema, schema_pb2.Schema):
        out.CopyFrom(schema)
        return out
    if not isinstance(schema, (str, PathLike)):
        raise ConfigError(f"expected a Schema proto or a path, got {type(schema).__name__}", field="schema")
    try:
        with open(schema, encoding="utf-8") as fh:
            return text_format.Parse(fh.read(), out)
    except (OSError, UnicodeDecodeError, text_format.ParseError) as exc:
        raise ConfigError(f"cannot read the TFDV schema text proto {str(schema)!r} ({exc})", field="schema") from None


def _statistics(value: object, name: str) -> _Statistics:
    if isinstance(value, Profile):
        return profile_to_tfdv(value, name=name)
    if isinstance(value, _Statistics):
        if len(value.datasets) != 1:
            raise ConfigError(f"expected the statistics of one dataset, got {len(value.datasets)}", field=name)
        return value
    raise ConfigError(f"expected a Profile or a DatasetFeatureStatisticsList, got {type(value).__name__}", field=name)


def _feature_name(path: object, fallback: str) -> str:
    return ".".join(path.step) or fallback  # type: ignore[attr-defined]


def _measure_everything(schema: schema_pb2.Schema, stats: _Statistics, mode: TfdvMode) -> set[str]:
    """Give each feature without a comparator for ``mode`` one that never fires; return their names."""
    kinds = {_feature_name(f.path, f.name): f.WhichOneof("stats") for f in stats.datasets[0].features}
    added = set()
    for feature in schema.feature:
        comparator = feature.skew_comparator if mode is TfdvMode.SKEW else feature.drift_comparator
        kind = kinds.get(feature.name)
        if kind is None or comparator.infinity_norm.HasField("threshold") \
                or comparator.jensen_shannon_divergence.HasField("threshold"):
            continue
        metric = comparator.jensen_shannon_divergence if kind == "num_stats" else comparator.infinity_norm
        metric.threshold = _NEVER
        added.add(feature.name)
    return added


def _anomalies(result: anomalies_pb2.Anomalies) -> dict[str, list[TfdvAnomaly]]:
    infos = list(result.anomaly_info.items())
    if result.HasField("dataset_anomaly_info"):
        infos.append((DATASET_KEY, result.dataset_anomaly_info))
    out: dict[str, list[TfdvAnomaly]] = {}
    for key, info in infos:
        feature = key if key == DATASET_KEY else _feature_name(info.path, key)
        severity = anomalies_pb2.AnomalyInfo.Severity.Name(info.severity)
        for reason in info.reason:
            out.setdefault(feature, []).append(TfdvAnomaly(
                feature=feature, kind=anomalies_pb2.AnomalyInfo.Type.Name(reason.type), severity=severity,
                short_description=reason.short_description, description=reason.description))
    return out


def tfdv_skew_drift(*, baseline: Profile | _Statistics, window: Profile | _Statistics,
                    schema: schema_pb2.Schema | str | PathLike[str],
                    mode: TfdvMode | str) -> dict[str, TfdvMeasurement]:
    """``tfdv.validate_statistics`` of ``window`` against ``baseline``: per feature, what TFDV said.

    The window is TFDV's ``statistics`` (so the schema checks -- types, domains, ranges, presence --
    run on the window) and the baseline its ``serving_statistics`` (mode "skew") or
    ``previous_statistics`` (mode "drift"). L-infinity and JSD are symmetric, so the values equal
    those of TFDV's usual argument order. A feature whose schema entry has no comparator for
    ``mode`` gets one with threshold 1.0 (never exceeded) so its value is reported too, with
    ``threshold`` None. Dataset-level anomalies are under :data:`DATASET_KEY`. ``schema`` is a
    Schema proto or the path of a text proto (a bundle's ``tfdv/schema.pbtxt``); it is not changed.
    Profiles are exported with :func:`profile_to_tfdv`.
    """
    try:
        mode = TfdvMode(mode)
    except ValueError:
        raise ConfigError(f"must be one of {[m.value for m in TfdvMode]}, got {mode!r}", field="mode") from None
    current, reference = _statistics(window, "window"), _statistics(baseline, "baseline")
    proto = _load_schema(schema)
    unset = _measure_everything(proto, current, mode)
    import tensorflow_data_validation as tfdv  # TensorFlow is loaded here, on first use only

    control = {"serving_statistics" if mode is TfdvMode.SKEW else "previous_statistics": reference}
    try:
        result = tfdv.validate_statistics(current, proto, **control)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise SchemaError(f"TFDV could not validate the window ({exc})") from None
    anomalies = _anomalies(result)
    values: dict[str, list[TfdvValue]] = {}
    for info in result.drift_skew_info:
        feature = _feature_name(info.path, "")
        for m in info.skew_measurements if mode is TfdvMode.SKEW else info.drift_measurements:
            metric = _METRICS.get(m.type)
            if metric is not None:
                threshold = None if feature in unset else float(m.threshold)
                values.setdefault(feature, []).append(TfdvValue(metric, float(m.value), threshold))
    return {f: TfdvMeasurement(feature=f, mode=mode, values=tuple(values.get(f, ())),
                               anomalies=tuple(anomalies.get(f, ())))
            for f in sorted(set(values) | set(anomalies))}
