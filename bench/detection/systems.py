"""The three detectors compared on the same windows, each judged by its own default rule.

* :class:`Skewwatch`: ``monitor.evaluate`` with the built-in configuration
  (``load_monitor_config(None)``), mode ``skew``, against the training profile (built at baseline
  size, as ``trainer.baseline.feature_profile`` does). Windows of one ``stream`` get the earlier
  windows' decided findings as history (so the trend tests run on the stationary stream); other
  calls get none. Criteria: any finding alerting (warning or critical); any finding critical.
* :class:`EvidentlyPreset`: Evidently's ``Report([DataDriftPreset()])`` with its defaults,
  reference = the training rows. Criteria: "dataset drift" (share of drifted columns >= the
  preset's ``drift_share``, 0.5) and "any column drifted" (a failed per-column drift test).
* :class:`TfdvComparators`: ``tfdv.generate_statistics_from_dataframe`` on the window and
  ``tfdv.validate_statistics`` (through ``monitor.tfdv_interop.tfdv_skew_drift``, mode drift)
  with a schema inferred from the training statistics whose drift comparators are 0.3
  (Vertex AI's default): jensen_shannon_divergence for numeric, infinity_norm for
  categorical features. Criteria: any measurement > 0.3; that or any schema anomaly
  (unexpected string value, too low presence, ...).

Each detector's ``__call__(window)`` returns an :class:`Outcome`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import pandas as pd

from monitor.config import load_monitor_config
from monitor.evaluate import evaluate
from monitor.schema import FeatureSpec
from monitor.stats import BASELINE_BINS, BASELINE_CAPACITY, Profile

__all__ = ["Outcome", "Skewwatch", "EvidentlyPreset", "TfdvComparators", "TFDV_THRESHOLD", "SYSTEMS"]

TFDV_THRESHOLD = 0.3


@dataclass(frozen=True, slots=True)
class Outcome:
    """Which of a detector's criteria fired on one window; ``reasons``: what fired (for the report)."""

    fired: dict[str, bool]
    reasons: tuple[str, ...] = field(default=())


class Skewwatch:
    name = "skewwatch"
    criteria = ("skewwatch (warning+)", "skewwatch (critical)")

    history_windows = 32  # as many as the collectors keep

    def __init__(self, reference: pd.DataFrame, specs: Sequence[FeatureSpec]) -> None:
        self._specs = tuple(specs)
        self._config = load_monitor_config(None)
        self._reference = Profile.empty(self._specs, bins=BASELINE_BINS, capacity=BASELINE_CAPACITY)
        self._reference.update_frame(reference)
        self._history: dict[int, list] = {}

    def __call__(self, window: pd.DataFrame, *, stream: int | None = None) -> Outcome:
        current = Profile.empty(self._specs)
        current.update_frame(window)
        history = self._history.setdefault(stream, []) if stream is not None else []
        report = evaluate(reference=self._reference, current=current, model="bikeshare", config=self._config,
                          mode="skew", history=history)
        if stream is not None:
            history.append(report.decided)
            del history[: -self.history_windows]
        alerting = report.alerting
        return Outcome(
            fired={self.criteria[0]: bool(alerting),
                   self.criteria[1]: any(f.verdict == "critical" for f in alerting)},
            reasons=tuple(f"{f.feature}/{f.test}:{f.verdict}" for f in alerting),
        )


class EvidentlyPreset:
    name = "evidently"
    criteria = ("Evidently dataset drift", "Evidently any column")

    def __init__(self, reference: pd.DataFrame, specs: Sequence[FeatureSpec]) -> None:
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        self._Dataset, self._Report, self._Preset = Dataset, Report, DataDriftPreset
        self._definition = DataDefinition(
            numerical_columns=[s.name for s in specs if s.kind == "numeric"],
            categorical_columns=[s.name for s in specs if s.kind == "categorical"],
        )
        self._columns = len(specs)
        self._reference = Dataset.from_pandas(reference, data_definition=self._definition)

    def __call__(self, window: pd.DataFrame) -> Outcome:
        current = self._Dataset.from_pandas(window, data_definition=self._definition)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            snapshot = self._Report([self._Preset()], include_tests=True).run(
                current_data=current, reference_data=self._reference)
            result = snapshot.dict()
        share, drift_share = None, None
        for metric in result["metrics"]:
            if metric.get("config", {}).get("type") == "evidently:metric_v2:DriftedColumnsCount":
                share, drift_share = float(metric["value"]["share"]), float(metric["config"]["drift_share"])
        if share is None:
            raise RuntimeError("Evidently's result has no DriftedColumnsCount metric")
        drifted = [test["metric_config"]["params"]["column"] for test in result["tests"]
                   if test["id"] == "drift" and str(test["status"]).endswith("FAIL")]
        if abs(len(drifted) / self._columns - share) > 1e-9:
            raise RuntimeError(f"Evidently's per-column tests ({len(drifted)} failed) disagree with its share {share}")
        return Outcome(fired={self.criteria[0]: share >= drift_share, self.criteria[1]: bool(drifted)},
                       reasons=tuple(drifted))


class TfdvComparators:
    name = "tfdv"
    criteria = (f"TFDV comparators {TFDV_THRESHOLD}", "TFDV + schema checks")

    def __init__(self, reference: pd.DataFrame, specs: Sequence[FeatureSpec]) -> None:
        from monitor.tfdv_interop import tfdv_skew_drift
        from trainer.baseline import tfdv_schema, tfdv_statistics

        self._specs = tuple(specs)
        self._statistics, self._validate = tfdv_statistics, tfdv_skew_drift
        self._baseline = tfdv_statistics(reference, self._specs)
        vocab = {s.name: sorted(reference[s.name].dropna().unique()) for s in self._specs if s.kind == "categorical"}
        schema = tfdv_schema(self._baseline, self._specs, vocab)
        for feature in schema.feature:
            comparator = feature.drift_comparator
            metric = comparator.infinity_norm if comparator.HasField("infinity_norm") \
                else comparator.jensen_shannon_divergence
            metric.threshold = TFDV_THRESHOLD
        self._schema = schema

    def __call__(self, window: pd.DataFrame) -> Outcome:
        found = self._validate(baseline=self._baseline, window=self._statistics(window, self._specs),
                               schema=self._schema, mode="drift")
        over = [f"{m.feature}/{v.metric.value}" for m in found.values() for v in m.values
                if v.threshold is not None and v.value > v.threshold]
        comparator = any(a.is_comparator for m in found.values() for a in m.anomalies)
        if bool(over) != comparator:
            raise RuntimeError(f"TFDV's comparator anomalies disagree with its measurements: {over}")
        schema = [f"{a.feature}/{a.kind}" for m in found.values() for a in m.schema_anomalies]
        return Outcome(fired={self.criteria[0]: bool(over), self.criteria[1]: bool(over or schema)},
                       reasons=tuple(over + schema))


SYSTEMS = {"skewwatch": Skewwatch, "evidently": EvidentlyPreset, "tfdv": TfdvComparators}
