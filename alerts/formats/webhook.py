"""Alertmanager's webhook body, version "4", so receivers written for Alertmanager work unchanged.

Keys as Alertmanager sends them: ``receiver``, ``status``, ``alerts`` (each with ``status``,
``labels``, ``annotations``, ``startsAt``, ``endsAt``, ``generatorURL``, ``fingerprint``),
``groupLabels``, ``commonLabels``, ``commonAnnotations``, ``externalURL``, ``version``,
``groupKey`` and ``truncatedAlerts`` (alerts left out by ``max_alerts``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from alerts.formats.common import alert_json, present
from alerts.grouping import FlushPlan
from monitor.storage.alerting import GroupRow

__all__ = ["WEBHOOK_VERSION", "webhook_message", "common"]

WEBHOOK_VERSION = "4"


def common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The key/value pairs every mapping shares."""
    if not maps:
        return {}
    first = dict(maps[0])
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def webhook_message(plan: FlushPlan, group: GroupRow, *, receiver: str, external_url: str, send_resolved: bool = True,
                    max_alerts: int = 0) -> dict[str, Any] | None:
    """The body for one flush, or ``None`` when there is nothing this webhook should hear."""
    alerts = [alert_json(a, firing=True) for a in plan.firing]
    if send_resolved:
        alerts += [alert_json(a, firing=False) for a in plan.resolved]
    if not plan.notify or not alerts:
        return None
    truncated = 0
    if max_alerts and len(alerts) > max_alerts:
        truncated, alerts = len(alerts) - max_alerts, alerts[:max_alerts]
    return {
        "receiver": receiver,
        "status": plan.status,
        "alerts": alerts,
        "groupLabels": present(group.group_labels),
        "commonLabels": common([a["labels"] for a in alerts]),
        "commonAnnotations": common([a["annotations"] for a in alerts]),
        "externalURL": external_url,
        "version": WEBHOOK_VERSION,
        "groupKey": group.group_key,
        "truncatedAlerts": truncated,
    }
