"""Postable alerts for Prometheus Alertmanager's ``POST /api/v2/alerts``, sent the way Prometheus does.

Every active alert is posted with ``endsAt`` four resend intervals ahead and re-posted every
interval while it fires; if skewwatch stops, Alertmanager resolves it on its own when ``endsAt``
passes. A resolved alert is posted once with its real ``endsAt`` (clamped to now). Alertmanager
identifies alerts by their labels, so a repeated post is a no-op there.
"""

from __future__ import annotations

from typing import Any

from alerts.formats.common import present, rfc3339
from alerts.grouping import FlushPlan

__all__ = ["postable_alerts", "VALID_FOR_INTERVALS"]

VALID_FOR_INTERVALS = 4


def postable_alerts(plan: FlushPlan, *, resend_ms: int) -> list[dict[str, Any]]:
    now = plan.now_ms
    out = []
    for a in plan.firing:
        ends = now + VALID_FOR_INTERVALS * resend_ms
        out.append({"labels": present(a.labels), "annotations": present(a.annotations),
                    "startsAt": rfc3339(min(a.starts_ms, now)), "endsAt": rfc3339(ends),
                    "generatorURL": str(a.annotations.get("drilldown", ""))})
    for a in plan.resolved:
        ends = min(now, a.ends_ms if a.ends_ms is not None else a.updated_ms)
        out.append({"labels": present(a.labels), "annotations": present(a.annotations),
                    "startsAt": rfc3339(min(a.starts_ms, ends)), "endsAt": rfc3339(ends),
                    "generatorURL": str(a.annotations.get("drilldown", ""))})
    return out
