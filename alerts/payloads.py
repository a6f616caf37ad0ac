"""The JSON bodies each receiver expects, built from one :class:`~alerts.alert.Notification`.

* generic webhook: Alertmanager-like (``version``, ``status``, ``fingerprint``, ``labels``,
  ``annotations.summary``, ``startsAt``, ``endsAt``) plus ``window`` and ``findings``;
  ``endsAt`` is ``null`` while firing.
* Slack incoming webhook: ``text`` (the notification fallback) and Block Kit ``blocks``:
  a header, a fields section (model, feature, mode, severity, window), one mrkdwn line per
  test with its effect against its floor, and a context line. Slack limits are respected
  (header 150 characters, section text 3000, 10 fields, 50 blocks) and ``& < >`` escaped.
* PagerDuty Events API v2: ``trigger`` with ``dedup_key`` = fingerprint and a PD-CEF
  ``payload`` (``summary`` <= 1024 characters, ``source``, ``severity`` critical|warning,
  ``timestamp``, ``component``, ``group``, ``class``, ``custom_details``); ``resolve`` with
  only ``routing_key``, ``dedup_key`` and ``event_action``, as the API documents.
"""

from __future__ import annotations

from typing import Any, Mapping

from alerts.alert import Notification, rfc3339
from alerts.summary import number

__all__ = ["webhook_payload", "slack_payload", "pagerduty_event", "PAGERDUTY_SEVERITY", "WEBHOOK_VERSION"]

WEBHOOK_VERSION = "1"
PAGERDUTY_SEVERITY: Mapping[str, str] = {"critical": "critical", "warning": "warning"}
_SLACK_HEADER_MAX = 150
_SLACK_TEXT_MAX = 3000
_SLACK_FIELD_MAX = 2000
_PD_SUMMARY_MAX = 1024


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def webhook_payload(n: Notification) -> dict[str, Any]:
    d = n.to_dict()
    return {
        "version": WEBHOOK_VERSION,
        "status": n.status,
        "fingerprint": n.fingerprint,
        "labels": d["labels"],
        "annotations": {"summary": n.summary},
        "startsAt": d["starts_at"],
        "endsAt": d["ends_at"],
        "window": d["window"],
        "findings": d["findings"],
    }


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_finding(f: Mapping[str, Any]) -> str:
    line = (
        f"• *{_slack_escape(str(f.get('test')))}*: effect `{number(f.get('effect'))}`"
        f" vs floor `{number(f.get('floor'))}`"
    )
    if f.get("q_value") is not None:
        line += f" · q `{number(f.get('q_value'))}`"
    line += f" · {_slack_escape(str(f.get('verdict')))}"
    if f.get("inhibited"):
        line += " _(inhibited)_"
    return line


def _field(title: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _clip(f"*{title}*\n{_slack_escape(value)}", _SLACK_FIELD_MAX)}


def slack_payload(n: Notification) -> dict[str, Any]:
    labels = n.labels
    firing = n.status == "firing"
    title = (
        f"{'Firing' if firing else 'Resolved'} [{n.severity}]: {labels.get('mode')} on "
        f"{labels.get('model')}/{labels.get('feature')}"
    )
    lines: list[str] = []
    used = 0
    for i, f in enumerate(n.findings):
        line = _slack_finding(f)
        if used + len(line) + 1 > _SLACK_TEXT_MAX - 40:
            lines.append(f"… and {len(n.findings) - i} more")
            break
        lines.append(line)
        used += len(line) + 1
    window = f"{rfc3339(n.window_start)} – {rfc3339(n.window_end)}"
    fields = [
        _field("Model", f"{labels.get('model')}" + (f" ({n.model_version})" if n.model_version else "")),
        _field("Feature", str(labels.get("feature"))),
        _field("Mode", str(labels.get("mode"))),
        _field("Severity", n.severity if firing else f"{n.severity} (resolved)"),
        _field("Window", window),
        _field("Firing since", str(rfc3339(n.starts_at))),
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(title, _SLACK_HEADER_MAX), "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(_slack_escape(n.summary), _SLACK_TEXT_MAX)}},
        {"type": "section", "fields": fields},
    ]
    if lines:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"skewwatch · fingerprint `{n.fingerprint}`"}]})
    return {"text": _clip(_slack_escape(n.summary), _SLACK_TEXT_MAX), "blocks": blocks}


def pagerduty_event(n: Notification, routing_key: str, *, source_prefix: str = "skewwatch") -> dict[str, Any]:
    if n.status == "resolved":
        return {"routing_key": routing_key, "dedup_key": n.fingerprint, "event_action": "resolve"}
    d = n.to_dict()
    labels = n.labels
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": n.fingerprint,
        "payload": {
            "summary": _clip(n.summary, _PD_SUMMARY_MAX),
            "source": f"{source_prefix}:{labels.get('model')}",
            "severity": PAGERDUTY_SEVERITY.get(n.severity, "info"),
            "timestamp": rfc3339(n.window_end),
            "component": str(labels.get("feature")),
            "group": str(labels.get("model")),
            "class": f"{labels.get('mode')}",
            "custom_details": {
                "findings": d["findings"],
                "labels": d["labels"],
                "window": d["window"],
                "starts_at": d["starts_at"],
            },
        },
        "client": "skewwatch",
    }
