"""PagerDuty Events API v2 events, one per alert (``dedup_key`` = fingerprint).

``trigger`` for an alert that starts firing, escalates, or whose acknowledgement ran out (PagerDuty
folds a trigger with an open ``dedup_key`` into the same alert); ``acknowledge`` when someone
acknowledges it in skewwatch; ``resolve`` when it resolves. A trigger carries a PD-CEF ``payload``
(``summary`` at most 1,024 characters, ``source``, ``severity``, ``timestamp``, ``component``,
``group``, ``class``, ``custom_details``) plus ``client``, ``client_url`` and ``links``;
acknowledge and resolve carry only ``dedup_key`` and ``event_action``. ``routing_key`` is added by
the integration when it sends, so it is never stored.
"""

from __future__ import annotations

from typing import Any

from alerts.formats.common import clip, present, rfc3339
from alerts.grouping import FlushPlan
from monitor.storage.alerting import AlertRow

__all__ = ["PD_SUMMARY_MAX", "PD_SEVERITY", "pagerduty_events", "trigger_event"]

PD_SUMMARY_MAX = 1024
PD_SEVERITY = {"critical": "critical", "warning": "warning"}
_DETAILS_FINDINGS = 10


def trigger_event(a: AlertRow) -> dict[str, Any]:
    link = str(a.annotations.get("drilldown", ""))
    event: dict[str, Any] = {
        "event_action": "trigger",
        "dedup_key": a.fingerprint,
        "payload": {
            "summary": clip(str(a.annotations.get("summary", a.fingerprint)), PD_SUMMARY_MAX),
            "source": f"skewwatch:{a.model}/{a.model_version}" + (f"/{a.segment}" if a.segment else ""),
            "severity": PD_SEVERITY.get(a.severity, "warning"),
            "timestamp": rfc3339(a.updated_ms),
            "component": a.feature or "all features",
            "group": a.model,
            "class": f"{a.kind} {a.mode}",
            "custom_details": {
                "labels": present(a.labels),
                "starts": rfc3339(a.starts_ms),
                "findings": [dict(f) for f in a.findings[:_DETAILS_FINDINGS]],
                "drilldown": link,
            },
        },
        "client": "skewwatch",
    }
    if link:
        event["client_url"] = link
        event["links"] = [{"href": link, "text": "skewwatch drill-down"}]
    return event


def pagerduty_events(plan: FlushPlan, *, send_resolved: bool = True) -> list[dict[str, Any]]:
    """The events of one flush, in the order they must reach PagerDuty."""
    events = [trigger_event(a) for a in plan.triggered]
    events += [{"event_action": "acknowledge", "dedup_key": a.fingerprint} for a in plan.acknowledged]
    if send_resolved:
        events += [{"event_action": "resolve", "dedup_key": a.fingerprint} for a in plan.resolved]
    return events
