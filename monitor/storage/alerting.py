"""Alert state, notification groups, silences and the outbox: the store side of ``alerts/``.

Every operation exists twice: as a function of an open connection (so ``alerts.engine`` can run
it inside ``decide_window``'s transaction, and the sender inside its own) and, for callers
outside a transaction (the monitor API, the sender), as a method of :class:`AlertingStore`.

* ``alerts``: one row per fingerprint, its lifecycle state (written by the engine's hook).
* ``alert_groups`` / ``alert_group_members``: Alertmanager's aggregation groups, persistent:
  which alerts a group holds, when it is next looked at (``next_flush_ms``, wall time) and what its
  receiver last heard (``notified``), so a restarted or second sender decides exactly the same.
* ``silences``: matchers with a start and an end (wall time).
* ``outbox``: rendered messages, delivered at least once. A sender *claims* rows with a lease:
  only the oldest pending row of each ``target`` (one destination: a Slack webhook, a PagerDuty
  routing key) can be claimed, so a destination receives its messages in order and two senders
  never deliver the same row at once. A lease that runs out (the sender died) frees the row.

Human actions (acknowledge, resolve, expire a silence) happen in wall time and schedule the
affected groups at once, so the next flush forwards them (an acknowledgement reaches PagerDuty).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterable, Mapping, Sequence

import orjson
from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from monitor.alerting_config import QUERY_STATES, Matcher, matches, parse_matchers
from monitor.errors import ConfigError, NotFoundError
from monitor.storage import tables as t
from monitor.storage.base import upsert
from monitor.timeutil import MAX_MS, format_instant

__all__ = [
    "AlertRow",
    "GroupRow",
    "SilenceRow",
    "OutboxIn",
    "OutboxRow",
    "AlertingStore",
    "OUTBOX_STATUSES",
    "select_alerts",
    "write_alerts",
    "delete_alerts",
    "ensure_group",
    "lock_group",
    "schedule_group",
    "schedule_groups_of",
    "groups_of",
    "update_group",
    "add_members",
    "remove_members",
    "group_members",
    "due_groups",
    "next_group_flush",
    "active_silences",
    "enqueue",
]

OUTBOX_STATUSES = ("pending", "delivered", "failed")
_NAME_MAX = 256
_NEVER = MAX_MS


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _loads(text: str | None) -> Any:
    return orjson.loads(text) if text else None


def _instant(ms: int | None) -> str | None:
    return None if ms is None else format_instant(ms)


# -- rows --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One alert (see ``alerts.identity`` for the fingerprint, ``alerts.lifecycle`` for the states).

    Event-time instants: ``pending_since_ms``, ``starts_ms``, ``ends_ms``, ``updated_ms``; wall
    time: acknowledgement, ``changed_ms``. ``acknowledged`` and ``silenced_by`` are worked out
    when the row is read (at the store's clock); they are not stored.
    """

    fingerprint: str
    state: str
    kind: str
    model: str
    model_version: str
    segment: str
    feature: str
    mode: str
    severity: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    findings: tuple[Mapping[str, Any], ...]
    score: float
    pending_since_ms: int | None
    starts_ms: int
    ends_ms: int | None
    updated_ms: int
    window_id: int | None
    firing_windows: int
    healthy_windows: int
    incident: int
    inhibited_by: str | None
    acknowledged_by: str | None
    acknowledged_until_ms: int | None
    acknowledged_comment: str | None
    acknowledged_ms: int | None
    resolved_by: str | None
    changed_ms: int
    acknowledged: bool = False
    silenced_by: tuple[str, ...] = ()

    def acknowledged_at(self, now_ms: int) -> bool:
        """Acknowledged and the acknowledgement not yet run out at ``now_ms`` (wall time)."""
        return self.acknowledged_until_ms is not None and now_ms < self.acknowledged_until_ms

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["labels"] = dict(self.labels)
        out["annotations"] = dict(self.annotations)
        out["findings"] = [dict(f) for f in self.findings]
        out["silenced_by"] = list(self.silenced_by)
        out.update(starts=_instant(self.starts_ms), ends=_instant(self.ends_ms), updated=_instant(self.updated_ms),
                   acknowledged_until=_instant(self.acknowledged_until_ms))
        return out


@dataclass(frozen=True, slots=True)
class GroupRow:
    """A notification group: Alertmanager's aggregation group, kept in the store."""

    id: int
    route: str
    receiver: str
    key_hash: str
    group_key: str
    group_labels: Mapping[str, str]
    next_flush_ms: int | None
    last_flush_ms: int | None
    last_notified_ms: int | None
    notified: Mapping[str, Mapping[str, Any]]
    seq: int

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["group_labels"] = dict(self.group_labels)
        out["notified"] = {k: dict(v) for k, v in self.notified.items()}
        return out


@dataclass(frozen=True, slots=True)
class SilenceRow:
    id: str
    matchers: tuple[Mapping[str, str], ...]
    starts_ms: int
    ends_ms: int
    created_by: str
    comment: str
    created_ms: int
    expired_ms: int | None

    def active_at(self, now_ms: int) -> bool:
        return self.starts_ms <= now_ms < self.ends_ms

    def state_at(self, now_ms: int) -> str:
        """``pending`` (not started), ``active`` or ``expired``, as Alertmanager names them."""
        if now_ms < self.starts_ms:
            return "pending"
        return "active" if now_ms < self.ends_ms else "expired"

    def parsed(self) -> tuple[Matcher, ...]:
        return parse_matchers(list(self.matchers))

    def mutes(self, labels: Mapping[str, str], now_ms: int) -> bool:
        return self.active_at(now_ms) and matches(self.parsed(), labels)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["matchers"] = [dict(m) for m in self.matchers]
        out.update(starts=_instant(self.starts_ms), ends=_instant(self.ends_ms),
                   created=_instant(self.created_ms), expired=_instant(self.expired_ms))
        return out


@dataclass(frozen=True, slots=True)
class OutboxIn:
    """A rendered message to deliver. ``payload`` never holds a secret (the integration adds it)."""

    receiver: str
    integration: str
    target: str
    kind: str
    dedup_key: str
    payload: Any
    not_before_ms: int | None = None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    receiver: str
    integration: str
    target: str
    kind: str
    dedup_key: str
    payload: Any
    status: str
    attempts: int
    created_ms: int
    next_attempt_ms: int
    lease_owner: str | None
    lease_until_ms: int | None
    delivered_ms: int | None
    last_status: int | None
    last_error: str | None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(created=_instant(self.created_ms), next_attempt=_instant(self.next_attempt_ms),
                   delivered=_instant(self.delivered_ms))
        return out


def _alert_row(r: Any) -> AlertRow:
    return AlertRow(
        fingerprint=r.fingerprint, state=r.state, kind=r.kind, model=r.model, model_version=r.model_version,
        segment=r.segment, feature=r.feature, mode=r.mode, severity=r.severity, labels=_loads(r.labels) or {},
        annotations=_loads(r.annotations) or {}, findings=tuple(_loads(r.findings) or ()), score=float(r.score),
        pending_since_ms=r.pending_since_ms, starts_ms=r.starts_ms, ends_ms=r.ends_ms, updated_ms=r.updated_ms,
        window_id=r.window_id, firing_windows=r.firing_windows, healthy_windows=r.healthy_windows,
        incident=r.incident, inhibited_by=r.inhibited_by, acknowledged_by=r.acknowledged_by,
        acknowledged_until_ms=r.acknowledged_until_ms, acknowledged_comment=r.acknowledged_comment,
        acknowledged_ms=r.acknowledged_ms, resolved_by=r.resolved_by, changed_ms=r.changed_ms,
    )


def _alert_values(a: AlertRow) -> dict[str, Any]:
    return {
        "fingerprint": a.fingerprint, "state": a.state, "kind": a.kind, "model": a.model,
        "model_version": a.model_version, "segment": a.segment, "feature": a.feature, "mode": a.mode,
        "severity": a.severity, "labels": _dumps(dict(a.labels)), "annotations": _dumps(dict(a.annotations)),
        "findings": _dumps([dict(f) for f in a.findings]), "score": float(a.score),
        "pending_since_ms": a.pending_since_ms, "starts_ms": a.starts_ms, "ends_ms": a.ends_ms,
        "updated_ms": a.updated_ms, "window_id": a.window_id, "firing_windows": a.firing_windows,
        "healthy_windows": a.healthy_windows, "incident": a.incident, "inhibited_by": a.inhibited_by,
        "acknowledged_by": a.acknowledged_by, "acknowledged_until_ms": a.acknowledged_until_ms,
        "acknowledged_comment": a.acknowledged_comment, "acknowledged_ms": a.acknowledged_ms,
        "resolved_by": a.resolved_by, "changed_ms": a.changed_ms,
    }


def _group_row(r: Any) -> GroupRow:
    return GroupRow(id=r.id, route=r.route, receiver=r.receiver, key_hash=r.key_hash, group_key=r.group_key,
                    group_labels=_loads(r.group_labels) or {}, next_flush_ms=r.next_flush_ms,
                    last_flush_ms=r.last_flush_ms, last_notified_ms=r.last_notified_ms,
                    notified=_loads(r.notified) or {}, seq=r.seq)


def _silence_row(r: Any) -> SilenceRow:
    return SilenceRow(id=r.id, matchers=tuple(_loads(r.matchers) or ()), starts_ms=r.starts_ms, ends_ms=r.ends_ms,
                      created_by=r.created_by, comment=r.comment, created_ms=r.created_ms, expired_ms=r.expired_ms)


def _outbox_row(r: Any) -> OutboxRow:
    return OutboxRow(id=r.id, receiver=r.receiver, integration=r.integration, target=r.target, kind=r.kind,
                     dedup_key=r.dedup_key, payload=_loads(r.payload), status=r.status, attempts=r.attempts,
                     created_ms=r.created_ms, next_attempt_ms=r.next_attempt_ms, lease_owner=r.lease_owner,
                     lease_until_ms=r.lease_until_ms, delivered_ms=r.delivered_ms, last_status=r.last_status,
                     last_error=r.last_error)


def _with_read_state(rows: Iterable[AlertRow], silences: Sequence[SilenceRow], now_ms: int) -> list[AlertRow]:
    out = []
    for a in rows:
        silenced = tuple(s.id for s in silences if s.mutes(a.labels, now_ms))
        out.append(replace(a, acknowledged=a.acknowledged_at(now_ms), silenced_by=silenced))
    return out


# -- functions of a connection -----------------------------------------------------------------


def select_alerts(conn: Connection, *, model: str | None = None, model_version: str | None = None,
                  segment: str | None = None, fingerprints: Sequence[str] | None = None,
                  states: Sequence[str] | None = None, for_update: bool = False) -> list[AlertRow]:
    c = t.alerts.c
    where = []
    for column, value in ((c.model, model), (c.model_version, model_version), (c.segment, segment)):
        if value is not None:
            where.append(column == value)
    if fingerprints is not None:
        if not fingerprints:
            return []
        where.append(c.fingerprint.in_(list(fingerprints)))
    if states is not None:
        where.append(c.state.in_(list(states)))
    stmt = select(t.alerts).where(*where).order_by(c.model, c.model_version, c.segment, c.fingerprint)
    if for_update:
        stmt = stmt.with_for_update()
    return [_alert_row(r) for r in conn.execute(stmt)]


def write_alerts(conn: Connection, rows: Sequence[AlertRow]) -> None:
    """Insert or replace alert rows (every column)."""
    if not rows:
        return
    values = [_alert_values(a) for a in rows]
    upsert(conn, t.alerts, values, keys=("fingerprint",), update=[k for k in values[0] if k != "fingerprint"])


def delete_alerts(conn: Connection, fingerprints: Sequence[str]) -> None:
    if fingerprints:
        conn.execute(delete(t.alerts).where(t.alerts.c.fingerprint.in_(list(fingerprints))))


def ensure_group(conn: Connection, *, route: str, receiver: str, key_hash: str, group_key: str,
                 group_labels: Mapping[str, str]) -> GroupRow:
    """The group ``(route, key_hash)``, created if missing, locked for this transaction."""
    upsert(conn, t.alert_groups, [{
        "route": route, "receiver": receiver, "key_hash": key_hash, "group_key": group_key,
        "group_labels": _dumps(dict(group_labels)), "next_flush_ms": None, "last_flush_ms": None,
        "last_notified_ms": None, "notified": "{}", "seq": 0,
    }], keys=("route", "key_hash"), update=())
    c = t.alert_groups.c
    row = conn.execute(select(t.alert_groups).where(c.route == route, c.key_hash == key_hash).with_for_update()).one()
    if row.receiver != receiver:  # the configuration changed the route's receiver
        conn.execute(update(t.alert_groups).where(c.id == row.id).values(receiver=receiver))
        row = conn.execute(select(t.alert_groups).where(c.id == row.id)).one()
    return _group_row(row)


def lock_group(conn: Connection, group_id: int, *, due_at_ms: int | None = None,
               skip_locked: bool = True) -> GroupRow | None:
    """The group, locked for this transaction (held by another transaction and ``skip_locked``:
    ``None``, else wait for it); with ``due_at_ms``, only if its flush is due by then."""
    c = t.alert_groups.c
    where = [c.id == group_id]
    if due_at_ms is not None:
        where += [c.next_flush_ms.is_not(None), c.next_flush_ms <= due_at_ms]
    row = conn.execute(select(t.alert_groups).where(*where).with_for_update(skip_locked=skip_locked)).first()
    return None if row is None else _group_row(row)


def schedule_group(conn: Connection, group_id: int, at_ms: int) -> None:
    """Look at the group no later than ``at_ms`` (an earlier schedule stands)."""
    c = t.alert_groups.c
    conn.execute(update(t.alert_groups).where(c.id == group_id, or_(c.next_flush_ms.is_(None), c.next_flush_ms > at_ms))
                 .values(next_flush_ms=at_ms))


def groups_of(conn: Connection, fingerprint: str) -> list[int]:
    """Ids of the groups holding the alert."""
    m = t.alert_group_members.c
    return [r.group_id for r in conn.execute(select(m.group_id).where(m.fingerprint == fingerprint).order_by(m.group_id))]


def schedule_groups_of(conn: Connection, fingerprint: str, at_ms: int) -> None:
    """Look at every group holding the alert no later than ``at_ms``."""
    for group_id in groups_of(conn, fingerprint):
        schedule_group(conn, group_id, at_ms)


def update_group(conn: Connection, group_id: int, **values: Any) -> None:
    if "notified" in values:
        values["notified"] = _dumps({k: dict(v) for k, v in values["notified"].items()})
    if "group_labels" in values:
        values["group_labels"] = _dumps(dict(values["group_labels"]))
    conn.execute(update(t.alert_groups).where(t.alert_groups.c.id == group_id).values(**values))


def add_members(conn: Connection, group_id: int, fingerprints: Iterable[str]) -> None:
    rows = [{"group_id": group_id, "fingerprint": fp} for fp in sorted(set(fingerprints))]
    upsert(conn, t.alert_group_members, rows, keys=("group_id", "fingerprint"), update=())


def remove_members(conn: Connection, group_id: int, fingerprints: Iterable[str]) -> None:
    fps = sorted(set(fingerprints))
    if fps:
        m = t.alert_group_members.c
        conn.execute(delete(t.alert_group_members).where(m.group_id == group_id, m.fingerprint.in_(fps)))


def group_members(conn: Connection, group_id: int) -> list[AlertRow]:
    m = t.alert_group_members.c
    rows = conn.execute(select(t.alerts).join(t.alert_group_members, m.fingerprint == t.alerts.c.fingerprint)
                        .where(m.group_id == group_id).order_by(t.alerts.c.fingerprint))
    return [_alert_row(r) for r in rows]


def due_groups(conn: Connection, now_ms: int, *, limit: int = 100) -> list[tuple[int, int]]:
    """``(id, next_flush_ms)`` of groups due by ``now_ms``, most overdue first."""
    c = t.alert_groups.c
    rows = conn.execute(select(c.id, c.next_flush_ms).where(c.next_flush_ms.is_not(None), c.next_flush_ms <= now_ms)
                        .order_by(c.next_flush_ms, c.id).limit(limit))
    return [(r.id, r.next_flush_ms) for r in rows]


def next_group_flush(conn: Connection) -> int | None:
    """The earliest ``next_flush_ms`` of any group (None: nothing scheduled)."""
    return conn.execute(select(func.min(t.alert_groups.c.next_flush_ms))).scalar()


def active_silences(conn: Connection, at_ms: int) -> list[SilenceRow]:
    c = t.silences.c
    rows = conn.execute(select(t.silences).where(c.starts_ms <= at_ms, c.ends_ms > at_ms).order_by(c.created_ms, c.id))
    return [_silence_row(r) for r in rows]


def enqueue(conn: Connection, messages: Sequence[OutboxIn], *, now_ms: int) -> int:
    """Add messages to the outbox (a dedup key already there is skipped); how many were added."""
    if not messages:
        return 0
    rows = [{
        "receiver": m.receiver, "integration": m.integration, "target": m.target, "kind": m.kind,
        "dedup_key": m.dedup_key, "payload": _dumps(m.payload), "status": "pending", "attempts": 0,
        "created_ms": now_ms, "next_attempt_ms": now_ms if m.not_before_ms is None else m.not_before_ms,
        "lease_owner": None, "lease_until_ms": None, "delivered_ms": None, "last_status": None, "last_error": None,
    } for m in messages]
    before = conn.execute(select(func.count()).select_from(t.outbox)).scalar_one()
    upsert(conn, t.outbox, rows, keys=("dedup_key",), update=())
    return conn.execute(select(func.count()).select_from(t.outbox)).scalar_one() - before


# -- the mixin ---------------------------------------------------------------------------------


def _check_text(value: Any, field: str, *, required: bool = True, limit: int = _NAME_MAX) -> str:
    if not isinstance(value, str) or (required and not value.strip()):
        raise ConfigError("must be a non-empty string" if required else "must be a string", field=field)
    if len(value) > limit:
        raise ConfigError(f"at most {limit} characters", field=field)
    return value


def _check_ms(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_MS:
        raise ConfigError("must be an instant in epoch milliseconds", field=field)
    return value


class AlertingStore:
    """Mixin of :class:`monitor.storage.Store`: alerts, silences, the outbox (see the module docstring)."""

    # -- alerts ----------------------------------------------------------------------------

    def list_alerts(self, state: str | None = None, model: str | None = None) -> list[AlertRow]:
        """Alerts, firing first, then pending, then resolved; newest change first within each.

        ``state`` is ``pending``, ``firing``, ``resolved`` or ``acknowledged`` (firing or pending
        with an acknowledgement that has not run out)."""
        if state is not None and state not in QUERY_STATES:
            raise ConfigError(f"must be one of {list(QUERY_STATES)}, got {state!r}", field="state")
        now = self.now()  # type: ignore[attr-defined]
        stored = None if state is None else (("pending", "firing") if state == "acknowledged" else (state,))
        with self.read("listing alerts") as conn:  # type: ignore[attr-defined]
            rows = select_alerts(conn, model=model, states=stored)
            silences = active_silences(conn, now)
        rows = _with_read_state(rows, silences, now)
        if state == "acknowledged":
            rows = [a for a in rows if a.acknowledged]
        order = {"firing": 0, "pending": 1, "resolved": 2}
        return sorted(rows, key=lambda a: (order.get(a.state, 3), -a.changed_ms, a.fingerprint))

    def get_alert(self, fingerprint: str) -> AlertRow | None:
        now = self.now()  # type: ignore[attr-defined]
        with self.read("reading an alert") as conn:  # type: ignore[attr-defined]
            rows = select_alerts(conn, fingerprints=[fingerprint])
            silences = active_silences(conn, now) if rows else []
        return _with_read_state(rows, silences, now)[0] if rows else None

    def acknowledge_alert(self, fingerprint: str, *, by: str, until_ms: int, comment: str = "") -> AlertRow:
        """Acknowledge a pending or firing alert until ``until_ms`` (wall time): its repeats stop and
        the acknowledgement is forwarded (PagerDuty ``acknowledge``) at the next flush, scheduled now."""
        _check_text(by, "by")
        _check_text(comment, "comment", required=False, limit=2000)
        now = self.now()  # type: ignore[attr-defined]
        if _check_ms(until_ms, "until_ms") <= now:
            raise ConfigError("must be in the future", field="until_ms")
        with self.write("acknowledging an alert") as conn:  # type: ignore[attr-defined]
            rows = select_alerts(conn, fingerprints=[fingerprint], for_update=True)
            if not rows:
                raise NotFoundError("alert", fingerprint)
            if rows[0].state == "resolved":
                raise ConfigError("the alert is resolved; there is nothing to acknowledge", field="fingerprint")
            acked = replace(rows[0], acknowledged_by=by, acknowledged_until_ms=until_ms,
                            acknowledged_comment=comment, acknowledged_ms=now, changed_ms=now)
            write_alerts(conn, [acked])
            schedule_groups_of(conn, fingerprint, now)
        return self.get_alert(fingerprint)  # type: ignore[return-value]

    def resolve_alert(self, fingerprint: str, *, by: str) -> AlertRow:
        """Resolve an alert by hand (as of the last window it saw); its receivers hear at the next
        flush, scheduled now. A later alerting window opens a new incident."""
        _check_text(by, "by")
        now = self.now()  # type: ignore[attr-defined]
        with self.write("resolving an alert") as conn:  # type: ignore[attr-defined]
            rows = select_alerts(conn, fingerprints=[fingerprint], for_update=True)
            if not rows:
                raise NotFoundError("alert", fingerprint)
            a = rows[0]
            if a.state != "resolved":
                write_alerts(conn, [replace(a, state="resolved", ends_ms=a.updated_ms, resolved_by=by,
                                            firing_windows=0, healthy_windows=0, pending_since_ms=None,
                                            changed_ms=now)])
                schedule_groups_of(conn, fingerprint, now)
        return self.get_alert(fingerprint)  # type: ignore[return-value]

    # -- silences --------------------------------------------------------------------------

    def create_silence(self, matchers: Sequence[Any], *, starts_ms: int | None = None, ends_ms: int,
                       created_by: str, comment: str) -> SilenceRow:
        """Mute the alerts every matcher matches, from ``starts_ms`` (default now) until ``ends_ms``
        (wall time). Matchers are ``"label=value"`` texts or ``{"name", "op", "value"}`` mappings."""
        try:
            parsed = parse_matchers(list(matchers) if isinstance(matchers, (list, tuple)) else matchers)
        except ValueError as exc:
            raise ConfigError(str(exc), field="matchers") from None
        if not parsed:
            raise ConfigError("at least one matcher (an empty list would mute everything)", field="matchers")
        if matches(parsed, {}):
            raise ConfigError("these matchers match every alert; name at least one label value", field="matchers")
        _check_text(created_by, "created_by")
        _check_text(comment, "comment", required=False, limit=2000)
        now = self.now()  # type: ignore[attr-defined]
        starts = now if starts_ms is None else _check_ms(starts_ms, "starts_ms")
        if _check_ms(ends_ms, "ends_ms") <= starts:
            raise ConfigError("must be after starts_ms", field="ends_ms")
        if ends_ms <= now:
            raise ConfigError("must be in the future", field="ends_ms")
        row = SilenceRow(id=uuid.uuid4().hex, matchers=tuple(m.model_dump() for m in parsed), starts_ms=starts,
                         ends_ms=ends_ms, created_by=created_by, comment=comment, created_ms=now, expired_ms=None)
        with self.write("creating a silence") as conn:  # type: ignore[attr-defined]
            conn.execute(insert(t.silences).values(
                id=row.id, matchers=_dumps([dict(m) for m in row.matchers]), starts_ms=row.starts_ms,
                ends_ms=row.ends_ms, created_by=created_by, comment=comment, created_ms=now, expired_ms=None))
        return row

    def get_silence(self, silence_id: str) -> SilenceRow | None:
        with self.read("reading a silence") as conn:  # type: ignore[attr-defined]
            r = conn.execute(select(t.silences).where(t.silences.c.id == silence_id)).first()
        return None if r is None else _silence_row(r)

    def list_silences(self, *, active_at_ms: int | None = None) -> list[SilenceRow]:
        """Every silence, newest first; with ``active_at_ms``, only those active then."""
        c = t.silences.c
        where = [] if active_at_ms is None else [c.starts_ms <= active_at_ms, c.ends_ms > active_at_ms]
        with self.read("listing silences") as conn:  # type: ignore[attr-defined]
            return [_silence_row(r) for r in
                    conn.execute(select(t.silences).where(*where).order_by(c.created_ms.desc(), c.id))]

    def expire_silence(self, silence_id: str, *, now_ms: int) -> SilenceRow:
        """End a silence at ``now_ms`` (an already ended one is returned unchanged); every group with
        alerts is looked at again now, so what the silence held back goes out."""
        _check_ms(now_ms, "now_ms")
        with self.write("expiring a silence") as conn:  # type: ignore[attr-defined]
            c = t.silences.c
            r = conn.execute(select(t.silences).where(c.id == silence_id).with_for_update()).first()
            if r is None:
                raise NotFoundError("silence", silence_id)
            if r.ends_ms > now_ms:
                conn.execute(update(t.silences).where(c.id == silence_id)
                             .values(ends_ms=max(now_ms, r.starts_ms), expired_ms=now_ms))
                m = t.alert_group_members.c
                for gid in conn.execute(select(m.group_id).distinct()):
                    schedule_group(conn, gid.group_id, now_ms)
            r = conn.execute(select(t.silences).where(c.id == silence_id)).one()
        return _silence_row(r)

    # -- groups (read only: the sender flushes them through alerts.engine) -----------------

    def list_groups(self) -> list[GroupRow]:
        with self.read("listing alert groups") as conn:  # type: ignore[attr-defined]
            return [_group_row(r) for r in conn.execute(select(t.alert_groups).order_by(t.alert_groups.c.id))]

    # -- outbox ----------------------------------------------------------------------------

    def claim_outbox(self, owner: str, *, lease_ms: int, limit: int = 16, now_ms: int | None = None,
                     exclude_targets: Iterable[str] = ()) -> list[OutboxRow]:
        """Lease up to ``limit`` due messages, at most one per target and only a target's oldest pending
        one, to ``owner`` until ``now + lease_ms``; each claim counts as an attempt."""
        _check_text(owner, "owner", limit=64)
        now = self.now() if now_ms is None else now_ms  # type: ignore[attr-defined]
        o = t.outbox.alias("o")
        head = (select(func.min(t.outbox.c.id)).where(t.outbox.c.target == o.c.target, t.outbox.c.status == "pending")
                .scalar_subquery())
        where = [o.c.status == "pending", o.c.id == head, o.c.next_attempt_ms <= now,
                 or_(o.c.lease_until_ms.is_(None), o.c.lease_until_ms <= now)]
        excluded = sorted(set(exclude_targets))
        if excluded:
            where.append(o.c.target.not_in(excluded))
        with self.write("claiming outbox messages") as conn:  # type: ignore[attr-defined]
            ids = [r.id for r in conn.execute(select(o.c.id).where(*where).order_by(o.c.next_attempt_ms, o.c.id)
                                              .limit(limit).with_for_update(skip_locked=True))]
            if not ids:
                return []
            c = t.outbox.c
            conn.execute(update(t.outbox).where(c.id.in_(ids))
                         .values(lease_owner=owner, lease_until_ms=now + lease_ms, attempts=c.attempts + 1))
            rows = conn.execute(select(t.outbox).where(c.id.in_(ids)).order_by(c.next_attempt_ms, c.id))
            return [_outbox_row(r) for r in rows]

    def complete_outbox(self, message_id: int, *, now_ms: int | None = None, status_code: int | None = None) -> bool:
        """Mark a message delivered (whoever holds the lease: it was delivered); False if it was not pending."""
        now = self.now() if now_ms is None else now_ms  # type: ignore[attr-defined]
        c = t.outbox.c
        with self.write("marking a message delivered") as conn:  # type: ignore[attr-defined]
            done = conn.execute(update(t.outbox).where(c.id == message_id, c.status == "pending").values(
                status="delivered", delivered_ms=now, lease_owner=None, lease_until_ms=None, last_status=status_code))
        return bool(done.rowcount)

    def retry_outbox(self, message_id: int, owner: str, *, next_attempt_ms: int, error: str,
                     status_code: int | None = None) -> bool:
        """Give a claimed message back to be tried again at ``next_attempt_ms``; False if ``owner`` no
        longer holds it."""
        c = t.outbox.c
        with self.write("rescheduling a message") as conn:  # type: ignore[attr-defined]
            done = conn.execute(update(t.outbox).where(c.id == message_id, c.status == "pending", c.lease_owner == owner)
                                .values(next_attempt_ms=next_attempt_ms, lease_owner=None, lease_until_ms=None,
                                        last_error=error[:2000], last_status=status_code))
        return bool(done.rowcount)

    def fail_outbox(self, message_id: int, owner: str, *, error: str, status_code: int | None = None) -> bool:
        """A message the destination refused for good (a 400): kept as ``failed``, never retried."""
        c = t.outbox.c
        with self.write("marking a message failed") as conn:  # type: ignore[attr-defined]
            done = conn.execute(update(t.outbox).where(c.id == message_id, c.status == "pending", c.lease_owner == owner)
                                .values(status="failed", lease_owner=None, lease_until_ms=None, last_error=error[:2000],
                                        last_status=status_code))
        return bool(done.rowcount)

    def list_outbox(self, *, status: str | None = None, receiver: str | None = None, limit: int = 1000) -> list[OutboxRow]:
        """Outbox messages, oldest first."""
        if status is not None and status not in OUTBOX_STATUSES:
            raise ConfigError(f"must be one of {list(OUTBOX_STATUSES)}, got {status!r}", field="status")
        c = t.outbox.c
        where = [col == v for col, v in ((c.status, status), (c.receiver, receiver)) if v is not None]
        with self.read("listing the outbox") as conn:  # type: ignore[attr-defined]
            return [_outbox_row(r) for r in conn.execute(select(t.outbox).where(*where).order_by(c.id).limit(limit))]

    def outbox_counts(self) -> dict[str, int]:
        """Messages by status (every status present, zero included)."""
        c = t.outbox.c
        with self.read("counting the outbox") as conn:  # type: ignore[attr-defined]
            got = {r.status: r.n for r in conn.execute(select(c.status, func.count().label("n")).group_by(c.status))}
        return {s: int(got.get(s, 0)) for s in OUTBOX_STATUSES}

    def next_outbox_attempt(self) -> int | None:
        """When the earliest pending message becomes due (None: nothing pending)."""
        c = t.outbox.c
        with self.read("reading the outbox") as conn:  # type: ignore[attr-defined]
            return conn.execute(select(func.min(func.coalesce(c.lease_until_ms, c.next_attempt_ms)))
                                .where(c.status == "pending")).scalar()

    def prune_outbox(self, *, before_ms: int) -> int:
        """Delete delivered and failed messages created before ``before_ms``; how many went."""
        c = t.outbox.c
        with self.write("pruning the outbox") as conn:  # type: ignore[attr-defined]
            done = conn.execute(delete(t.outbox).where(c.status != "pending", c.created_ms < before_ms))
        return int(done.rowcount or 0)

