"""What every format shows of one alert: Alertmanager's alert JSON (labels, annotations, times, link)."""

from __future__ import annotations

from typing import Any, Mapping

from monitor.storage.alerting import AlertRow
from monitor.timeutil import format_instant

__all__ = ["FIRING_ENDS_AT", "rfc3339", "present", "alert_json", "clip", "number"]

#: Alertmanager's webhook writes this ``endsAt`` for an alert still firing (Go's zero time).
FIRING_ENDS_AT = "0001-01-01T00:00:00Z"


def rfc3339(ms: int) -> str:
    return format_instant(ms)


def present(labels: Mapping[str, str]) -> dict[str, str]:
    """Labels with a value (Alertmanager drops empty ones)."""
    return {k: str(v) for k, v in labels.items() if v not in (None, "")}


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def number(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.3g}"


def alert_json(a: AlertRow, *, firing: bool) -> dict[str, Any]:
    """One alert as Alertmanager's webhook lists it."""
    return {
        "status": "firing" if firing else "resolved",
        "labels": present(a.labels),
        "annotations": present(a.annotations),
        "startsAt": rfc3339(a.starts_ms),
        "endsAt": FIRING_ENDS_AT if firing else rfc3339(a.ends_ms if a.ends_ms is not None else a.updated_ms),
        "generatorURL": str(a.annotations.get("drilldown", "")),
        "fingerprint": a.fingerprint,
    }
