"""Notifier payloads (exact JSON), retries, the dispatcher, and one real HTTP delivery."""

import json
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from alerts.alert import Notification
from alerts.notifiers import (
    PAGERDUTY_EVENTS_URL,
    Dispatcher,
    PagerDutyNotifier,
    SlackNotifier,
    WebhookNotifier,
    build_notifiers,
)
from alerts.payloads import slack_payload
from alerts.retry import RetryPolicy
from monitor.errors import ConfigError, DeliveryError
from monitor.settings import Settings

START = datetime(2012, 3, 1, 8, 0, tzinfo=timezone.utc)
END = datetime(2012, 3, 1, 8, 5, tzinfo=timezone.utc)
FINDINGS = (
    {"model": "bikeshare", "feature": "temp", "test": "ks", "mode": "skew", "statistic": 0.42, "p_value": 1e-9,
     "q_value": 3e-9, "effect": 0.42, "floor": 0.1, "significant": True, "verdict": "critical",
     "message": "ks critical", "alerting": True, "inhibited": False},
    {"model": "bikeshare", "feature": "temp", "test": "psi", "mode": "skew", "statistic": 0.31, "p_value": None,
     "q_value": None, "effect": 0.31, "floor": 0.2, "significant": True, "verdict": "warning",
     "message": "psi warning", "alerting": True, "inhibited": False},
)
LABELS = {"model": "bikeshare", "feature": "temp", "mode": "skew", "severity": "critical"}
SUMMARY = "[CRITICAL] skew on bikeshare/temp: ks effect 0.42 >= floor 0.1 (q=3e-09); psi effect 0.31 >= floor 0.2"
NO_WAIT = RetryPolicy(attempts=3, base_delay=0.5, multiplier=2.0, jitter=0.0)


def note(status="firing", severity="critical", **kw):
    return Notification(status=status, fingerprint="0123456789abcdef", labels={**LABELS, "severity": severity},
                        severity=severity, summary=kw.pop("summary", SUMMARY), findings=kw.pop("findings", FINDINGS),
                        window_start=START, window_end=END, starts_at=START,
                        ends_at=END if status == "resolved" else None, model_version="v1", **kw)


class Recorder:
    """An httpx.MockTransport handler answering from a script of status codes (last one repeats)."""

    def __init__(self, *statuses, headers=None):
        self.statuses = list(statuses) or [200]
        self.headers = headers or {}
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        status = self.statuses[min(len(self.requests), len(self.statuses)) - 1]
        if isinstance(status, Exception):
            raise status
        return httpx.Response(status, headers=self.headers, text="ok" if status < 400 else "invalid_payload")

    def client(self):
        return httpx.Client(transport=httpx.MockTransport(self))

    def bodies(self):
        return [json.loads(r.content) for r in self.requests]


def test_webhook_payload_is_alertmanager_like():
    rec = Recorder(200)
    WebhookNotifier("https://hooks.example.com/skew", rec.client()).send(note())
    (req,) = rec.requests
    assert (req.method, str(req.url), req.headers["content-type"]) == ("POST", "https://hooks.example.com/skew",
                                                                       "application/json")
    assert json.loads(req.content) == {
        "version": "1",
        "status": "firing",
        "fingerprint": "0123456789abcdef",
        "labels": LABELS,
        "annotations": {"summary": SUMMARY},
        "startsAt": "2012-03-01T08:00:00Z",
        "endsAt": None,
        "window": {"start": "2012-03-01T08:00:00Z", "end": "2012-03-01T08:05:00Z", "model_version": "v1"},
        "findings": list(FINDINGS),
    }
    rec2 = Recorder(204)
    WebhookNotifier("http://hooks.example.com/", rec2.client()).send(note("resolved"))
    body = rec2.bodies()[0]
    assert (body["status"], body["endsAt"]) == ("resolved", "2012-03-01T08:05:00Z")


def test_slack_payload_exact_shape():
    rec = Recorder(200)
    SlackNotifier("https://hooks.slack.com/services/T0/B0/secret", rec.client()).send(note())
    assert rec.bodies() == [{
        "text": SUMMARY.replace(">", "&gt;"),
        "blocks": [
            {"type": "header",
             "text": {"type": "plain_text", "text": "Firing [critical]: skew on bikeshare/temp", "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": SUMMARY.replace(">", "&gt;")}},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": "*Model*\nbikeshare (v1)"},
                {"type": "mrkdwn", "text": "*Feature*\ntemp"},
                {"type": "mrkdwn", "text": "*Mode*\nskew"},
                {"type": "mrkdwn", "text": "*Severity*\ncritical"},
                {"type": "mrkdwn", "text": "*Window*\n2012-03-01T08:00:00Z – 2012-03-01T08:05:00Z"},
                {"type": "mrkdwn", "text": "*Firing since*\n2012-03-01T08:00:00Z"},
            ]},
            {"type": "section", "text": {"type": "mrkdwn", "text":
                "• *ks*: effect `0.42` vs floor `0.1` · q `3e-09` · critical\n"
                "• *psi*: effect `0.31` vs floor `0.2` · warning"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "skewwatch · fingerprint `0123456789abcdef`"}]},
        ],
    }]


def test_slack_payload_respects_block_kit_limits_and_escapes():
    many = tuple({**FINDINGS[0], "test": f"t<{i}>&" + "x" * 80} for i in range(60))
    feature = "f" * 300
    n = Notification(status="resolved", fingerprint="f" * 16, labels={**LABELS, "feature": feature},
                     severity="warning", summary="<!channel> " + "s" * 5000, findings=many, window_start=START,
                     window_end=END, starts_at=START, ends_at=END)
    p = slack_payload(n)
    header = p["blocks"][0]["text"]["text"]
    assert header.startswith("Resolved [warning]: skew on bikeshare/") and len(header) <= 150
    assert len(p["blocks"]) <= 50 and len(p["text"]) <= 3000
    for block in p["blocks"]:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
        for f in block.get("fields", []):
            assert len(f["text"]) <= 2000
    assert "<!channel>" not in json.dumps(p) and "&lt;!channel&gt;" in p["text"]
    assert "t&lt;0&gt;&amp;" in p["blocks"][3]["text"]["text"]
    assert p["blocks"][3]["text"]["text"].splitlines()[-1].startswith("… and ")


def test_pagerduty_trigger_and_resolve_events():
    rec = Recorder(202)
    pd = PagerDutyNotifier("R0UT1NGKEY", rec.client())
    pd.send(note())
    pd.send(note(severity="warning"))
    pd.send(note("resolved"))
    assert {str(r.url) for r in rec.requests} == {PAGERDUTY_EVENTS_URL}
    trigger, warning, resolve = rec.bodies()
    assert trigger == {
        "routing_key": "R0UT1NGKEY",
        "event_action": "trigger",
        "dedup_key": "0123456789abcdef",
        "payload": {
            "summary": SUMMARY,
            "source": "skewwatch:bikeshare",
            "severity": "critical",
            "timestamp": "2012-03-01T08:05:00Z",
            "component": "temp",
            "group": "bikeshare",
            "class": "skew",
            "custom_details": {
                "findings": list(FINDINGS),
                "labels": LABELS,
                "window": {"start": "2012-03-01T08:00:00Z", "end": "2012-03-01T08:05:00Z", "model_version": "v1"},
                "starts_at": "2012-03-01T08:00:00Z",
            },
        },
        "client": "skewwatch",
    }
    assert warning["payload"]["severity"] == "warning"
    assert resolve == {"routing_key": "R0UT1NGKEY", "dedup_key": "0123456789abcdef", "event_action": "resolve"}


def test_pagerduty_summary_is_clipped_to_1024():
    rec = Recorder(202)
    PagerDutyNotifier("k", rec.client(), "https://pd.example/v2/enqueue").send(note(summary="x" * 2000))
    assert len(rec.bodies()[0]["payload"]["summary"]) == 1024


def test_retries_on_5xx_then_succeeds_with_exponential_backoff():
    rec, slept = Recorder(503, 502, 202), []
    PagerDutyNotifier("k", rec.client(), retry=NO_WAIT, sleep=slept.append).send(note())
    assert len(rec.requests) == 3 and slept == [0.5, 1.0]
    assert rec.bodies()[0] == rec.bodies()[2]  # the same event each time


def test_429_honours_retry_after_capped():
    rec, slept = Recorder(429, 429, 200, headers={"Retry-After": "120"}), []
    policy = RetryPolicy(attempts=3, max_delay=7.0, jitter=0.0)
    SlackNotifier("https://hooks.slack.com/services/x", rec.client(), retry=policy, sleep=slept.append).send(note())
    assert slept == [7.0, 7.0]


def test_gives_up_with_delivery_error_naming_sink_and_status_without_leaking_the_url():
    rec, slept = Recorder(500), []
    url = "https://hooks.slack.com/services/T000/B000/VERYSECRET"
    with pytest.raises(DeliveryError) as err:
        SlackNotifier(url, rec.client(), retry=NO_WAIT, sleep=slept.append).send(note())
    assert (err.value.sink, err.value.status) == ("slack", 500)
    assert "gave up after 3 tries" in str(err.value) and "VERYSECRET" not in str(err.value)
    assert len(rec.requests) == 3 and slept == [0.5, 1.0]


def test_connection_errors_are_retried_then_reported():
    boom = httpx.ConnectError("connection refused")
    rec, slept = Recorder(boom, boom, boom), []
    with pytest.raises(DeliveryError) as err:
        WebhookNotifier("http://user:pw@alerts.internal:9000/h", rec.client(), retry=NO_WAIT,
                        sleep=slept.append).send(note())
    assert (err.value.sink, err.value.status) == ("webhook:alerts.internal:9000", None)
    assert "ConnectError" in str(err.value) and len(rec.requests) == 3
    rec2 = Recorder(boom, 200)
    WebhookNotifier("http://alerts.internal/h", rec2.client(), retry=NO_WAIT, sleep=slept.append).send(note())
    assert len(rec2.requests) == 2


def test_client_errors_are_not_retried():
    rec, slept = Recorder(400), []
    with pytest.raises(DeliveryError, match="HTTP 400: invalid_payload") as err:
        WebhookNotifier("https://h.example/x", rec.client(), retry=NO_WAIT, sleep=slept.append).send(note())
    assert err.value.status == 400 and len(rec.requests) == 1 and slept == []


def test_backoff_is_bounded_and_jittered_within_range():
    policy = RetryPolicy(attempts=10, base_delay=1.0, multiplier=3.0, max_delay=20.0, jitter=0.0)
    assert [policy.delay(k) for k in range(1, 6)] == [1.0, 3.0, 9.0, 20.0, 20.0]
    jittered = RetryPolicy(base_delay=1.0, jitter=0.25)
    assert all(0.75 <= jittered.delay(1) <= 1.25 for _ in range(200))
    for bad in (dict(attempts=0), dict(base_delay=-1), dict(multiplier=0.5), dict(jitter=2)):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            RetryPolicy(**bad)


def test_dispatcher_isolates_a_failing_sink_and_counts():
    bad, good, slack = Recorder(400), Recorder(200), Recorder(500)
    notifiers = [WebhookNotifier("https://bad.example/h", bad.client()),
                 WebhookNotifier("https://good.example/h", good.client()),
                 SlackNotifier("https://hooks.slack.com/services/x", slack.client(), retry=NO_WAIT,
                               sleep=lambda s: None)]
    with Dispatcher(notifiers) as d:
        d.send(note())  # never raises
        result = d.dispatch(note("resolved"))
        assert d.names == ("webhook:bad.example", "webhook:good.example", "slack")
        assert d.deliveries == {"webhook:bad.example": 0, "webhook:good.example": 2, "slack": 0}
        assert d.failures == {"webhook:bad.example": 2, "webhook:good.example": 0, "slack": 2}
    assert isinstance(result["webhook:bad.example"], DeliveryError) and result["webhook:good.example"] is None
    assert [b["status"] for b in good.bodies()] == ["firing", "resolved"]


def test_dispatcher_does_not_let_a_stuck_sink_hold_back_the_others():
    good_received = threading.Event()

    def stuck(request):
        # Sequential fan-out would wait here forever: the good sink is only called after us.
        return httpx.Response(200 if good_received.wait(timeout=10) else 599)

    def good(request):
        good_received.set()
        return httpx.Response(200)

    stuck_client = httpx.Client(transport=httpx.MockTransport(stuck))
    good_client = httpx.Client(transport=httpx.MockTransport(good))
    with Dispatcher([WebhookNotifier("https://stuck.example/", stuck_client, retry=RetryPolicy(attempts=1)),
                     WebhookNotifier("https://good.example/", good_client)]) as d:
        result = d.dispatch(note())
    assert result == {"webhook:stuck.example": None, "webhook:good.example": None}


def test_dispatcher_gives_duplicate_names_distinct_counters():
    a, b = Recorder(200), Recorder(200)
    with Dispatcher([WebhookNotifier("https://same.example/a", a.client()),
                     WebhookNotifier("https://same.example/b", b.client())]) as d:
        d.send(note())
        assert d.deliveries == {"webhook:same.example": 1, "webhook:same.example#2": 1}


def test_build_notifiers_from_settings():
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    s = Settings(webhook_urls="https://a.example/h, https://b.example/h", slack_webhook_url="https://hooks.slack.com/x",
                 pagerduty_routing_key="key", pagerduty_url="https://pd.example/v2/enqueue")
    built = build_notifiers(s, client)
    assert [n.name for n in built] == ["webhook:a.example", "webhook:b.example", "slack", "pagerduty"]
    assert built[3].url == "https://pd.example/v2/enqueue" and built[3].routing_key == "key"
    assert build_notifiers(Settings(), client) == []
    with pytest.raises(ConfigError, match="webhook_urls"):
        build_notifiers(Settings(webhook_urls="ftp://x/y"), client)
    with pytest.raises(ConfigError, match="pagerduty_routing_key"):
        PagerDutyNotifier("  ", client)


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        srv = self.server
        with srv.lock:
            srv.calls += 1
            first = srv.calls == 1
            if not first:
                srv.bodies.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(503 if first else 200)  # fail once: the real retry path
        self.end_headers()
        if not first:
            srv.received.set()

    def log_message(self, *args):
        pass


def test_real_http_webhook_delivery_with_one_retry():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.lock, server.calls, server.bodies, server.received = threading.Lock(), 0, [], threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hooks/skewwatch"
        with httpx.Client() as client:
            notifier = WebhookNotifier(url, client, retry=RetryPolicy(attempts=3, base_delay=0.0, jitter=0.0))
            with Dispatcher([notifier]) as d:
                d.send(note())
                assert d.deliveries == {f"webhook:127.0.0.1:{server.server_address[1]}": 1}
        assert server.received.wait(timeout=10)
        (path, ctype, body), = server.bodies
        assert (path, ctype, server.calls) == ("/hooks/skewwatch", "application/json", 2)
        assert body["fingerprint"] == "0123456789abcdef" and body["annotations"]["summary"] == SUMMARY
        assert body["findings"] == list(FINDINGS)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
