"""Delivery that loses nothing: the sender thread against real HTTP receivers on loopback that fail
(500), throttle (429 with Retry-After), hang past the timeout, refuse (400), then recover.

Waits are on conditions (every message delivered), never on time; the one timing check is a lower
bound the sender must respect (it did not retry before Retry-After said it may)."""

from __future__ import annotations

import itertools
import logging
import threading
import time

import pytest

from alerts import AlertEngine, RateLimiter, Sender, build_sender
from monitor.settings import Settings
from monitor.storage import Store
from tests.alerts.contracts import check_pagerduty, check_slack, check_webhook_v4
from tests.alerts.helpers import config, decide, finding, receivers_for, wait_for

KEY = "PDKEY-abcdefabcdefabcdefabcdef0123"
SLACK = "/services/T0001/B0001/SLACKSECRET123"


def alerting(url: str, *, slack_rate: float = 50.0) -> dict:
    return {
        "route": {"receiver": "team", "group_wait": "0s", "for_windows": 1},
        "receivers": [{"name": "team",
                       "webhook_configs": [{"url": url + "/hook"}],
                       "slack_configs": [{"api_url_env": "SLACK", "rate_per_second": slack_rate}],
                       "pagerduty_configs": [{"routing_key_env": "PD", "url": url + "/pd", "rate_per_second": 50}]}],
    }


def settings(**kw) -> Settings:
    base = dict(alert_request_timeout_seconds=0.5, alert_lease_seconds=5.0, alert_poll_seconds=0.05,
                alert_retry_base_seconds=0.05, alert_retry_max_seconds=0.4)
    return Settings(**{**base, **kw})


def notifications(store: Store, engine: AlertEngine, models: int) -> None:
    """One firing alert in each of ``models`` models: one group (and so one message per integration) each."""
    for m in range(models):
        decide(store, engine, 0, [finding("temp", verdict="critical", model=f"m{m}")], model=f"m{m}")


def expected_keys(store: Store, kind: str) -> set[str]:
    return {r.dedup_key.split("|", 1)[1] for r in store.list_outbox() if r.kind == kind}


def delivered(store: Store) -> bool:
    counts = store.outbox_counts()
    return counts["pending"] == 0 and counts["delivered"] > 0


class Script:
    """Answers per path from a script: the first answers as given, then 200 (202 for PagerDuty)."""

    def __init__(self, **scripts):
        self.scripts = {path: list(answers) for path, answers in scripts.items()}
        self.lock = threading.Lock()
        self.hang = threading.Event()

    def __call__(self, req):
        path = "/pd" if req.path == "/pd" else "/slack" if req.path.startswith("/services") else req.path
        with self.lock:
            answers = self.scripts.get(path, [])
            answer = answers.pop(0) if answers else None
        if answer == "hang":
            self.hang.wait(10)
            return 200, {}
        if answer is not None:
            return answer
        return (202, {}) if path == "/pd" else (200, {})


@pytest.fixture
def store(tmp_path):
    with Store(f"sqlite:///{tmp_path / 'delivery.sqlite3'}") as s:
        yield s


def test_receivers_failing_throttling_and_hanging_get_everything_exactly_once_by_key(store, receiver, caplog):
    """Delivery was at most once: a crash or a sink that was down lost the notification."""
    script = Script(**{"/hook": [(500, {})] * 3, "/pd": [(429, {"Retry-After": "1"})], "/slack": ["hang"]})
    receiver.respond = script
    cfg = config(alerting(receiver.url))
    engine = AlertEngine(cfg)
    receivers = receivers_for(cfg, environ={"SLACK": receiver.url + SLACK, "PD": KEY}, timeout=0.5)
    notifications(store, engine, 5)
    caplog.set_level(logging.DEBUG)
    sender = build_sender(store, settings(), engine, receivers).start()
    try:
        wait_for(lambda: engine.flush_due(store, receivers, now_ms=store.now()) == [] and delivered(store),
                 what="every message delivered")
    finally:
        sender.stop()
        script.hang.set()
        receivers.close()
    by_path = {p: [r for r in receiver.received() if r.path.startswith(p)] for p in ("/hook", "/pd", "/services")}
    unique = receiver.unique()
    for kind, path in (("webhook", "/hook"), ("pagerduty", "/pd"), ("slack", "/services")):
        keys = {r.headers["idempotency-key"] for r in by_path[path]}
        assert keys == expected_keys(store, kind) and len(keys) == 5, kind  # none lost, none invented
    assert len(by_path["/hook"]) == 5 + 3  # the three 500s were retried
    assert len(by_path["/pd"]) == 5 + 1
    assert len(by_path["/services"]) == 5 + 1  # the hung request timed out and was sent again
    for r in unique.values():
        {"/hook": check_webhook_v4, "/pd": lambda b: check_pagerduty(b, routing_key=KEY)}.get(
            r.path, check_slack)(r.body)
    throttled, retried = by_path["/pd"][0], by_path["/pd"][1]
    assert throttled.headers["idempotency-key"] == retried.headers["idempotency-key"]
    assert retried.at - throttled.at >= 1.0  # Retry-After: 1 honoured (not the 50 ms backoff)
    assert store.outbox_counts() == {"pending": 0, "delivered": 15, "failed": 0}
    assert sender.counts["team/webhook/0", "retried"] == 3 and sender.counts["team/pagerduty/0", "retried"] == 1
    logged = caplog.text + repr(store.list_outbox()) + repr(receivers)
    assert "SLACKSECRET123" not in logged and KEY not in logged


def test_a_400_is_not_retried_and_does_not_block_what_follows(store, receiver):
    receiver.respond = Script(**{"/pd": [(400, {})]})
    cfg = config(alerting(receiver.url))
    engine = AlertEngine(cfg)
    receivers = receivers_for(cfg, environ={"SLACK": receiver.url + SLACK, "PD": KEY})
    notifications(store, engine, 3)
    sender = Sender(store, receivers, engine=engine, limiter=RateLimiter(clock=itertools.count(0, 60).__next__))
    sender.run_once()
    receivers.close()
    pd = [r for r in store.list_outbox() if r.kind == "pagerduty"]
    assert [r.status for r in pd] == ["failed", "delivered", "delivered"]
    assert pd[0].attempts == 1 and pd[0].last_status == 400
    assert len([r for r in receiver.received() if r.path == "/pd"]) == 3


def test_secrets_are_scrubbed_from_errors_even_when_the_receiver_echoes_them(store, receiver, caplog):
    receiver.respond = lambda req: (503, {})  # the body is "error"; the URL is in httpx's own log line
    cfg = config(alerting(receiver.url))
    engine = AlertEngine(cfg)
    receivers = receivers_for(cfg, environ={"SLACK": receiver.url + SLACK, "PD": KEY})
    notifications(store, engine, 1)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # the demo quiets httpx: a test that ran it before must not hide it
    Sender(store, receivers, engine=engine).run_once()
    receivers.close()
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)  # httpx logged its requests ...
    text = caplog.text + "".join(str(r.last_error) + repr(r.payload) for r in store.list_outbox())
    assert "SLACKSECRET123" not in text and KEY not in text  # ... without the secrets
    assert "***" in caplog.text


def test_the_rate_limit_spaces_messages_to_one_slack_webhook(store, receiver):
    """Slack allows about one message a second per webhook; on an injected clock, exactly."""
    cfg = config(alerting(receiver.url, slack_rate=1.0))
    engine = AlertEngine(cfg)
    receivers = receivers_for(cfg, environ={"SLACK": receiver.url + SLACK, "PD": KEY})
    notifications(store, engine, 3)
    now = [store.now()]
    sender = Sender(store, receivers, engine=engine, clock=lambda: now[0])

    def slack_sent():
        return len([r for r in receiver.received() if r.path == SLACK])

    sender.run_once()
    assert slack_sent() == 1
    now[0] += 500
    sender.run_once()
    assert slack_sent() == 1
    now[0] += 500
    sender.run_once()
    assert slack_sent() == 2
    now[0] += 1000
    sender.run_once()
    assert slack_sent() == 3
    receivers.close()


def test_two_senders_never_deliver_the_same_message_at_once_and_keep_each_destinations_order(store_url, receiver):
    """Two collector processes, two senders, one store (SQLite and PostgreSQL): the lease decides."""
    url = store_url
    active, peak, lock = [0], [0], threading.Lock()

    def slow(req):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.01)  # widen the window in which a second sender could send the same target
        with lock:
            active[0] -= 1
        return (202, {}) if req.path == "/pd" else (200, {})

    receiver.respond = slow
    cfg = config({"route": {"receiver": "team", "group_wait": "0s", "for_windows": 1},
                  "receivers": [{"name": "team", "webhook_configs": [{"url": receiver.url + "/hook"}]}]})
    with Store(url) as a, Store(url) as b:
        engine = AlertEngine(cfg)
        notifications(a, engine, 12)
        ra, rb = receivers_for(cfg), receivers_for(cfg)
        one = build_sender(a, settings(), engine, ra).start()
        two = build_sender(b, settings(), engine, rb).start()
        try:
            wait_for(lambda: delivered(a) and a.outbox_counts()["delivered"] == 12, what="12 deliveries")
        finally:
            one.stop(), two.stop(), ra.close(), rb.close()
        keys = [r.headers["idempotency-key"] for r in receiver.received()]
        assert len(keys) == len(set(keys)) == 12  # nobody failed, so nothing was sent twice
        assert peak[0] == 1  # one destination: one message in flight at a time, across both senders
        order = [r.dedup_key.split("|", 1)[1] for r in a.list_outbox()]
        assert keys == order  # in outbox order


def test_a_retry_after_of_zero_falls_back_to_backoff_and_one_pass_sends_each_message_once(store, receiver):
    receiver.respond = lambda req: (503, {"Retry-After": "0"})
    cfg = config(alerting(receiver.url))
    engine = AlertEngine(cfg)
    receivers = receivers_for(cfg, environ={"SLACK": receiver.url + SLACK, "PD": KEY})
    notifications(store, engine, 1)
    sender = Sender(store, receivers, engine=engine, limiter=RateLimiter(clock=itertools.count(0, 60).__next__))
    assert sender.run_once() == 3  # returns: nothing is retried in a tight loop
    receivers.close()
    assert len(receiver.received()) == 3
    assert all(r.next_attempt_ms > store.now() - 1 and r.attempts == 1 for r in store.list_outbox())
