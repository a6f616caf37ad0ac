"""The bodies each receiver gets, checked against the documented formats (tests/alerts/contracts.py),
for ordinary and hostile inputs: 45 alerts, 300-character names, markup in values, 200 features."""

from __future__ import annotations

import pytest

from alerts.formats import alert_json, pagerduty_events, postable_alerts, slack_message, webhook_message
from alerts.grouping import plan_flush
from alerts.lifecycle import WindowInfo, evaluate
from alerts.receivers import PagerDutyIntegration, RenderContext, Secret
from monitor.alerting_config import AlertingConfig
from monitor.storage.alerting import GroupRow
from tests.alerts.contracts import check_pagerduty, check_postable, check_slack, check_webhook_v4
from tests.alerts.helpers import MIN, T0, WALL0, WINDOW, finding

CFG = AlertingConfig.model_validate({"route": {"for_windows": 1}})
TREE = CFG.route_tree()


def firing(findings, *, now=WALL0):
    w = WindowInfo("bikeshare", "20261126T050102Z", "", T0, T0 + WINDOW, 7)
    ev = evaluate({}, w, [(f, "features") for f in findings], config=CFG, tree=TREE, now_ms=now,
                  external_url="https://monitor.example")
    return [a for a in ev.rows if a.state == "firing"]


def group(notified=None):
    return GroupRow(id=1, route="root", receiver="team", key_hash="ab" * 16, group_key='root:{model="bikeshare"}',
                    group_labels={"model": "bikeshare"}, next_flush_ms=WALL0, last_flush_ms=None,
                    last_notified_ms=None, notified=notified or {}, seq=0)


def plan_for(alerts, g=None, now=WALL0, resend_ms=None):
    return plan_flush(g or group(), alerts, route=TREE, silences=(), now_ms=now, resend_ms=resend_ms)


@pytest.mark.parametrize("n, name_length", [(1, 4), (12, 30), (45, 300)])
def test_slack_stays_within_block_kit_limits(n, name_length):
    alerts = []
    for i in range(n):
        name = (f"feature_{i}_" + "x" * name_length)[:name_length]
        alerts += firing([finding(name, t, "critical", effect=1.0 + i) for t in ("mean_shift", "ks", "psi", "wasserstein",
                                                                                    "jsd", "linf", "variance_ratio")])
    body = slack_message(plan_for(alerts), group(), external_url="https://monitor.example", max_alerts=40)
    check_slack(body)
    text = "\n".join(b["text"]["text"] for b in body["blocks"] if b["type"] == "section")
    assert "vs floor" in text and "<https://monitor.example/ui/#window=" in text  # the dashboard, at the window
    if n > 40:
        assert any("5 more firing" in e["text"] for b in body["blocks"] if b["type"] == "context" for e in b["elements"])


def test_slack_lists_alerts_ranked_by_effect_and_escapes_markup():
    alerts = firing([finding("hum", verdict="warning"), finding("a<b>&c", verdict="critical", effect=9.0),
                     finding("temp", verdict="critical", effect=4.0)])
    body = slack_message(plan_for(alerts), group(), external_url="https://m.example")
    check_slack(body)
    sections = [b["text"]["text"] for b in body["blocks"][2:] if b["type"] == "section"]
    assert ["a&lt;b&gt;&amp;c" in sections[0], "*temp*" in sections[1], "*hum*" in sections[2]] == [True] * 3
    assert "a<b>" not in "".join(sections)
    assert "effect *9* vs floor 0.2 (45x)" in sections[0]


def test_a_model_wide_alert_lists_its_features_by_effect_within_one_section():
    w = WindowInfo("bikeshare", "v1", "", T0, T0 + WINDOW, 1)
    findings = [(finding(f"feature_{i:03d}_" + "y" * 80, verdict="critical", effect=1 + i / 10), "features")
                for i in range(200)]
    ev = evaluate({}, w, findings, config=CFG, tree=TREE, now_ms=WALL0, external_url="https://m.example")
    model = [a for a in ev.rows if a.kind == "model"]
    assert len(model) == 1 and len(model[0].findings) == 200
    plan = plan_for(model)
    body = slack_message(plan, group(), external_url="https://m.example")
    check_slack(body)
    section = body["blocks"][2]["text"]["text"]
    assert section.index("feature_199") < section.index("feature_198")
    assert "more feature(s) in the drill-down" in section
    [event] = pagerduty_events(plan)
    check_pagerduty({"routing_key": "k", **event})
    assert len(event["payload"]["custom_details"]["findings"]) == 10


def test_pagerduty_events_carry_the_documented_fields():
    alerts = firing([finding("temp", verdict="critical", effect=4.0)])
    alerts = [a.__class__(**{**{k: getattr(a, k) for k in a.__dataclass_fields__},
                             "annotations": {**a.annotations, "summary": "s" * 5000}}) for a in alerts]
    plan = plan_for(alerts)
    integration = PagerDutyIntegration("team/pagerduty/0", Secret("KEY"), None, url="https://pd.example")
    [msg] = integration.render(plan, group(), RenderContext("team", "https://m.example", 1))
    assert "KEY" not in repr(msg)  # the routing key is added only when sending
    event = {"routing_key": "KEY", **msg.payload}
    check_pagerduty(event)
    assert event["dedup_key"] == alerts[0].fingerprint
    assert len(event["payload"]["summary"]) == 1024
    assert event["payload"]["severity"] == "critical" and event["payload"]["component"] == "temp"
    assert event["links"][0]["href"] == f"https://monitor.example/ui/#window={alerts[0].window_id}"


def test_webhook_v4_has_exactly_alertmanagers_keys_and_truncates_like_it():
    alerts = firing([finding(f"f{i}", verdict="critical") for i in range(3)])
    body = webhook_message(plan_for(alerts), group(), receiver="team", external_url="https://m.example", max_alerts=2)
    check_webhook_v4(body)
    assert body["truncatedAlerts"] == 1 and len(body["alerts"]) == 2
    assert body["commonLabels"]["model"] == "bikeshare" and "feature" not in body["commonLabels"]
    assert alert_json(alerts[0], firing=True)["endsAt"] == "0001-01-01T00:00:00Z"


def test_postable_alerts_end_four_resend_intervals_ahead_and_resolved_ones_now():
    alerts = firing([finding("temp", verdict="critical")])
    plan = plan_for(alerts, resend_ms=MIN)
    posted = postable_alerts(plan, resend_ms=MIN)
    check_postable(posted)
    from monitor.timeutil import parse_instant

    assert parse_instant(posted[0]["endsAt"]) == WALL0 + 4 * MIN
    resolved = [a.__class__(**{**{k: getattr(a, k) for k in a.__dataclass_fields__}, "state": "resolved",
                               "ends_ms": WALL0 + 10 * MIN}) for a in alerts]
    g = group({alerts[0].fingerprint: {"severity": "critical", "ack": False}})
    [gone] = postable_alerts(plan_for(resolved, g), resend_ms=MIN)
    assert parse_instant(gone["endsAt"]) == WALL0  # clamped to now: Alertmanager treats it as resolved
