"""Optional TFDV step of a collector: each window validated against its bundle's TFDV schema.

Off by default (``SKEWWATCH_TFDV_CHECKS``): it loads TensorFlow into the collector (about 3 s
once, about 50 ms a window). When on, every decided window is checked with
``tfdv.validate_statistics`` against the bundle's ``tfdv/schema.pbtxt`` with the bundle's TFDV
training statistics as ``serving_statistics``, through :mod:`monitor.tfdv_interop`. What TFDV
measures becomes test results like any other, and :func:`monitor.decide.decide` decides them
(one rule for every verdict):

* schema anomalies (types, domains, ranges, presence) are ``tfdv_schema`` results, one per
  feature, effect = the weight of its anomaly reasons (an ERROR reason weighs 2, a WARNING 1), so
  with the default floor 1 and severity multiplier 2 an ERROR is critical and a WARNING a warning;
  they are root causes for the alert lifecycle, like ``unseen_share`` and ``missing_rate``;
* TFDV's own L-infinity and JSD are ``linf_tfdv`` / ``jsd_tfdv`` results for interop, switched off
  in the decision by default (:data:`INTEROP_ONLY`): TFDV's JSD follows each side's min-max, so one
  outlier row swings it; the default decisions rest on range-robust scores instead. A monitor
  config may switch them on like any test.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from collectors.baselines import BaselineCache
from monitor.compare.results import TestName, TestResult
from monitor.config import MonitorConfig
from monitor.decide import Finding, decide
from monitor.keys import WindowKey
from monitor.stats import Profile

__all__ = ["TfdvChecks", "INTEROP_ONLY"]

_INTEROP = {"linf": TestName.LINF_TFDV, "jsd": TestName.JSD_TFDV}
#: Reported for TFDV interop, never alerting unless a monitor config enables them explicitly.
INTEROP_ONLY = frozenset({TestName.LINF_TFDV, TestName.JSD_TFDV})


class TfdvChecks:
    def __init__(self, baselines: BaselineCache, config: MonitorConfig | None = None) -> None:
        self.baselines = baselines
        self.config = config or MonitorConfig()
        self._statistics: dict[Path, object] = {}

    def _tfdv_baseline(self, path: Path):  # noqa: ANN202 - a TFDV proto
        if path not in self._statistics:
            from tensorflow_metadata.proto.v0 import statistics_pb2

            self._statistics[path] = statistics_pb2.DatasetFeatureStatisticsList.FromString(path.read_bytes())
        return self._statistics[path]

    def results(self, key: WindowKey, features: Profile) -> list[tuple[str, TestResult]]:
        """TFDV's verdicts on one window's features as (feature, result) pairs."""
        from monitor.tfdv_interop import tfdv_skew_drift

        bundle = self.baselines.bundle(key.model, key.model_version)
        baseline = self._tfdv_baseline(bundle.file("tfdv_statistics"))
        measured = tfdv_skew_drift(baseline=baseline, window=features, schema=bundle.file("tfdv_schema"), mode="skew")
        reference_rows = int(self.baselines.baselines(key.model, key.model_version)[0].rows)
        out: list[tuple[str, TestResult]] = []
        for feature, m in measured.items():
            reasons = m.schema_anomalies
            if reasons:
                weight = sum(2 if a.severity == "ERROR" else 1 for a in reasons)
                out.append((feature, TestResult(
                    test=TestName.TFDV_SCHEMA, statistic=float(len(reasons)), p_value=None, effect=float(weight),
                    n_reference=reference_rows, n_current=int(features.rows),
                    details=(("reasons", "; ".join(f"{a.kind}: {a.short_description}" for a in reasons)[:500]),),
                )))
            for value in m.values:
                test = _INTEROP.get(value.metric.value)
                if test is not None:
                    out.append((feature, TestResult(test=test, statistic=value.value, p_value=None, effect=value.value,
                                                    n_reference=reference_rows, n_current=int(features.rows))))
        return out

    def findings(self, key: WindowKey, features: Profile) -> tuple[Finding, ...]:
        """Skew findings of one window from TFDV, decided by the one rule (interop values never alert)."""
        results = self.results(key, features)

        def policy(feature: str):  # noqa: ANN202
            return self.config.policy_for(key.model, feature)

        decided = decide(results, policy=policy, model=key.model, mode="skew")
        out = []
        for (feature, result), finding in zip(results, decided):
            reasons = result.detail("reasons")
            if reasons:
                finding = replace(finding, message=f"{finding.message}: TFDV {reasons}")
            if result.test in INTEROP_ONLY and finding.alerting and result.test not in self._enabled(key, feature):
                finding = replace(finding, verdict="ok",
                                  message=finding.message + " (reported for TFDV interop, not alerting)")
            out.append(finding)
        return tuple(out)

    def _enabled(self, key: WindowKey, feature: str) -> frozenset:
        """The interop tests a monitor config switched on explicitly for this feature."""
        model = self.config.models.get(key.model)
        layers = [self.config.defaults] + ([model] if model else []) + (
            [model.features[feature]] if model and feature in model.features else [])
        on = set()
        for layer in layers:
            for name, enabled in layer.tests.items():
                if name in INTEROP_ONLY:
                    (on.add if enabled else on.discard)(name)
        return frozenset(on)
