from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.settings import load_settings


def test_environment_then_overrides(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("SKEWWATCH_WINDOW_SECONDS", "60")
    monkeypatch.setenv("SKEWWATCH_WEBHOOK_URLS", "http://a/x, http://b/y")
    s = load_settings(window_seconds=None, state_dir=Path("/tmp/s"))
    assert s.kafka_bootstrap_servers == "kafka:9092"
    assert s.window_seconds == 60
    assert s.webhook_urls == ["http://a/x", "http://b/y"]
    assert s.db_path == Path("/tmp/s/skewwatch.sqlite3")
    assert load_settings(window_seconds=5).window_seconds == 5


@pytest.mark.parametrize("field, value", [("window_seconds", 0), ("log_sample_rate", 1.5), ("serve_port", 70000), ("log_level", "LOUD")])
def test_invalid_values_raise_config_error_naming_the_field(field, value):
    with pytest.raises(ConfigError) as err:
        load_settings(**{field: value})
    assert err.value.field == field


def test_unknown_setting_is_rejected():
    with pytest.raises(ConfigError):
        load_settings(windw_seconds=5)
