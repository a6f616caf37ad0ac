"""Prometheus exposition of the store, read at scrape time.

``StoreCollector`` is registered in a per-app ``CollectorRegistry`` (no global state). Every
scrape reads the store, so what Prometheus sees is what the collector last saved, and a
series disappears only when its data does. Scores are exported whether or not they alert:

* ``skewwatch_finding_{effect,q_value,statistic,floor,alerting}{model,feature,test,mode}`` -
  the latest finding of each test (``q_value`` is NaN for tests without a p-value);
* ``skewwatch_alerts_firing{model,severity}`` - firing alerts (0 for a known model and a
  severity with none, so the series does not vanish when the last alert resolves);
* ``skewwatch_windows{model,mode}`` - stored windows, and for the latest window
  ``skewwatch_window_{rows,late_records,invalid_records}`` and
  ``skewwatch_window_end_timestamp_seconds``;
* ``skewwatch_store_up`` - 1 when the store answered, 0 when reading it failed.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections import Counter
from typing import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from monitor.errors import SkewwatchError
from monitor.storage import Store
from monitor.storage.rows import parse_utc

__all__ = ["StoreCollector"]

log = logging.getLogger(__name__)

_SCORE_LABELS = ["model", "feature", "test", "mode"]
_SEVERITIES = ("warning", "critical")


def _value(x: float | None) -> float:
    return math.nan if x is None else float(x)


class StoreCollector:
    """A prometheus_client collector over a :class:`~monitor.storage.Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        try:
            scores = self.store.latest_scores()
            firing = self.store.list_alerts(state="firing")
            known_models = {a.labels.get("model", "") for a in self.store.list_alerts()}
            windows = self.store.window_summary()
        except (SkewwatchError, sqlite3.Error) as exc:
            log.error("metrics: reading the store failed: %s", exc)
            yield GaugeMetricFamily("skewwatch_store_up", "1 when the store answered the scrape.", value=0)
            return
        yield GaugeMetricFamily("skewwatch_store_up", "1 when the store answered the scrape.", value=1)

        families = {
            "effect": GaugeMetricFamily(
                "skewwatch_finding_effect", "Effect size of the latest finding per test.", labels=_SCORE_LABELS
            ),
            "q_value": GaugeMetricFamily(
                "skewwatch_finding_q_value",
                "Multiple-testing adjusted p-value of the latest finding (NaN when the test has none).",
                labels=_SCORE_LABELS,
            ),
            "statistic": GaugeMetricFamily(
                "skewwatch_finding_statistic", "Test statistic of the latest finding.", labels=_SCORE_LABELS
            ),
            "floor": GaugeMetricFamily(
                "skewwatch_finding_floor", "Effect floor the latest finding was judged against.", labels=_SCORE_LABELS
            ),
            "alerting": GaugeMetricFamily(
                "skewwatch_finding_alerting", "1 when the latest finding alerts, else 0.", labels=_SCORE_LABELS
            ),
        }
        for s in scores:
            key = [s.model, s.feature, s.test, s.mode]
            families["effect"].add_metric(key, _value(s.effect))
            families["q_value"].add_metric(key, _value(s.q_value))
            families["statistic"].add_metric(key, _value(s.statistic))
            families["floor"].add_metric(key, _value(s.floor))
            families["alerting"].add_metric(key, 1.0 if s.alerting else 0.0)
        yield from families.values()

        counts = Counter((a.labels.get("model", ""), a.severity) for a in firing)
        alerts = GaugeMetricFamily(
            "skewwatch_alerts_firing", "Alerts currently firing.", labels=["model", "severity"]
        )
        for model in sorted(known_models | {m for m, _ in counts}):
            for severity in _SEVERITIES:
                alerts.add_metric([model, severity], counts.get((model, severity), 0))
        yield alerts

        window_families = {
            "windows": GaugeMetricFamily("skewwatch_windows", "Windows stored.", labels=["model", "mode"]),
            "rows": GaugeMetricFamily("skewwatch_window_rows", "Valid rows in the latest window.", labels=["model", "mode"]),
            "late": GaugeMetricFamily(
                "skewwatch_window_late_records", "Late records in the latest window.", labels=["model", "mode"]
            ),
            "invalid": GaugeMetricFamily(
                "skewwatch_window_invalid_records", "Invalid records in the latest window.", labels=["model", "mode"]
            ),
            "end": GaugeMetricFamily(
                "skewwatch_window_end_timestamp_seconds", "End of the latest window (Unix time).", labels=["model", "mode"]
            ),
        }
        for w in windows:
            key = [w.model, w.mode]
            window_families["windows"].add_metric(key, w.windows)
            window_families["rows"].add_metric(key, w.last_rows)
            window_families["late"].add_metric(key, w.last_late_records)
            window_families["invalid"].add_metric(key, w.last_invalid_records)
            end = parse_utc(w.last_window_end)
            window_families["end"].add_metric(key, end.timestamp() if end is not None else math.nan)
        yield from window_families.values()
