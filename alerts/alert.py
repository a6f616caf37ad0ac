"""The alert and the notification it produces.

One alert exists per ``(model, feature, mode)``; its fingerprint is a stable hash of those
three values (the same in every process and every run), and it carries every alerting test
of that feature in that mode. ``Alert`` is the lifecycle's state (persisted through the
store), ``Notification`` is what the notifiers deliver.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, Mapping

from monitor.errors import StatisticsError

__all__ = [
    "Severity",
    "AlertState",
    "NotificationStatus",
    "SEVERITY_RANK",
    "fingerprint",
    "rfc3339",
    "parse_time",
    "Alert",
    "Notification",
]

Severity = Literal["warning", "critical"]
AlertState = Literal["firing", "resolved"]
NotificationStatus = Literal["firing", "resolved"]
SEVERITY_RANK: Mapping[str, int] = {"warning": 1, "critical": 2}


def fingerprint(model: str, feature: str, mode: str) -> str:
    """Stable 16-hex-digit id of the alert for one feature in one mode of one model."""
    key = json.dumps([model, feature, mode], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def rfc3339(ts: datetime | None) -> str | None:
    """``2012-03-01T08:00:00Z`` (UTC); ``None`` stays ``None``."""
    if ts is None:
        return None
    return ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_time(value: datetime | str | None, *, field: str) -> datetime | None:
    """An aware datetime from a datetime or an ISO 8601 string with an offset."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise StatisticsError(f"{field}: not ISO 8601: {value!r}") from None
    if not isinstance(value, datetime):
        raise StatisticsError(f"{field}: must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise StatisticsError(f"{field}: must carry a UTC offset")
    return value.astimezone(timezone.utc)


@dataclass(frozen=True, slots=True)
class Alert:
    """The lifecycle state of one alert (field names match ``monitor.storage.rows.AlertRow``)."""

    fingerprint: str
    state: AlertState
    labels: Mapping[str, str]  # model, feature, mode, severity
    severity: Severity
    summary: str
    findings: tuple[dict[str, Any], ...]
    starts_at: datetime  # start of the first alerting window of this firing
    ends_at: datetime | None  # end of the window that resolved it
    updated_at: datetime  # end of the last window observed for it (event time)
    healthy_windows: int = 0  # consecutive windows without an alerting test
    notified_status: NotificationStatus | None = None  # what receivers last heard about this firing
    notified_severity: Severity | None = None
    last_notified_at: datetime | None = None  # event time of that notification

    @classmethod
    def from_row(cls, row: Any) -> Alert:
        """Rebuild an alert from a stored row (``AlertRow`` or anything with its attributes)."""
        return cls(
            fingerprint=row.fingerprint,
            state=row.state,
            labels=dict(row.labels),
            severity=row.severity,
            summary=row.summary,
            findings=tuple(dict(f) for f in row.findings),
            starts_at=parse_time(row.starts_at, field="starts_at"),  # type: ignore[arg-type]
            ends_at=parse_time(row.ends_at, field="ends_at"),
            updated_at=parse_time(row.updated_at, field="updated_at"),  # type: ignore[arg-type]
            healthy_windows=int(row.healthy_windows),
            notified_status=row.notified_status,
            notified_severity=row.notified_severity,
            last_notified_at=parse_time(row.last_notified_at, field="last_notified_at"),
        )


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to receivers: an alert started firing, is still firing, or resolved."""

    status: NotificationStatus
    fingerprint: str
    labels: Mapping[str, str]
    severity: Severity
    summary: str
    findings: tuple[dict[str, Any], ...]
    window_start: datetime
    window_end: datetime
    starts_at: datetime
    ends_at: datetime | None = None
    model_version: str | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (timestamps RFC 3339 UTC)."""
        return {
            "status": self.status,
            "fingerprint": self.fingerprint,
            "labels": dict(self.labels),
            "severity": self.severity,
            "summary": self.summary,
            "findings": [dict(f) for f in self.findings],
            "window": {
                "start": rfc3339(self.window_start),
                "end": rfc3339(self.window_end),
                "model_version": self.model_version,
            },
            "starts_at": rfc3339(self.starts_at),
            "ends_at": rfc3339(self.ends_at),
        }
