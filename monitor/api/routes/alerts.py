"""Alerts (list, read, acknowledge, resolve) and silences (create, list, expire), over the store's
alerting methods (``monitor.storage.alerting``). Acknowledgements and silences are wall time."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Path, Query
from fastapi.exceptions import RequestValidationError
from pydantic import Field, model_validator

from monitor.alerting_config import QUERY_STATES, parse_duration_ms
from monitor.api.bounded import clip
from monitor.api.context import Context
from monitor.api.paging import decode_cursor, encode_cursor
from monitor.api.routes.common import NAME_MAX, READ, WRITE, Instant, cursor_q, name_q, only
from monitor.api.schemas import Problem, _Out
from monitor.api.security import Guards
from monitor.errors import ConfigError, NotFoundError
from monitor.timeutil import format_instant, parse_instant

__all__ = ["add_alert_routes"]

_NOT_FOUND = {404: {"model": Problem, "description": "No such alert or silence."}}
_CONFLICT = {409: {"model": Problem, "description": "The alert is resolved: nothing to acknowledge."}}
Fingerprint = Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="An alert's fingerprint.")
SilenceId = Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="A silence id.")


def _t(ms: int | None) -> str | None:
    return None if ms is None else format_instant(ms)


class AlertOut(_Out):
    fingerprint: str
    state: Literal["pending", "firing", "resolved"]
    kind: str
    model: str
    model_version: str
    segment: str
    feature: str
    mode: str
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    findings: list[dict[str, Any]]
    score: float | None
    starts_ms: int
    starts: str
    ends_ms: int | None
    ends: str | None
    updated_ms: int
    updated: str
    window_id: int | None
    report_url: str | None
    firing_windows: int
    healthy_windows: int
    incident: int
    inhibited_by: str | None
    acknowledged: bool
    acknowledged_by: str | None
    acknowledged_until_ms: int | None
    acknowledged_until: str | None
    acknowledged_comment: str | None
    resolved_by: str | None
    silenced_by: list[str]


def _clip_any(value: Any, chars: int) -> Any:
    if isinstance(value, str):
        return clip(value, chars)
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {str(k)[:NAME_MAX]: _clip_any(v, chars) for k, v in list(value.items())[:50]}
    if isinstance(value, (list, tuple)):
        return [_clip_any(v, chars) for v in list(value)[:50]]
    return value


def alert_out(a: Any, chars: int) -> AlertOut:
    score = float(a.score) if a.score is not None and a.score == a.score else None
    return AlertOut(
        fingerprint=a.fingerprint, state=a.state, kind=a.kind, model=a.model, model_version=a.model_version,
        segment=a.segment, feature=a.feature, mode=a.mode, severity=a.severity,
        labels={str(k): clip(str(v), chars) or "" for k, v in a.labels.items()},
        annotations={str(k): clip(str(v), chars * 4) or "" for k, v in a.annotations.items()},
        findings=[_clip_any(dict(f), chars) for f in a.findings][:50], score=score, starts_ms=a.starts_ms,
        starts=format_instant(a.starts_ms), ends_ms=a.ends_ms, ends=_t(a.ends_ms), updated_ms=a.updated_ms,
        updated=format_instant(a.updated_ms), window_id=a.window_id,
        report_url=f"/reports/{a.window_id}" if a.window_id is not None else None,
        firing_windows=a.firing_windows, healthy_windows=a.healthy_windows, incident=a.incident,
        inhibited_by=a.inhibited_by, acknowledged=bool(a.acknowledged), acknowledged_by=a.acknowledged_by,
        acknowledged_until_ms=a.acknowledged_until_ms, acknowledged_until=_t(a.acknowledged_until_ms),
        acknowledged_comment=clip(a.acknowledged_comment, chars), resolved_by=a.resolved_by,
        silenced_by=list(a.silenced_by))


class AlertPage(_Out):
    alerts: list[AlertOut]
    next: str | None


class _Until(_Out):
    until: str | None = Field(None, max_length=40, description="RFC 3339 instant the acknowledgement runs out.")
    duration: str | None = Field(None, max_length=32, description="Or how long from now: 30m, 4h, 2d.")

    def until_ms(self, now_ms: int, *, field_until: str = "until") -> int:
        try:
            if self.until is not None:
                return parse_instant(self.until, what=field_until)
            return now_ms + parse_duration_ms(self.duration or "")
        except (ValueError, ConfigError) as exc:
            which = field_until if self.until is not None else "duration"
            raise RequestValidationError([{"loc": ("body", which), "msg": clip(str(exc), 300),
                                           "type": "value_error"}]) from None

    @model_validator(mode="after")
    def _one(self) -> "_Until":
        if (self.until is None) == (self.duration is None):
            raise ValueError("give exactly one of until and duration")
        return self


class AckIn(_Until):
    by: str = Field(min_length=1, max_length=NAME_MAX, description="Who acknowledges.")
    comment: str = Field("", max_length=2000)


class ResolveIn(_Out):
    by: str = Field(min_length=1, max_length=NAME_MAX, description="Who resolves it.")


class MatcherIn(_Out):
    name: str = Field(min_length=1, max_length=NAME_MAX, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    op: Literal["=", "!=", "=~", "!~"] = "="
    value: str = Field("", max_length=1000)


class SilenceIn(_Out):
    matchers: list[MatcherIn | str] = Field(min_length=1, max_length=32,
                                            description='Alertmanager matchers: "feature=temp" or {name, op, value}.')
    starts: str | None = Field(None, max_length=40, description="RFC 3339; default now.")
    ends: str | None = Field(None, max_length=40, description="RFC 3339 instant the silence ends.")
    duration: str | None = Field(None, max_length=32, description="Or how long from its start: 2h, 1d.")
    created_by: str = Field(min_length=1, max_length=NAME_MAX)
    comment: str = Field("", max_length=2000)

    @model_validator(mode="after")
    def _one(self) -> "SilenceIn":
        if (self.ends is None) == (self.duration is None):
            raise ValueError("give exactly one of ends and duration")
        return self


class SilenceOut(_Out):
    id: str
    matchers: list[dict[str, str]]
    starts_ms: int
    starts: str
    ends_ms: int
    ends: str
    state: Literal["pending", "active", "expired"]
    created_by: str
    comment: str
    created_ms: int
    expired_ms: int | None


class SilencesOut(_Out):
    silences: list[SilenceOut]
    next: str | None


def silence_out(s: Any, now_ms: int, chars: int) -> SilenceOut:
    return SilenceOut(id=s.id, matchers=[{k: clip(str(v), chars) or "" for k, v in m.items()} for m in s.matchers],
                      starts_ms=s.starts_ms, starts=format_instant(s.starts_ms), ends_ms=s.ends_ms,
                      ends=format_instant(s.ends_ms), state=s.state_at(now_ms), created_by=s.created_by,
                      comment=clip(s.comment, chars) or "", created_ms=s.created_ms, expired_ms=s.expired_ms)


def _store_refusal(exc: ConfigError, fields: dict[str, str]) -> Exception:
    """A ConfigError of the store's checks as 409 (a resolved alert) or 422 naming the body field."""
    if exc.field == "fingerprint":
        return HTTPException(status_code=409, detail=clip(str(exc), 300))
    loc = ("body", fields.get(exc.field or "", exc.field or "body"))
    return RequestValidationError([{"loc": loc, "msg": clip(str(exc), 300), "type": "value_error"}])


def add_alert_routes(app: FastAPI, ctx: Context, guards: Guards) -> None:
    store = ctx.store
    read, write = [Depends(guards.read)], [Depends(guards.write)]
    chars = ctx.max_chars

    @app.get("/alerts", response_model=AlertPage, responses=READ, tags=["alerts"],
             dependencies=[*read, Depends(only("state", "model", "limit", "cursor"))])
    def alerts(state: Literal[QUERY_STATES] | None = Query(None, description="pending, firing, resolved or "  # type: ignore[valid-type]
                                                                            "acknowledged."),
               model: str | None = name_q("Only this model."),
               limit: int = Query(100, ge=1, le=1000),
               cursor: str | None = cursor_q()) -> AlertPage:
        """Alerts, firing first, then pending, then resolved; the most recently changed first."""
        query = {"state": state, "model": model, "limit": limit}
        (start,) = decode_cursor(cursor, route="alerts", query=query, size=1) or (0,)
        rows = store.list_alerts(state=state, model=model)
        page = rows[start:start + limit]
        more = (start + limit,) if start + limit < len(rows) else None
        return AlertPage(alerts=[alert_out(a, chars) for a in page],
                         next=encode_cursor(more, route="alerts", query=query))

    @app.get("/alerts/{fingerprint}", response_model=AlertOut, responses={**READ, **_NOT_FOUND}, tags=["alerts"],
             dependencies=[*read, Depends(only())])
    def alert(fingerprint: str = Fingerprint) -> AlertOut:
        a = store.get_alert(fingerprint)
        if a is None:
            raise NotFoundError("alert", fingerprint)
        return alert_out(a, chars)

    @app.post("/alerts/{fingerprint}/acknowledge", response_model=AlertOut,
              responses={**WRITE, **_NOT_FOUND, **_CONFLICT}, tags=["alerts"], dependencies=[*write, Depends(only())])
    def acknowledge(body: AckIn, fingerprint: str = Fingerprint) -> AlertOut:
        """Acknowledge a pending or firing alert until ``until`` (or for ``duration``): its repeats stop and
        receivers that know acknowledgements (PagerDuty) hear it."""
        until = body.until_ms(store.now())
        try:
            a = store.acknowledge_alert(fingerprint, by=body.by, until_ms=until, comment=body.comment)
        except ConfigError as exc:
            raise _store_refusal(exc, {"until_ms": "until" if body.until is not None else "duration"}) from None
        return alert_out(a, chars)

    @app.post("/alerts/{fingerprint}/resolve", response_model=AlertOut, responses={**WRITE, **_NOT_FOUND},
              tags=["alerts"], dependencies=[*write, Depends(only())])
    def resolve(body: ResolveIn, fingerprint: str = Fingerprint) -> AlertOut:
        """Resolve an alert by hand; a later alerting window opens a new incident."""
        try:
            return alert_out(store.resolve_alert(fingerprint, by=body.by), chars)
        except ConfigError as exc:
            raise _store_refusal(exc, {}) from None

    @app.get("/silences", response_model=SilencesOut, responses=READ, tags=["silences"],
             dependencies=[*read, Depends(only("active_at", "limit", "cursor"))])
    def silences(active_at: Instant | None = Query(None, description="Only silences active at this instant."),
                 limit: int = Query(200, ge=1, le=1000),
                 cursor: str | None = cursor_q()) -> SilencesOut:
        """Silences, newest first."""
        query = {"active_at": active_at, "limit": limit}
        (start,) = decode_cursor(cursor, route="silences", query=query, size=1) or (0,)
        now = store.now()
        rows = store.list_silences(active_at_ms=active_at)
        more = (start + limit,) if start + limit < len(rows) else None
        return SilencesOut(silences=[silence_out(s, now, chars) for s in rows[start:start + limit]],
                           next=encode_cursor(more, route="silences", query=query))

    @app.post("/silences", response_model=SilenceOut, status_code=201, responses=WRITE, tags=["silences"],
              dependencies=[*write, Depends(only())])
    def create_silence(body: SilenceIn) -> SilenceOut:
        """Mute the alerts all matchers match (Alertmanager's matcher syntax) for a while."""
        now = store.now()
        try:
            starts = parse_instant(body.starts, what="starts") if body.starts is not None else now
            ends = parse_instant(body.ends, what="ends") if body.ends is not None \
                else starts + parse_duration_ms(body.duration or "")
        except (ValueError, ConfigError) as exc:
            which = "starts" if body.starts is not None and "starts" in str(exc) else (
                "ends" if body.ends is not None else "duration")
            raise RequestValidationError([{"loc": ("body", which), "msg": clip(str(exc), 300),
                                           "type": "value_error"}]) from None
        matchers = [m if isinstance(m, str) else m.model_dump() for m in body.matchers]
        try:
            row = store.create_silence(matchers, starts_ms=starts, ends_ms=ends, created_by=body.created_by,
                                       comment=body.comment)
        except ConfigError as exc:
            raise _store_refusal(exc, {"starts_ms": "starts", "ends_ms": "ends" if body.ends else "duration"}) from None
        return silence_out(row, store.now(), chars)

    @app.post("/silences/{silence_id}/expire", response_model=SilenceOut, responses={**WRITE, **_NOT_FOUND},
              tags=["silences"], dependencies=[*write, Depends(only())])
    def expire_silence(silence_id: str = SilenceId) -> SilenceOut:
        """End a silence now; what it held back is notified at the next flush."""
        now = store.now()
        return silence_out(store.expire_silence(silence_id, now_ms=now), now, chars)
