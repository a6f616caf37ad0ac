"""Grouping, timers, silences and acknowledgements, on an injected wall clock (exact, no sleeping),
through a real store and real HTTP receivers (webhook, Slack, PagerDuty) on loopback."""

from __future__ import annotations

import pytest

from alerts import fingerprint
from monitor.errors import ConfigError, NotFoundError
from tests.alerts.contracts import check_pagerduty, check_slack, check_webhook_v4
from tests.alerts.helpers import MIN, Harness, finding, healthy

KEY = "R0UTINGKEY0123456789abcdefABCDEF"
SLACK_PATH = "/slack/services/T000/B000/XXXXSECRETXXXX"


def features(n: int) -> list[str]:
    return [f"f{i:02d}" for i in range(n)]


@pytest.fixture
def h(sqlite_store, clock, receiver):
    alerting = {
        "route": {"receiver": "team", "group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"},
        "receivers": [{"name": "team",
                       "webhook_configs": [{"url": receiver.url + "/hook"}],
                       "slack_configs": [{"api_url_env": "SLACK_URL"}],
                       "pagerduty_configs": [{"routing_key_env": "PD_KEY", "url": receiver.url + "/pd"}]}],
    }
    harness = Harness(sqlite_store, clock, receiver, alerting,
                      environ={"SLACK_URL": receiver.url + SLACK_PATH, "PD_KEY": KEY})
    yield harness
    harness.close()


def bodies(h, path):
    out = h.messages(path)
    check = {"/hook": check_webhook_v4, SLACK_PATH: check_slack, "/pd": lambda e: check_pagerduty(e, routing_key=KEY)}
    for b in out:
        check[path](b)
    return out


def test_group_wait_gathers_alerts_of_several_windows_into_one_message(h, clock):
    h.window(0, [finding("temp", verdict="critical")] + healthy("hum"), version="v1")
    clock.advance(10_000)
    h.window(0, [finding("atemp", verdict="critical")] + healthy("hum"), version="v2")
    clock.advance(10_000)
    h.window(0, [finding("hr", verdict="critical", mode="drift")], segment="eu")
    assert h.sender.run_once() == 0  # 20 s: still inside group_wait
    h.settle(10_000)  # 30 s after the group started
    [msg] = bodies(h, "/hook")
    assert sorted((a["labels"]["feature"], a["labels"]["version"]) for a in msg["alerts"]) == [
        ("atemp", "v2"), ("hr", "v1"), ("temp", "v1")]
    assert msg["groupLabels"] == {"model": "bikeshare"}
    assert len(bodies(h, SLACK_PATH)) == 1
    assert sorted(e["dedup_key"] for e in bodies(h, "/pd")) == sorted(
        a["fingerprint"] for a in msg["alerts"])  # PagerDuty: one alert each, dedup_key = fingerprint


def test_changes_wait_for_group_interval_and_an_unchanged_group_repeats_after_repeat_interval(h, clock, sqlite_store):
    h.window(0, [finding("temp", verdict="critical")])
    h.settle(30_000)
    assert len(bodies(h, "/hook")) == 1
    clock.advance(60_000)
    h.window(1, [finding("temp", verdict="critical"), finding("hum", verdict="critical")])
    assert h.sender.run_once() == 0  # 1 min after the first message: the change waits for group_interval
    [group] = sqlite_store.list_groups()
    assert group.next_flush_ms == group.last_flush_ms + 5 * MIN
    h.settle(4 * MIN)
    second = bodies(h, "/hook")[-1]
    assert len(bodies(h, "/hook")) == 2 and len(second["alerts"]) == 2
    assert [e["dedup_key"] for e in bodies(h, "/pd")][-1] == h.alert("hum").fingerprint  # only the new one
    h.settle(4 * 60 * MIN - MIN)
    assert len(bodies(h, "/hook")) == 2  # not yet 4 h since the last message
    h.settle(MIN)
    assert len(bodies(h, "/hook")) == 3 and bodies(h, "/hook")[-1]["alerts"] == second["alerts"]
    assert len(bodies(h, "/pd")) == 2  # a repeat is not a new page


def test_a_storm_of_30_drifting_features_sends_one_message_then_one_resolve(h):
    """A bad deploy that moved 30 features sent 30 messages."""
    names = features(30)
    storm = [finding(f, "mean_shift", "critical", effect=0.5 + i * 0.1, mode="drift") for i, f in enumerate(names)]
    h.window(0, storm)
    h.settle()
    [msg] = bodies(h, "/hook")
    [alert] = msg["alerts"]
    assert alert["labels"]["kind"] == "model" and "feature" not in alert["labels"]
    model_wide = h.alert("", mode="drift", kind="model")
    assert [f["feature"] for f in model_wide.findings] == list(reversed(names))  # ranked by effect
    assert all(h.alert(f, mode="drift").inhibited_by == model_wide.fingerprint for f in names)
    [slack] = bodies(h, SLACK_PATH)
    text = "\n".join(b["text"]["text"] for b in slack["blocks"] if b["type"] == "section")
    assert "f29" in text and "vs floor" in text and "Drill down" in text
    assert slack["blocks"][0]["text"]["text"].startswith("[FIRING:1] bikeshare drift: all features")
    [page] = bodies(h, "/pd")
    assert page["event_action"] == "trigger" and page["dedup_key"] == model_wide.fingerprint

    for i in (1, 2):
        h.window(i, healthy(*names, mode="drift"))
    h.settle()
    assert [m["status"] for m in bodies(h, "/hook")] == ["firing", "resolved"]
    assert [m["alerts"][0]["fingerprint"] for m in bodies(h, "/hook")] == [model_wide.fingerprint] * 2
    assert [(e["event_action"], e["dedup_key"]) for e in bodies(h, "/pd")] == [
        ("trigger", model_wide.fingerprint), ("resolve", model_wide.fingerprint)]
    assert len(bodies(h, SLACK_PATH)) == 2


def test_features_still_firing_page_once_the_model_wide_alert_resolves(h):
    names = features(10)
    h.window(0, [finding(f, verdict="critical", mode="drift") for f in names])
    h.settle()
    h.window(1, [finding("f00", verdict="critical", mode="drift")] + healthy(*names[1:], mode="drift"))
    h.window(2, [finding("f00", verdict="critical", mode="drift")] + healthy(*names[1:], mode="drift"))
    h.settle()
    last = bodies(h, "/hook")[-1]
    assert sorted((a["status"], a["labels"].get("feature", "*")) for a in last["alerts"]) == [
        ("firing", "f00"), ("resolved", "*")]


def test_a_silence_created_through_the_store_suppresses_then_expires(h, sqlite_store, clock):
    silence = sqlite_store.create_silence(["feature=temp", "mode=~skew|drift"], ends_ms=clock() + 60 * MIN,
                                          created_by="ana", comment="known: client fix rolling out")
    h.window(0, [finding("temp", verdict="critical")] + healthy("hum"))
    h.settle()
    assert bodies(h, "/hook") == [] and bodies(h, "/pd") == []
    assert h.alert("temp").state == "firing" and h.alert("temp").silenced_by == (silence.id,)
    assert [s.id for s in sqlite_store.list_silences(active_at_ms=clock())] == [silence.id]
    sqlite_store.expire_silence(silence.id, now_ms=clock())
    assert sqlite_store.list_silences(active_at_ms=clock()) == []
    h.sender.run_once()  # expiring schedules the groups at once
    [msg] = bodies(h, "/hook")
    assert msg["alerts"][0]["labels"]["feature"] == "temp"
    assert [e["event_action"] for e in bodies(h, "/pd")] == ["trigger"]


def test_a_silence_that_runs_out_on_its_own_lets_the_alert_through_at_its_end(h, sqlite_store, clock):
    sqlite_store.create_silence([{"name": "model", "op": "=", "value": "bikeshare"}], ends_ms=clock() + 20 * MIN,
                                created_by="ana", comment="maintenance")
    h.window(0, [finding("temp", verdict="critical")])
    h.settle()
    assert bodies(h, "/hook") == []
    [group] = sqlite_store.list_groups()
    assert group.next_flush_ms == clock() - 5 * MIN + 20 * MIN  # looked at again exactly when the silence ends
    h.settle(15 * MIN)
    assert len(bodies(h, "/hook")) == 1


def test_silences_are_validated(sqlite_store, clock):
    with pytest.raises(ConfigError, match="matchers"):
        sqlite_store.create_silence([], ends_ms=clock() + MIN, created_by="a", comment="")
    with pytest.raises(ConfigError, match="every alert"):
        sqlite_store.create_silence(["feature=~.*"], ends_ms=clock() + MIN, created_by="a", comment="")
    with pytest.raises(ConfigError, match="unknown label"):
        sqlite_store.create_silence(["colour=red"], ends_ms=clock() + MIN, created_by="a", comment="")
    with pytest.raises(ConfigError, match="ends_ms"):
        sqlite_store.create_silence(["feature=temp"], ends_ms=clock() - 1, created_by="a", comment="")
    with pytest.raises(NotFoundError):
        sqlite_store.expire_silence("nope", now_ms=clock())


def test_an_acknowledgement_is_forwarded_to_pagerduty_and_stops_the_repeats(h, sqlite_store, clock):
    h.window(0, [finding("temp", verdict="critical")])
    h.settle()
    fp = h.alert("temp").fingerprint
    acked = sqlite_store.acknowledge_alert(fp, by="ana", until_ms=clock() + 8 * 60 * MIN, comment="on it")
    assert acked.acknowledged and acked.acknowledged_by == "ana"
    assert [a.fingerprint for a in sqlite_store.list_alerts(state="acknowledged")] == [fp]
    h.sender.run_once()  # forwarded at once, not at the next group interval
    assert [(e["event_action"], e["dedup_key"]) for e in bodies(h, "/pd")] == [("trigger", fp), ("acknowledge", fp)]
    h.settle(4 * 60 * MIN)
    assert len(bodies(h, "/hook")) == 1  # acknowledged: no 4-hour repeat
    h.settle(4 * 60 * MIN)  # the acknowledgement ran out while still firing: heard again
    assert len(bodies(h, "/hook")) == 2
    assert [e["event_action"] for e in bodies(h, "/pd")] == ["trigger", "acknowledge", "trigger"]


def test_a_hand_resolve_is_delivered_and_a_new_alerting_window_opens_a_new_incident(h, sqlite_store):
    h.window(0, [finding("temp", verdict="critical")])
    h.settle()
    fp = h.alert("temp").fingerprint
    assert sqlite_store.resolve_alert(fp, by="ana").state == "resolved"
    h.sender.run_once()
    assert [e["event_action"] for e in bodies(h, "/pd")] == ["trigger", "resolve"]
    assert [m["status"] for m in bodies(h, "/hook")] == ["firing", "resolved"]
    h.window(1, [finding("temp", verdict="critical")])
    h.settle()
    assert h.alert("temp").incident == 2 and len(bodies(h, "/pd")) == 3


def test_acknowledging_needs_an_alert_that_exists_and_is_not_resolved(h, sqlite_store, clock):
    with pytest.raises(NotFoundError):
        sqlite_store.acknowledge_alert("0" * 16, by="ana", until_ms=clock() + MIN)
    h.window(0, [finding("temp", verdict="critical")])
    fp = h.alert("temp").fingerprint
    with pytest.raises(ConfigError, match="until_ms"):
        sqlite_store.acknowledge_alert(fp, by="ana", until_ms=clock())
    sqlite_store.resolve_alert(fp, by="ana")
    with pytest.raises(ConfigError, match="resolved"):
        sqlite_store.acknowledge_alert(fp, by="ana", until_ms=clock() + MIN)


def test_routes_send_alerts_to_their_receivers_and_continue_sends_to_both(sqlite_store, clock, receiver):
    alerting = {
        "route": {"receiver": "team", "for_windows": 1, "routes": [
            {"matchers": ["feature=temp"], "receiver": "oncall", "continue": True},
            {"matchers": ["severity=critical"], "receiver": "audit", "group_by": ["..."]}]},
        "receivers": [{"name": n, "webhook_configs": [{"url": f"{receiver.url}/{n}"}]} for n in ("team", "oncall", "audit")],
    }
    h = Harness(sqlite_store, clock, receiver, alerting)
    h.window(0, [finding("temp", verdict="critical"), finding("hum", verdict="critical"),
                 finding("hr", verdict="warning")])
    h.settle()
    got = {n: sorted(a["labels"]["feature"] for m in h.messages(f"/{n}") for a in m["alerts"])
           for n in ("team", "oncall", "audit")}
    assert got == {"team": ["hr"], "oncall": ["temp"], "audit": ["hum", "temp"]}
    assert len(h.messages("/audit")) == 2  # group_by "...": one group per alert
    h.close()


def test_an_alert_fingerprint_is_stable():
    assert fingerprint("bikeshare", "v1", "", "feature", "temp", "skew") == "4e9e770275cf09bd"
