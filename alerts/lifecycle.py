"""``AlertManager``: the alert state machine, driven by closed windows and their findings.

Per ``(model, feature, mode)`` there is one alert (see :mod:`alerts.alert`)::

    (none) --alerting--> firing --``resolve_after`` healthy windows--> resolved --alerting--> firing

``observe(window, findings)`` returns the notifications the window causes:

* an alert that starts firing is notified once (``"firing"``);
* an alert already firing is notified again only when its severity rose above what receivers
  last heard, or when ``repeat_interval`` of event time passed since its last notification;
* an alert resolves after ``resolve_after`` consecutive healthy windows (windows that carry
  findings for the feature and mode, none of them alerting) and is notified ``"resolved"``
  only if its firing was notified. A window without any finding for a feature (not
  evaluated) leaves that feature's alert untouched.

Time is event time throughout (the window's end), so a replay behaves like the original run.
A window the alert has already seen (its end is not after the alert's ``updated_at``) is
ignored, so a collector replaying after a crash never re-notifies. Silenced alerts change
state but send nothing (:mod:`alerts.silences`); inhibition orders root causes first
(:mod:`alerts.inhibition`). With a ``store``, the state is loaded at start and every changed
alert is saved before its notification goes out, so a restart does not re-notify (a crash
between the two loses that notification rather than sending it twice). With a ``notifier``
(for instance an :class:`alerts.notifiers.Dispatcher`) notifications are also sent; a
notifier that raises is logged and never stops the lifecycle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Mapping, Sequence

from alerts.alert import SEVERITY_RANK, Alert, Notification, fingerprint, parse_time
from alerts.inhibition import assess, finding_dict
from alerts.protocols import AlertStore
from monitor.decide import Finding
from alerts.silences import Silence, make_silence
from alerts.summary import firing_summary, resolved_summary
from monitor.errors import ConfigError, StatisticsError

__all__ = ["AlertManager", "DEFAULT_REPEAT_INTERVAL"]

log = logging.getLogger(__name__)

DEFAULT_REPEAT_INTERVAL = timedelta(hours=4)


@dataclass(frozen=True, slots=True)
class _Window:
    model: str
    mode: str
    start: datetime
    end: datetime
    model_version: str | None


def _window(window: Any) -> _Window:
    def get(name: str) -> Any:
        return window.get(name) if isinstance(window, Mapping) else getattr(window, name, None)

    values = {}
    for name in ("model", "mode", "window_start", "window_end"):
        if get(name) is None:
            raise StatisticsError(f"window.{name}: missing")
        values[name] = get(name)
    start = parse_time(values["window_start"], field="window.window_start")
    end = parse_time(values["window_end"], field="window.window_end")
    return _Window(values["model"], values["mode"], start, end, get("model_version"))  # type: ignore[arg-type]


class AlertManager:
    """Turns windows of findings into alert transitions and notifications."""

    def __init__(
        self,
        *,
        repeat_interval: timedelta = DEFAULT_REPEAT_INTERVAL,
        resolve_after: int = 1,
        store: AlertStore | None = None,
        notifier: Any | None = None,
    ) -> None:
        if not isinstance(repeat_interval, timedelta) or repeat_interval <= timedelta(0):
            raise ConfigError(f"must be a positive timedelta, got {repeat_interval!r}", field="repeat_interval")
        if isinstance(resolve_after, bool) or not isinstance(resolve_after, int) or resolve_after < 1:
            raise ConfigError(f"must be an integer >= 1, got {resolve_after!r}", field="resolve_after")
        self.repeat_interval = repeat_interval
        self.resolve_after = resolve_after
        self._store = store
        self._notifier = notifier
        self._alerts: dict[str, Alert] = {}
        self._silences: dict[str, Silence] = {}
        if store is not None:
            self.restore(store.list_alerts())

    # -- state ------------------------------------------------------------------------------

    def restore(self, rows: Sequence[Any]) -> None:
        """Load alert state (``AlertRow`` objects from the store, or ``Alert`` objects)."""
        for row in rows:
            alert = row if isinstance(row, Alert) else Alert.from_row(row)
            self._alerts[alert.fingerprint] = alert

    def alerts(self, *, state: str | None = None) -> list[Alert]:
        return [a for a in self._alerts.values() if state is None or a.state == state]

    def get(self, fingerprint_: str) -> Alert | None:
        return self._alerts.get(fingerprint_)

    # -- silences ---------------------------------------------------------------------------

    def silence(self, matcher: Mapping[str, str], until: datetime, *, comment: str = "") -> Silence:
        """Mute alerts whose labels match ``matcher`` until ``until`` (event time)."""
        silence = make_silence(matcher, until, comment)
        self._silences[silence.id] = silence
        return silence

    def expire_silence(self, silence_id: str) -> None:
        if self._silences.pop(silence_id, None) is None:
            raise ConfigError(f"no silence {silence_id!r}", field="silence_id")

    @property
    def silences(self) -> tuple[Silence, ...]:
        return tuple(self._silences.values())

    def _muted(self, labels: Mapping[str, str], at: datetime) -> bool:
        return any(s.mutes(labels, at) for s in self._silences.values())

    # -- transitions ------------------------------------------------------------------------

    def observe(self, window: Any, findings: Sequence[Finding]) -> list[Notification]:
        """Apply one closed window's findings; return (and, with a notifier, send) notifications.

        ``window`` is a mapping or an object with ``model``, ``mode``, ``window_start``,
        ``window_end`` (aware datetimes or ISO 8601 strings) and optionally ``model_version``.
        """
        w = _window(window)
        model, mode, end = w.model, w.mode, w.end
        groups: dict[str, list[Finding]] = {}
        for i, f in enumerate(findings):
            if f.model != model or f.mode != mode:
                raise StatisticsError(
                    f"findings[{i}]: belongs to {f.model!r}/{f.mode!r}, not to the window's {model!r}/{mode!r}"
                )
            groups.setdefault(f.feature, []).append(f)

        changed: list[Alert] = []
        notes: list[Notification] = []
        for feature, group in groups.items():
            fp = fingerprint(model, feature, mode)
            current = self._alerts.get(fp)
            if current is not None and end <= current.updated_at:
                continue  # already observed: a replay
            alerting = [f for f in group if f.alerting]
            if alerting:
                alert, note = self._fire(current, fp, feature, alerting, w)
            elif current is not None and current.state == "firing":
                alert, note = self._heal(current, group, w)
            else:
                continue
            if note is not None:
                notes.append(note)
            self._alerts[fp] = alert
            changed.append(alert)

        if self._store is not None:
            for alert in changed:
                self._store.save_alert(alert)
        if self._notifier is not None:
            for note in notes:
                try:
                    self._notifier.send(note)
                except Exception:  # noqa: BLE001 - one failed delivery must not stop the lifecycle
                    log.exception("notification %s %s failed", note.status, note.fingerprint)
        return notes

    def _fire(
        self,
        current: Alert | None,
        fp: str,
        feature: str,
        alerting: list[Finding],
        w: _Window,
    ) -> tuple[Alert, Notification | None]:
        found = assess(alerting)
        end = w.end
        labels = {"model": w.model, "feature": feature, "mode": w.mode, "severity": found.severity}
        summary = firing_summary(labels, found.severity, found.findings)
        if current is None or current.state == "resolved":
            alert = Alert(
                fingerprint=fp,
                state="firing",
                labels=labels,
                severity=found.severity,
                summary=summary,
                findings=found.findings,
                starts_at=w.start,
                ends_at=None,
                updated_at=end,
            )
        else:
            alert = replace(
                current,
                labels=labels,
                severity=found.severity,
                summary=summary,
                findings=found.findings,
                updated_at=end,
                healthy_windows=0,
            )
        due = (
            alert.notified_status != "firing"
            or SEVERITY_RANK[alert.severity] > SEVERITY_RANK.get(alert.notified_severity or "", 0)
            or alert.last_notified_at is None
            or end - alert.last_notified_at >= self.repeat_interval
        )
        if not due or self._muted(labels, end):
            return alert, None
        alert = replace(alert, notified_status="firing", notified_severity=alert.severity, last_notified_at=end)
        return alert, _notification("firing", alert, w)

    def _heal(self, current: Alert, group: list[Finding], w: _Window) -> tuple[Alert, Notification | None]:
        end = w.end
        healthy = current.healthy_windows + 1
        if healthy < self.resolve_after:
            return replace(current, healthy_windows=healthy, updated_at=end), None
        alert = replace(
            current,
            state="resolved",
            ends_at=end,
            updated_at=end,
            healthy_windows=healthy,
            summary=resolved_summary(current.labels, healthy),
            findings=tuple(finding_dict(f) for f in group),
        )
        if current.notified_status != "firing" or self._muted(current.labels, end):
            return alert, None
        alert = replace(alert, notified_status="resolved", last_notified_at=end)
        return alert, _notification("resolved", alert, w)


def _notification(status: str, alert: Alert, w: _Window) -> Notification:
    return Notification(
        status=status,  # type: ignore[arg-type]
        fingerprint=alert.fingerprint,
        labels=dict(alert.labels),
        severity=alert.severity,
        summary=alert.summary,
        findings=alert.findings,
        window_start=w.start,
        window_end=w.end,
        starts_at=alert.starts_at,
        ends_at=alert.ends_at,
        model_version=w.model_version,
    )
