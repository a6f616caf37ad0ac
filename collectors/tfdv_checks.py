"""Optional TFDV step of a collector: each window validated against its bundle's TFDV schema.

Off by default (``SKEWWATCH_TFDV_CHECKS``): it loads TensorFlow into the collector (about 3 s
once, about 50 ms a window). When on, every closed window is checked with
``tfdv.validate_statistics`` against the bundle's ``tfdv/schema.pbtxt`` with the bundle's TFDV
training statistics as ``serving_statistics``, through :mod:`monitor.tfdv_interop`:

* schema anomalies (types, domains, ranges, presence) become ``tfdv_schema`` findings, one per
  feature, ``critical`` when TFDV rates a reason ERROR, else ``warning``; they are root causes
  for the alert lifecycle, like ``unseen_share`` and ``missing_rate``;
* TFDV's own L-infinity and JSD are stored as ``linf_tfdv`` / ``jsd_tfdv`` findings for interop,
  always ``ok``: TFDV's JSD follows each side's min-max, so one outlier row swings it, and the
  default decisions rest on range-robust scores instead.
"""

from __future__ import annotations

from pathlib import Path

from collectors.baselines import BaselineCache
from collectors.windows import ClosedWindow
from monitor.compare.results import TestName
from monitor.decide import DEFAULT_FLOORS, Finding

__all__ = ["TfdvChecks"]

_INTEROP = {"linf": TestName.LINF_TFDV, "jsd": TestName.JSD_TFDV}


class TfdvChecks:
    def __init__(self, baselines: BaselineCache) -> None:
        self.baselines = baselines
        self._statistics: dict[Path, object] = {}

    def _tfdv_baseline(self, path: Path):
        if path not in self._statistics:
            from tensorflow_metadata.proto.v0 import statistics_pb2

            self._statistics[path] = statistics_pb2.DatasetFeatureStatisticsList.FromString(path.read_bytes())
        return self._statistics[path]

    def findings(self, window: ClosedWindow) -> tuple[Finding, ...]:
        """Skew findings of one window from TFDV (schema anomalies and interop values)."""
        from monitor.tfdv_interop import tfdv_skew_drift

        key = window.key
        bundle = self.baselines.bundle(key.model_name, key.model_version)
        measured = tfdv_skew_drift(
            baseline=self._tfdv_baseline(bundle.file("tfdv_statistics")),
            window=window.features,
            schema=bundle.file("tfdv_schema"),
            mode="skew",
        )
        found: list[Finding] = []
        for feature, m in measured.items():
            reasons = m.schema_anomalies
            if reasons:
                critical = any(a.severity == "ERROR" for a in reasons)
                found.append(Finding(
                    model=key.model_name, feature=feature, test=TestName.TFDV_SCHEMA.value, mode="skew",
                    statistic=float(len(reasons)), p_value=None, q_value=None, effect=float(len(reasons)),
                    floor=DEFAULT_FLOORS[TestName.TFDV_SCHEMA], significant=True,
                    verdict="critical" if critical else "warning",
                    message=f"{feature}: TFDV " + "; ".join(f"{a.kind}: {a.short_description}" for a in reasons),
                ))
            for value in m.values:
                test = _INTEROP.get(value.metric.value)
                if test is None:
                    continue
                found.append(Finding(
                    model=key.model_name, feature=feature, test=test.value, mode="skew",
                    statistic=value.value, p_value=None, q_value=None, effect=value.value,
                    floor=value.threshold if value.threshold is not None else DEFAULT_FLOORS[test],
                    significant=False, verdict="ok",
                    message=f"{feature}: TFDV {value.metric.value} {value.value:.3g} (reported for interop, not decided on)",
                ))
        return tuple(found)
