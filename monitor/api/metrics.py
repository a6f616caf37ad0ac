"""Prometheus exposition of the store, read at scrape time from small tables only.

:func:`render` reads ``latest_scores`` (one row per score), the latest window of each stream, the
dead-letter counts and the alerts: never the history, so a scrape costs the same after a year as
after a day. It writes the text format (0.0.4) itself: with 50 features a scrape carries about
8,000 samples, and building them as ``prometheus_client`` metric families took most of the
100 ms budget; here each score's label set is escaped once and shared by its six series. The
tests parse the output with ``prometheus_client``'s parser and a real Prometheus scrapes it.

Scores are exported whether or not they alert. Names follow Prometheus' conventions (base units,
``_total`` for counters, what varies in labels):

* ``skewwatch_finding_{effect,floor,q_value,statistic}``, ``skewwatch_finding_alerting`` (0/1) and
  ``skewwatch_finding_severity`` (0 ok, 1 warning, 2 critical)
  ``{model,model_version,segment,mode,family,feature,test}``: the latest finding of each score
  (``q_value`` is NaN for tests without a p-value);
* ``skewwatch_window_end_timestamp_seconds`` (event time), ``skewwatch_window_decided_timestamp_seconds``
  (wall clock), ``skewwatch_window_rows``, ``skewwatch_window_{invalid_instances,late_records,
  duplicate_records}``, ``skewwatch_window_alerting_findings`` ``{model,model_version,segment}``: the
  latest window of each stream;
* ``skewwatch_dead_letters_total{reason,model}`` and
  ``skewwatch_dead_letter_last_timestamp_seconds{reason,model}``;
* ``skewwatch_alerts_firing{model,severity}`` (0 for a known model and a severity without any, so
  the series does not vanish when the last alert resolves);
* ``skewwatch_store_up``: 1 when the store answered the scrape, 0 when reading it failed.

An empty label value (``segment=""``, all traffic) is the same as no label to Prometheus.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from typing import Any, Iterable

from monitor.errors import StoreError

__all__ = ["render", "CONTENT_TYPE", "SEVERITY"]

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SEVERITY = {"ok": 0.0, "warning": 1.0, "critical": 2.0}
_SEVERITIES = ("warning", "critical")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Iterable[str], values: Iterable[str]) -> str:
    return "{" + ",".join(f'{n}="{_escape(str(v))}"' for n, v in zip(names, values)) + "}"


def _num(value: float | None) -> str:
    if value is None:
        return "NaN"
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _family(out: list[str], name: str, kind: str, text: str, samples: Iterable[tuple[str, float | None]]) -> None:
    out.append(f"# HELP {name} {text}\n# TYPE {name} {kind}\n")
    out.extend(f"{name}{labels} {_num(value)}\n" for labels, value in samples)


_SCORE_FAMILIES = (
    ("skewwatch_finding_effect", "Effect size of the latest finding of each score.", lambda s: s.effect),
    ("skewwatch_finding_floor", "Practical floor the latest effect was judged against.", lambda s: s.floor),
    ("skewwatch_finding_q_value",
     "Benjamini-Hochberg adjusted p-value of the latest finding (NaN when the test has none).", lambda s: s.q_value),
    ("skewwatch_finding_statistic", "Test statistic of the latest finding.", lambda s: s.statistic),
    ("skewwatch_finding_alerting", "1 when the latest finding alerts, else 0.", lambda s: 1.0 if s.alerting else 0.0),
    ("skewwatch_finding_severity", "Verdict of the latest finding: 0 ok, 1 warning, 2 critical.",
     lambda s: SEVERITY.get(s.verdict, math.nan)),
)
_SCORE = ("model", "model_version", "segment", "mode", "family", "feature", "test")
_STREAM = ("model", "model_version", "segment")
_WINDOW_FAMILIES = (
    ("skewwatch_window_end_timestamp_seconds", "End of the latest decided window (event time, Unix seconds).",
     lambda w: w.end_ms / 1000),
    ("skewwatch_window_decided_timestamp_seconds", "When the latest window was decided (wall clock, Unix seconds).",
     lambda w: w.decided_at_ms / 1000),
    ("skewwatch_window_rows", "Rows folded into the latest window.", lambda w: w.rows),
    ("skewwatch_window_invalid_instances", "Invalid instances in the latest window.", lambda w: w.invalid_instances),
    ("skewwatch_window_late_records", "Late records counted in the latest window.", lambda w: w.late_records),
    ("skewwatch_window_duplicate_records", "Duplicate records dropped from the latest window.",
     lambda w: w.duplicate_records),
    ("skewwatch_window_alerting_findings", "Alerting findings of the latest window.", lambda w: w.alerting),
)


def render(store: Any) -> bytes:
    """The exposition text of one scrape."""
    try:
        scores = store.scores()
        windows = store.latest_windows()
        dead = store.dead_letter_counts()
        alerts = store.list_alerts() if hasattr(store, "list_alerts") else None
    except StoreError as exc:
        log.error("metrics: reading the store failed: %s", exc)
        out: list[str] = []
        _family(out, "skewwatch_store_up", "gauge", "1 when the store answered the scrape, else 0.", [("", 0)])
        return "".join(out).encode()
    out = []
    _family(out, "skewwatch_store_up", "gauge", "1 when the store answered the scrape, else 0.", [("", 1)])
    keyed = [(_labels(_SCORE, (s.model, s.model_version, s.segment, s.mode, s.family, s.feature, s.test)), s)
             for s in scores]
    for name, text, get in _SCORE_FAMILIES:
        _family(out, name, "gauge", text, ((labels, get(s)) for labels, s in keyed))
    streams = [(_labels(_STREAM, (w.model, w.model_version, w.segment)), w) for w in windows]
    for name, text, get in _WINDOW_FAMILIES:
        _family(out, name, "gauge", text, ((labels, get(w)) for labels, w in streams))
    dead_keyed = [(_labels(("reason", "model"), (d.reason, d.model)), d) for d in dead]
    _family(out, "skewwatch_dead_letters_total", "counter", "Records refused into the dead letters, by reason.",
            ((labels, d.count) for labels, d in dead_keyed))
    _family(out, "skewwatch_dead_letter_last_timestamp_seconds", "gauge",
            "When the last record of this reason was counted (Unix seconds).",
            ((labels, d.last_ms / 1000) for labels, d in dead_keyed))
    if alerts is not None:
        known = sorted({a.model for a in alerts})
        counts = Counter((a.model, a.severity) for a in alerts if a.state == "firing")
        _family(out, "skewwatch_alerts_firing", "gauge", "Alerts currently firing.",
                ((_labels(("model", "severity"), (m, sev)), counts.get((m, sev), 0)) for m in known
                 for sev in _SEVERITIES))
    return "".join(out).encode()
