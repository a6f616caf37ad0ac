"""What the store hands back: frozen, JSON-safe rows, and what it accepts (typing only).

Every value in a row is a ``str``, ``int``, finite ``float``, ``bool``, ``None`` or a
dict/tuple of those, so an adapter can serialise a row with ``to_dict()`` and nothing else.
Timestamps are UTC ISO 8601 strings with microseconds and a ``Z`` suffix
(``2012-03-01T08:00:00.000000Z``): fixed width, so they sort as text in SQL too.
A float that is not finite (a statistic of ``inf``) is stored as it is but read back as ``None``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Literal, Mapping, Protocol, Sequence, get_args

from monitor.decide import Mode, Verdict
from monitor.errors import StatisticsError

__all__ = [
    "Mode",
    "Verdict",
    "AlertState",
    "MODES",
    "VERDICTS",
    "ALERT_STATES",
    "AlertLike",
    "WindowRow",
    "FindingRow",
    "ScoreRow",
    "AlertRow",
    "WindowSummaryRow",
    "iso_utc",
    "parse_utc",
    "json_float",
]

AlertState = Literal["firing", "resolved"]
MODES: tuple[str, ...] = get_args(Mode)
VERDICTS: tuple[str, ...] = get_args(Verdict)
ALERT_STATES: tuple[str, ...] = ("firing", "resolved")


class AlertLike(Protocol):
    """The attributes of ``alerts.lifecycle.Alert`` the store persists."""

    fingerprint: str
    state: str
    labels: Mapping[str, str]
    severity: str
    summary: str
    findings: Sequence[Mapping[str, Any]]
    starts_at: datetime
    ends_at: datetime | None
    updated_at: datetime
    healthy_windows: int
    notified_status: str | None
    notified_severity: str | None
    last_notified_at: datetime | None


def iso_utc(ts: datetime, *, field: str = "timestamp") -> str:
    """The store's text form of an aware datetime; naive datetimes are refused."""
    if not isinstance(ts, datetime):
        raise StatisticsError(f"{field}: must be a datetime, got {type(ts).__name__}")
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise StatisticsError(f"{field}: must carry a UTC offset")
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(text: str | None) -> datetime | None:
    """Inverse of :func:`iso_utc` (``None`` stays ``None``)."""
    if text is None:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def json_float(value: float | None) -> float | None:
    """A float as JSON can carry it: non-finite values and ``None`` become ``None``."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class _Row:
    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True, slots=True)
class WindowRow(_Row):
    id: int
    model: str
    model_version: str
    mode: str
    window_start: str
    window_end: str
    rows: int
    late_records: int
    invalid_records: int
    saved_at: str
    findings: int  # how many findings the window carries
    alerting: int  # how many of them alert


@dataclass(frozen=True, slots=True)
class FindingRow(_Row):
    id: int
    window_id: int
    model: str
    model_version: str
    feature: str
    test: str
    mode: str
    statistic: float | None
    p_value: float | None
    q_value: float | None
    effect: float | None
    floor: float | None
    significant: bool
    verdict: str
    alerting: bool
    message: str
    window_start: str
    window_end: str


@dataclass(frozen=True, slots=True)
class ScoreRow(_Row):
    """The most recent finding of one (model, feature, test, mode)."""

    model: str
    feature: str
    test: str
    mode: str
    model_version: str
    effect: float | None
    q_value: float | None
    statistic: float | None
    floor: float | None
    verdict: str
    alerting: bool
    window_id: int
    window_end: str


@dataclass(frozen=True, slots=True)
class WindowSummaryRow(_Row):
    """How many windows one (model, mode) has and what the latest one held."""

    model: str
    mode: str
    windows: int
    last_window_end: str
    last_rows: int
    last_late_records: int
    last_invalid_records: int


@dataclass(frozen=True, slots=True)
class AlertRow(_Row):
    fingerprint: str
    state: str
    labels: dict[str, str]
    severity: str
    summary: str
    findings: tuple[dict[str, Any], ...]
    starts_at: str
    ends_at: str | None
    updated_at: str
    healthy_windows: int
    notified_status: str | None
    notified_severity: str | None
    last_notified_at: str | None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["findings"] = list(self.findings)
        return out
