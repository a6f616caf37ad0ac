"""The alerting side of a decided window, and of a group flush: the pure parts wired to the store.

``AlertEngine.hook(window, findings)`` is the ``react`` callable of ``Store.decide_window``. Inside
the window's own transaction it loads the series' alerts (locked), runs the pure lifecycle
(:func:`alerts.lifecycle.evaluate`), writes the alert rows and schedules the notification groups
the changes touch. So a crash leaves either the window with its alert transitions and scheduled
groups, or nothing; and a window decided twice (a replay) changes nothing the second time.

``AlertEngine.flush_group`` runs in its own transaction on the sender's thread: it locks one due
group (``SKIP LOCKED``: two senders never flush the same group at once), plans the flush
(:func:`alerts.grouping.plan_flush`), renders every integration of the group's receiver and
writes the messages to the outbox, together with what the receiver has now heard.

Event time (the window's end) drives the lifecycle; wall time (``tx.now_ms``, the store's clock)
drives the group timers and delivery.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy.engine import Connection

from alerts.grouping import FlushPlan, plan_flush, schedule_after_change
from alerts.lifecycle import Evaluation, WindowInfo, evaluate
from alerts.receivers import Receivers, RenderContext
from alerts.routing import group_of, match_routes, routes_by_id
from monitor.alerting_config import AlertingConfig
from monitor.decide import Finding
from monitor.storage.alerting import (
    AlertRow,
    active_silences,
    add_members,
    delete_alerts,
    due_groups,
    enqueue,
    ensure_group,
    group_members,
    groups_of,
    lock_group,
    remove_members,
    schedule_group,
    select_alerts,
    update_group,
    write_alerts,
)
from monitor.storage.windows import DecisionTx

__all__ = ["AlertEngine", "FlushResult"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FlushResult:
    group_id: int
    group_key: str
    receiver: str
    plan: FlushPlan
    messages: int


def _pairs(findings: Iterable[Any]) -> list[tuple[Finding, str]]:
    """``(finding, family)`` from ``FindingIn`` objects, ``(finding, family)`` pairs or bare findings."""
    out = []
    for f in findings:
        if isinstance(f, Finding):
            out.append((f, "features"))
        elif isinstance(f, tuple):
            out.append((f[0], f[1]))
        else:
            out.append((f.finding, getattr(f, "family", "features")))
    return out


def _window_info(window: Any, window_id: int | None) -> WindowInfo:
    if isinstance(window, WindowInfo):
        return window if window_id is None else WindowInfo(window.model, window.model_version, window.segment,
                                                           window.start_ms, window.end_ms, window_id)
    key = window.key  # a WindowDecision (or anything with .key and .end_ms)
    return WindowInfo(key.model, key.model_version, key.segment, key.start_ms, window.end_ms, window_id)


class AlertEngine:
    """Built once from the alerting configuration; see the module docstring."""

    def __init__(self, config: AlertingConfig | None = None, *, external_url: str = "http://127.0.0.1:8600") -> None:
        self.config = config if config is not None else AlertingConfig()
        self.tree = self.config.route_tree()
        self.routes = routes_by_id(self.tree)
        self.external_url = (self.config.external_url or external_url).rstrip("/")

    @classmethod
    def from_settings(cls, settings: Any, config: AlertingConfig | None = None) -> "AlertEngine":
        """Links point at ``alerting.external_url``, else the monitor's public URL, else its host and port."""
        url = getattr(settings, "monitor_public_url", None) or (
            f"http://{settings.monitor_host}:{settings.monitor_port}")
        return cls(config, external_url=url)

    # -- inside decide_window's transaction --------------------------------------------------

    def hook(self, window: Any, findings: Iterable[Any] | None = None) -> Callable[[DecisionTx], None]:
        """The ``react`` callable for ``store.decide_window(decision, react=...)``.

        ``window`` is the ``WindowDecision`` (or a :class:`WindowInfo`); ``findings`` its ``FindingIn``
        objects (default: ``window.findings``)."""
        pairs = _pairs(window.findings if findings is None else findings)

        def react(tx: DecisionTx) -> None:
            self.react(tx, _window_info(window, tx.window_id), pairs)

        return react

    def react(self, tx: DecisionTx, window: WindowInfo, findings: Sequence[tuple[Finding, str]]) -> Evaluation:
        conn = tx.conn
        current = {a.fingerprint: a for a in select_alerts(conn, model=window.model, model_version=window.model_version,
                                                           segment=window.segment, for_update=True)}
        ev = evaluate(current, window, findings, config=self.config, tree=self.tree, now_ms=tx.now_ms,
                      external_url=self.external_url)
        delete_alerts(conn, ev.deleted)
        write_alerts(conn, ev.rows)
        for alert in ev.notable:
            self._schedule(conn, alert, tx.now_ms)
        return ev

    def _schedule(self, conn: Connection, alert: AlertRow, now_ms: int) -> None:
        """Put the alert in the groups its labels route to, and look again at every group it is in."""
        ids = set(groups_of(conn, alert.fingerprint))
        for route in match_routes(self.tree, alert.labels):
            labels, key, key_hash = group_of(route, alert.labels)
            group = ensure_group(conn, route=route.id, receiver=route.receiver, key_hash=key_hash, group_key=key,
                                 group_labels=labels)
            add_members(conn, group.id, [alert.fingerprint])
            ids.add(group.id)
        for gid in sorted(ids):
            group = lock_group(conn, gid, skip_locked=False)
            if group is not None:
                schedule_group(conn, gid, schedule_after_change(group, self.routes.get(group.route, self.tree), now_ms))

    # -- on the sender's thread ---------------------------------------------------------------

    def flush_group(self, store: Any, group_id: int, receivers: Receivers, *, now_ms: int) -> FlushResult | None:
        """Flush one due group in one transaction; ``None`` if it is not due or another sender has it."""
        with store.write("flushing an alert group") as conn:
            group = lock_group(conn, group_id, due_at_ms=now_ms)
            if group is None:
                return None
            route = self.routes.get(group.route, self.tree)
            receiver = receivers.get(group.receiver)
            if receiver is None:
                log.error("alert group %s: no receiver named %r in the configuration", group.group_key, group.receiver)
            members = group_members(conn, group.id)
            plan = plan_flush(group, members, route=route, silences=active_silences(conn, now_ms), now_ms=now_ms,
                              resend_ms=receiver.resend_ms if receiver is not None else None)
            ctx = RenderContext(group.receiver, self.external_url, group.seq + 1)
            messages = [m for i in (receiver.integrations if receiver is not None else ()) for m in i.render(plan, group, ctx)]
            enqueue(conn, messages, now_ms=now_ms)
            remove_members(conn, group.id, plan.drop_members)
            values: dict[str, Any] = {"notified": plan.notified, "next_flush_ms": plan.next_flush_ms,
                                      "last_flush_ms": now_ms if plan.live else None}
            if messages:
                values["seq"] = group.seq + 1
            if plan.notify:
                values["last_notified_ms"] = now_ms
            if not plan.live:
                values["last_notified_ms"] = None
            update_group(conn, group.id, **values)
        if plan.notify or messages:
            log.info("alert group %s -> %s: %s (%d firing, %d resolved), %d message(s)", group.group_key,
                     group.receiver, plan.reason or "re-post", len(plan.firing), len(plan.resolved), len(messages))
        return FlushResult(group.id, group.group_key, group.receiver, plan, len(messages))

    def flush_due(self, store: Any, receivers: Receivers, *, now_ms: int, limit: int = 100) -> list[FlushResult]:
        """Flush every group due by ``now_ms`` (each in its own transaction)."""
        with store.read("finding due alert groups") as conn:
            due = due_groups(conn, now_ms, limit=limit)
        done = []
        for gid, _ in due:
            result = self.flush_group(store, gid, receivers, now_ms=now_ms)
            if result is not None:
                done.append(result)
        return done
