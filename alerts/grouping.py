"""When a notification group speaks, and what it says: Alertmanager's dispatcher, as a pure function.

A group (one route, one set of ``group_by`` values) holds alerts. Its timers run in **wall time**:

* ``group_wait``: a new group waits this long after its first alert before its first message,
  so alerts that start together (a bad deploy moving 30 features) arrive as one message;
* ``group_interval``: after that, changes (new alerts, resolves) are sent at most this often;
* ``repeat_interval``: an unchanged group with firing alerts is sent again after this long.

At each flush the group compares its alerts with what its receiver last heard (``notified``)::

    new        firing, not muted, not acknowledged, never notified           -> message
    escalated  notified, severity now higher                                 -> message
    resolved   notified as firing, no longer firing                          -> message
    ack        notified, acknowledged since                                  -> PagerDuty acknowledge only
    ack ended  notified, the acknowledgement ran out while still firing      -> message
    repeat     repeat_interval since the last message, an unacknowledged alert firing -> message

Muted alerts (silenced at ``now``, or inhibited by a model-wide alert) are left out of messages
and never notified; one notified before it was muted stays in ``notified``, so its resolve is
still delivered (a receiver is never left with a firing alert nobody closes). A group with no
firing or notified alert left goes idle; the next alert starts a new group (``group_wait`` again).

:func:`plan_flush` returns the plan; ``alerts.engine`` renders and stores it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from monitor.alerting_config import SEVERITY_RANK, RouteNode
from monitor.storage.alerting import AlertRow, GroupRow, SilenceRow

__all__ = ["FlushPlan", "plan_flush", "schedule_after_change"]


@dataclass(frozen=True, slots=True)
class FlushPlan:
    notify: bool  # a message to every integration (Slack, webhook): something changed, or a repeat
    reason: str  # new | escalated | resolved | ack_expired | repeat | "" (nothing to say)
    firing: tuple[AlertRow, ...]  # not muted, by score (acknowledged ones included, marked)
    resolved: tuple[AlertRow, ...]  # notified as firing, now not firing
    triggered: tuple[AlertRow, ...]  # new, escalated, or acknowledgement expired: PagerDuty trigger
    acknowledged: tuple[AlertRow, ...]  # newly acknowledged: PagerDuty acknowledge
    acked: frozenset[str]  # fingerprints of firing alerts acknowledged at now
    notified: Mapping[str, Mapping[str, object]]  # what the receiver has heard after this flush
    drop_members: tuple[str, ...]  # alerts that leave the group
    live: bool  # the group still holds something
    next_flush_ms: int | None
    now_ms: int
    resend_ms: int | None  # Alertmanager integrations: re-post interval

    @property
    def status(self) -> str:
        return "firing" if self.firing else "resolved"


def _rank(severity: object) -> int:
    return SEVERITY_RANK.get(str(severity), 0)


def schedule_after_change(group: GroupRow, route: RouteNode, now_ms: int) -> int:
    """When a group must be looked at after one of its alerts changed: ``group_wait`` after a new
    group starts, else the next ``group_interval`` tick (never earlier than now)."""
    if group.last_flush_ms is None:
        return now_ms + route.group_wait_ms
    return max(now_ms, group.last_flush_ms + route.group_interval_ms)


def plan_flush(group: GroupRow, members: Sequence[AlertRow], *, route: RouteNode, silences: Sequence[SilenceRow],
               now_ms: int, resend_ms: int | None = None) -> FlushPlan:
    """What the group sends at ``now_ms`` and when it is looked at next (see the module docstring).

    ``resend_ms`` is set when the receiver has an Alertmanager integration: active alerts are then
    re-posted at least that often."""
    notified = {fp: dict(v) for fp, v in group.notified.items()}
    silenced_until: dict[str, int] = {}
    firing: list[AlertRow] = []
    for a in members:
        if a.state != "firing":
            continue
        muting = [s for s in silences if s.mutes(a.labels, now_ms)]
        if muting:
            silenced_until[a.fingerprint] = max(s.ends_ms for s in muting)
        elif a.inhibited_by is None:
            firing.append(a)
    firing.sort(key=lambda a: (-a.score, a.fingerprint))
    firing_fps = {a.fingerprint for a in members if a.state == "firing"}
    acked = frozenset(a.fingerprint for a in firing if a.acknowledged_at(now_ms))
    resolved = tuple(sorted((a for a in members if a.fingerprint in notified and a.fingerprint not in firing_fps),
                            key=lambda a: (-a.score, a.fingerprint)))
    gone = [fp for fp in notified if fp not in {a.fingerprint for a in members}]  # removed from the store

    new = [a for a in firing if a.fingerprint not in notified and a.fingerprint not in acked]
    new_fps = {a.fingerprint for a in new}
    escalated = [a for a in firing if a.fingerprint in notified
                 and _rank(a.severity) > _rank(notified[a.fingerprint].get("severity"))]
    ack_set = [a for a in firing if a.fingerprint in notified and a.fingerprint in acked
               and not notified[a.fingerprint].get("ack")]
    ack_expired = [a for a in firing if a.fingerprint in notified and notified[a.fingerprint].get("ack")
                   and a.fingerprint not in acked]
    unacked = [a for a in firing if a.fingerprint not in acked and (a.fingerprint in notified or a.fingerprint in new_fps)]
    repeat = (group.last_notified_ms is not None and bool(unacked)
              and now_ms >= group.last_notified_ms + route.repeat_interval_ms)
    reasons = [name for name, hit in (("new", new), ("escalated", escalated), ("resolved", resolved),
                                      ("ack_expired", ack_expired), ("repeat", repeat)) if hit]
    notify = bool(reasons)

    after = {fp: v for fp, v in notified.items() if fp not in {a.fingerprint for a in resolved} and fp not in gone}
    for a in firing:
        if a.fingerprint in after or a.fingerprint in new_fps:
            after[a.fingerprint] = {"severity": a.severity, "ack": a.fingerprint in acked}

    member_fps = {a.fingerprint for a in members}
    keep = set(after) | firing_fps
    drop = tuple(sorted(fp for fp in member_fps if fp not in keep))
    live = bool(keep & member_fps) or bool(after)

    next_flush: int | None = None
    if live:
        last_notified = now_ms if notify else group.last_notified_ms
        times: list[int] = []
        if any(a.fingerprint not in acked for a in firing) and last_notified is not None:
            times.append(last_notified + route.repeat_interval_ms)
        times += list(silenced_until.values())
        times += [a.acknowledged_until_ms for a in firing if a.fingerprint in acked and a.acknowledged_until_ms]
        if resend_ms is not None and firing:
            times.append(now_ms + resend_ms)
        future = [x for x in times if x > now_ms]
        next_flush = min(future) if future else None
    return FlushPlan(
        notify=notify, reason=",".join(reasons), firing=tuple(firing), resolved=resolved,
        triggered=tuple(sorted({a.fingerprint: a for a in new + escalated + ack_expired}.values(),
                               key=lambda a: (-a.score, a.fingerprint))),
        acknowledged=tuple(ack_set), acked=acked, notified=after, drop_members=drop, live=live,
        next_flush_ms=next_flush, now_ms=now_ms, resend_ms=resend_ms,
    )
