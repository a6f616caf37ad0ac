"""Prometheus exposition of the store, read at scrape time from small tables only.

``StoreCollector`` is registered in a per-app ``CollectorRegistry`` (no global state). A scrape
reads ``latest_scores`` (one row per score), the latest window of each stream, the dead-letter
counts and the alerts: never the history, so it costs the same after a year as after a day.
Scores are exported whether or not they alert. Names follow Prometheus' conventions (base units,
``_total`` for counters, what varies in labels):

* ``skewwatch_finding_{effect,floor,q_value,statistic}`` and ``skewwatch_finding_alerting`` (0/1),
  ``skewwatch_finding_severity`` (0 ok, 1 warning, 2 critical)
  ``{model,model_version,segment,mode,family,feature,test}``: the latest finding of each score
  (``q_value`` is NaN for tests without a p-value);
* ``skewwatch_window_end_timestamp_seconds`` (event time), ``skewwatch_window_decided_timestamp_seconds``
  (wall clock), ``skewwatch_window_rows``,
  ``skewwatch_window_{invalid_instances,late_records,duplicate_records}``,
  ``skewwatch_window_alerting_findings`` ``{model,model_version,segment}``: the latest window of
  each stream;
* ``skewwatch_dead_letters_total{reason,model}`` and
  ``skewwatch_dead_letter_last_timestamp_seconds{reason,model}``;
* ``skewwatch_alerts_firing{model,severity}`` (0 for a known model and severity without any, so
  the series does not vanish when the last alert resolves), when the store keeps alerts;
* ``skewwatch_store_up``: 1 when the store answered the scrape, 0 when reading it failed.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from typing import Any, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from monitor.errors import StoreError

__all__ = ["StoreCollector", "SEVERITY"]

log = logging.getLogger(__name__)

_SCORE = ["model", "model_version", "segment", "mode", "family", "feature", "test"]
_STREAM = ["model", "model_version", "segment"]
_SEVERITIES = ("warning", "critical")
SEVERITY = {"ok": 0.0, "warning": 1.0, "critical": 2.0}


def _value(x: float | None) -> float:
    return math.nan if x is None else float(x)


class StoreCollector:
    """A prometheus_client collector over a :class:`~monitor.storage.Store`."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("skewwatch_store_up", "1 when the store answered the scrape, else 0.")
        try:
            scores = self.store.latest_scores()
            windows = self.store.latest_windows()
            dead = self.store.dead_letter_counts()
            alerts = self.store.list_alerts() if hasattr(self.store, "list_alerts") else None
        except StoreError as exc:
            log.error("metrics: reading the store failed: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        def gauge(name: str, text: str, labels: list[str]) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, text, labels=labels)

        effect = gauge("skewwatch_finding_effect", "Effect size of the latest finding of each score.", _SCORE)
        floor = gauge("skewwatch_finding_floor", "Practical floor the latest effect was judged against.", _SCORE)
        q_value = gauge("skewwatch_finding_q_value",
                        "Benjamini-Hochberg adjusted p-value of the latest finding (NaN when the test has none).",
                        _SCORE)
        statistic = gauge("skewwatch_finding_statistic", "Test statistic of the latest finding.", _SCORE)
        alerting = gauge("skewwatch_finding_alerting", "1 when the latest finding alerts, else 0.", _SCORE)
        severity = gauge("skewwatch_finding_severity", "Verdict of the latest finding: 0 ok, 1 warning, 2 critical.",
                         _SCORE)
        for s in scores:
            key = [s.model, s.model_version, s.segment, s.mode, s.family, s.feature, s.test]
            effect.add_metric(key, _value(s.effect))
            floor.add_metric(key, _value(s.floor))
            q_value.add_metric(key, _value(s.q_value))
            statistic.add_metric(key, _value(s.statistic))
            alerting.add_metric(key, 1.0 if s.alerting else 0.0)
            severity.add_metric(key, SEVERITY.get(s.verdict, math.nan))
        yield from (effect, floor, q_value, statistic, alerting, severity)

        end = gauge("skewwatch_window_end_timestamp_seconds", "End of the latest decided window (Unix time).", _STREAM)
        decided = gauge("skewwatch_window_decided_timestamp_seconds",
                        "When the latest window was decided (wall clock, Unix time).", _STREAM)
        rows = gauge("skewwatch_window_rows", "Rows folded into the latest window.", _STREAM)
        invalid = gauge("skewwatch_window_invalid_instances", "Invalid instances in the latest window.", _STREAM)
        late = gauge("skewwatch_window_late_records", "Late records counted in the latest window.", _STREAM)
        dupes = gauge("skewwatch_window_duplicate_records", "Duplicate records dropped from the latest window.", _STREAM)
        flagged = gauge("skewwatch_window_alerting_findings", "Alerting findings of the latest window.", _STREAM)
        for w in windows:
            key = [w.model, w.model_version, w.segment]
            end.add_metric(key, w.end_ms / 1000)
            decided.add_metric(key, w.decided_at_ms / 1000)
            rows.add_metric(key, w.rows)
            invalid.add_metric(key, w.invalid_instances)
            late.add_metric(key, w.late_records)
            dupes.add_metric(key, w.duplicate_records)
            flagged.add_metric(key, w.alerting)
        yield from (end, decided, rows, invalid, late, dupes, flagged)

        dead_total = CounterMetricFamily("skewwatch_dead_letters", "Records refused into the dead letters, by reason.",
                                         labels=["reason", "model"])
        dead_last = gauge("skewwatch_dead_letter_last_timestamp_seconds",
                          "When the last record of this reason was refused (Unix time).", ["reason", "model"])
        for d in dead:
            dead_total.add_metric([d.reason, d.model], d.count)
            dead_last.add_metric([d.reason, d.model], d.last_ms / 1000)
        yield from (dead_total, dead_last)

        if alerts is not None:
            firing = gauge("skewwatch_alerts_firing", "Alerts currently firing.", ["model", "severity"])
            known = {_label(a, "model") for a in alerts}
            counts = Counter((_label(a, "model"), getattr(a, "severity", "")) for a in alerts
                             if getattr(a, "state", None) == "firing")
            for model in sorted(known):
                for sev in _SEVERITIES:
                    firing.add_metric([model, sev], counts.get((model, sev), 0))
            yield firing


def _label(alert: Any, name: str) -> str:
    labels = getattr(alert, "labels", None)
    if isinstance(labels, dict) and name in labels:
        return str(labels[name])
    return str(getattr(alert, name, ""))
