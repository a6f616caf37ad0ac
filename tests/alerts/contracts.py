"""The documented formats, as checks every payload a test receiver gets must pass.

* Slack Block Kit (api.slack.com/reference/block-kit): header ``plain_text`` at most 150
  characters, section text at most 3,000, at most 10 fields of at most 2,000, at most 50 blocks,
  context elements at most 10; a top-level ``text`` fallback.
* PagerDuty Events API v2 (developer.pagerduty.com, "Send an Alert Event"): ``routing_key``
  (32 characters for a real integration; any non-empty string here), ``event_action`` in
  trigger/acknowledge/resolve, ``dedup_key`` at most 255 characters (required for acknowledge and
  resolve); a trigger's ``payload`` has ``summary`` (1..1024 characters), ``source``, ``severity``
  in critical/error/warning/info, an ISO 8601 ``timestamp`` and optional component, group,
  class, custom_details.
* Alertmanager webhook (prometheus.io/docs/alerting/latest/configuration/#webhook_config),
  version "4": exactly its top-level keys and alert keys.
* Alertmanager API v2 ``postableAlerts`` (api/v2/openapi.yaml): labels required; annotations,
  startsAt, endsAt, generatorURL optional.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

WEBHOOK_KEYS = {"receiver", "status", "alerts", "groupLabels", "commonLabels", "commonAnnotations", "externalURL",
                "version", "groupKey", "truncatedAlerts"}
WEBHOOK_ALERT_KEYS = {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
POSTABLE_KEYS = {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _strings(mapping: Any) -> bool:
    return isinstance(mapping, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items())


def check_slack(body: dict) -> None:
    assert isinstance(body.get("text"), str) and body["text"].strip(), "no text fallback"
    assert len(body["text"]) <= 40_000
    blocks = body["blocks"]
    assert 1 <= len(blocks) <= 50, f"{len(blocks)} blocks"
    for b in blocks:
        kind = b["type"]
        assert kind in {"header", "section", "context", "divider", "actions"}, kind
        if kind == "header":
            assert b["text"]["type"] == "plain_text"
            assert 1 <= len(b["text"]["text"]) < 150, len(b["text"]["text"])
        elif kind == "section":
            assert "text" in b or "fields" in b
            if "text" in b:
                assert b["text"]["type"] in ("mrkdwn", "plain_text")
                assert 1 <= len(b["text"]["text"]) < 3000, len(b["text"]["text"])
            for f in b.get("fields", []):
                assert len(f["text"]) <= 2000
            assert len(b.get("fields", [])) <= 10
        elif kind == "context":
            assert 1 <= len(b["elements"]) <= 10
            for e in b["elements"]:
                assert len(e["text"]) < 3000


def check_pagerduty(event: dict, *, routing_key: str | None = None) -> None:
    assert isinstance(event.get("routing_key"), str) and event["routing_key"]
    if routing_key is not None:
        assert event["routing_key"] == routing_key
    action = event["event_action"]
    assert action in {"trigger", "acknowledge", "resolve"}
    assert isinstance(event.get("dedup_key"), str) and 1 <= len(event["dedup_key"]) <= 255
    if action != "trigger":
        assert set(event) <= {"routing_key", "event_action", "dedup_key"}, set(event)
        return
    p = event["payload"]
    assert 1 <= len(p["summary"]) <= 1024
    assert isinstance(p["source"], str) and p["source"]
    assert p["severity"] in {"critical", "error", "warning", "info"}
    _time(p["timestamp"])
    assert set(p) <= {"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}
    assert set(event) <= {"routing_key", "event_action", "dedup_key", "payload", "client", "client_url", "links",
                          "images"}
    for link in event.get("links", []):
        assert link["href"].startswith("http")


def check_webhook_v4(body: dict) -> None:
    assert set(body) == WEBHOOK_KEYS, set(body) ^ WEBHOOK_KEYS
    assert body["version"] == "4"
    assert body["status"] in ("firing", "resolved")
    assert isinstance(body["truncatedAlerts"], int) and body["truncatedAlerts"] >= 0
    assert body["alerts"], "a notification lists at least one alert"
    for key in ("groupLabels", "commonLabels", "commonAnnotations"):
        assert _strings(body[key]), key
    for a in body["alerts"]:
        assert set(a) == WEBHOOK_ALERT_KEYS, set(a) ^ WEBHOOK_ALERT_KEYS
        assert a["status"] in ("firing", "resolved")
        assert _strings(a["labels"]) and _strings(a["annotations"])
        _time(a["startsAt"]), _time(a["endsAt"])
        if a["status"] == "firing":
            assert a["endsAt"].startswith("0001-01-01")
    if any(a["status"] == "firing" for a in body["alerts"]):
        assert body["status"] == "firing"


def check_postable(alerts: list) -> None:
    assert isinstance(alerts, list) and alerts
    for a in alerts:
        assert set(a) <= POSTABLE_KEYS and "labels" in a
        assert _strings(a["labels"]) and a["labels"] and all(a["labels"].values())
        assert _time(a["startsAt"]) <= _time(a["endsAt"])
