"""The alerting section of the monitor YAML: defaults, validation with key paths, secrets, routing."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts import build_receivers, match_routes
from alerts.routing import group_of
from monitor.alerting_config import AlertingConfig, Matcher, parse_duration_ms
from monitor.config import load_monitor_config, parse_monitor_config
from monitor.errors import ConfigError
from monitor.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / "alerts" / "alerting.example.yaml"


def error(data: dict) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        parse_monitor_config({"alerting": data})
    return exc.value


def test_the_defaults_are_alertmanagers_timers_and_page_critical_at_once():
    root = AlertingConfig().route_tree()
    assert (root.group_wait_ms, root.group_interval_ms, root.repeat_interval_ms) == (30_000, 300_000, 14_400_000)
    assert (root.group_by, root.receiver, root.resolve_after, root.resolve_below, root.children) == (
        ("model",), "default", 2, 0.8, ())
    assert root.for_windows == {"warning": 2, "critical": 1}


def test_children_inherit_and_for_windows_is_one_number_or_one_per_severity():
    root = AlertingConfig.model_validate({"route": {"group_wait": "10s", "routes": [
        {"matchers": ["model=a"], "for_windows": 3}, {"matchers": ["model=b"], "for_windows": {"warning": 4}}]}}
    ).route_tree()
    a, b = root.children
    assert a.for_windows == {"warning": 3, "critical": 3} and a.group_wait_ms == 10_000
    assert b.for_windows == {"warning": 4, "critical": 1}


def test_the_example_file_loads_and_routes():
    cfg = load_monitor_config(EXAMPLE).alerting
    root = cfg.route_tree()
    labels = {"model": "bikeshare", "severity": "critical", "kind": "feature", "feature": "temp"}
    assert [r.receiver for r in match_routes(root, labels)] == ["oncall", "team-slack"]  # continue: true
    assert [r.receiver for r in match_routes(root, {**labels, "severity": "warning"})] == ["team-slack"]
    assert [r.receiver for r in match_routes(root, {"model": "other", "kind": "feature"})] == ["team-slack"]  # root
    out = match_routes(root, {"model": "other", "kind": "output", "mode": "drift"})
    assert [r.receiver for r in out] == ["platform"]
    assert group_of(out[0], {"model": "other", "mode": "drift", "feature": "x"})[:2] == (
        {"model": "other", "mode": "drift"}, 'root.2:{mode="drift",model="other"}')


@pytest.mark.parametrize("text, ms", [("30s", 30_000), ("5m", 300_000), ("4h", 14_400_000), ("1h30m", 5_400_000),
                                      ("500ms", 500), ("1d", 86_400_000), ("0", 0), (2.5, 2500)])
def test_durations(text, ms):
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("data, field", [
    ({"route": {"group_wait": "soon"}}, "alerting.route.group_wait"),
    ({"route": {"routes": [{"matchers": ["sev=critical"]}]}}, "alerting.route.routes.0.matchers.0"),
    ({"route": {"routes": [{"matchers": ["feature=~(unclosed"]}]}}, "alerting.route.routes.0.matchers.0"),
    ({"route": {"group_by": ["colour"]}}, "alerting.route"),
    ({"route": {"for_windows": 0}}, "alerting.route.for_windows.warning"),
    ({"route": {"for_windows": {"page": 1}}}, "alerting.route.for_windows.page"),
    ({"route": {"resolve_below": 1.5}}, "alerting.route.resolve_below"),
    ({"route": {"recever": "x"}}, "alerting.route.recever"),
    ({"receivers": [{"name": "s", "slack_configs": [{"api_url": "https://hooks.slack.com/x"}]}]},
     "alerting.receivers.0.slack_configs.0.api_url"),  # a secret is never written inline
    ({"receivers": [{"name": "s", "slack_configs": [{}]}]}, "alerting.receivers.0.slack_configs.0"),
    ({"receivers": [{"name": "p", "pagerduty_configs": [{"routing_key_env": "A", "routing_key_file": "/k"}]}]},
     "alerting.receivers.0.pagerduty_configs.0"),
    ({"receivers": [{"name": "a", "alertmanager_configs": [{"url": "ftp://x"}]}]},
     "alerting.receivers.0.alertmanager_configs.0.url"),
])
def test_mistakes_name_their_key_path(data, field):
    assert error(data).field == field


def test_references_are_checked_and_the_message_names_the_path():
    e = error({"route": {"routes": [{"matchers": ["model=a"]}, {"receiver": "pager"}]}})
    assert "route.routes.1.receiver: unknown receiver 'pager'" in str(e)
    e = error({"receivers": [{"name": "a"}, {"name": "a"}]})
    assert "receivers.1.name" in str(e)
    e = error({"route": {"routes": [{"name": "x"}, {"name": "x"}]}})
    assert "route.routes.1.name" in str(e)


def test_matchers_follow_alertmanager():
    labels = {"feature": "temp", "segment": ""}
    assert Matcher.model_validate("feature=temp").matches(labels)
    assert Matcher.model_validate("feature!=hum").matches(labels)
    assert Matcher.model_validate("feature=~te.*").matches(labels)
    assert not Matcher.model_validate("feature=~te").matches(labels)  # anchored, as Alertmanager
    assert Matcher.model_validate("feature!~h.*").matches(labels)
    assert Matcher.model_validate('segment=""').matches(labels) and Matcher.model_validate("version=").matches(labels)


def test_receivers_read_secrets_from_files_and_the_environment(tmp_path):
    key = tmp_path / "pd"
    key.write_text("ROUTINGKEY-123\n")
    cfg = AlertingConfig.model_validate({"receivers": [
        {"name": "oncall", "pagerduty_configs": [{"routing_key_file": str(key)}],
         "slack_configs": [{"api_url_env": "SLACK_URL"}]}]})
    receivers = build_receivers(Settings(), cfg, environ={"SLACK_URL": "https://hooks.slack.example/T/B/SECRET"})
    try:
        kinds = [i.kind for i in receivers.get("oncall").integrations]
        assert kinds == ["slack", "pagerduty"]
        assert "ROUTINGKEY-123" not in repr(receivers.by_name) and "SECRET" not in repr(receivers.by_name)
        assert receivers.get("default").integrations == ()  # no sinks in the settings: a receiver with none
    finally:
        receivers.close()


def test_a_missing_secret_is_an_error_naming_where_it_should_come_from_but_not_the_value(tmp_path):
    cfg = AlertingConfig.model_validate({"receivers": [{"name": "s", "slack_configs": [{"api_url_env": "NOPE"}]}]})
    with pytest.raises(ConfigError) as exc:
        build_receivers(Settings(), cfg, environ={})
    assert exc.value.field == "alerting.receivers.0.slack_configs.0.api_url_env"
    bad = tmp_path / "url"
    bad.write_text("not-a-url-but-a-secret-token")
    cfg = AlertingConfig.model_validate({"receivers": [{"name": "w", "webhook_configs": [{"url_file": str(bad)}]}]})
    with pytest.raises(ConfigError) as exc:
        build_receivers(Settings(), cfg, environ={})
    assert exc.value.field == "alerting.receivers.0.webhook_configs.0.url"
    assert "secret-token" not in str(exc.value)


def test_the_default_receiver_comes_from_the_settings():
    s = Settings(webhook_urls="http://a.example/h,http://b.example/h", slack_webhook_url="https://hooks.example/S",
                 pagerduty_routing_key="KEY", pagerduty_url="http://pd.example/v2/enqueue")
    assert "KEY" not in repr(s) and "hooks.example" not in repr(s)
    receivers = build_receivers(s, AlertingConfig(), environ={})
    try:
        assert [i.name for i in receivers.get("default").integrations] == [
            "default/webhook/0", "default/webhook/1", "default/slack/0", "default/pagerduty/0"]
        assert receivers.get("default").integrations[3].url == "http://pd.example/v2/enqueue"
    finally:
        receivers.close()
