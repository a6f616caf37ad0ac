"""The monitor as a real uvicorn server on loopback: health, readiness with and without Kafka."""

from __future__ import annotations

import httpx

from monitor.api.server import dashboard_url
from skewwatch.broker import EmbeddedBroker, free_port
from tests.monitor.api.conftest import make_settings
from tests.monitor.api.live import live_monitor


def test_readyz_needs_the_store_and_kafka(populated, tmp_path, trained_models_dir):
    store, _ = populated
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as broker:
        settings = make_settings(tmp_path, trained_models_dir, monitor_check_kafka=True,
                                 kafka_bootstrap_servers=broker.bootstrap_servers)
        with live_monitor(settings, store) as url:
            r = httpx.get(f"{url}/readyz", timeout=20)
            assert r.status_code == 200, r.text
            assert r.json()["checks"]["kafka"]["ok"] is True and r.json()["checks"]["store"]["ok"] is True
            assert httpx.get(f"{url}/healthz", timeout=10).json()["status"] == "ok"
            assert "skewwatch_finding_effect{" in httpx.get(f"{url}/metrics", timeout=10).text
    nobody = make_settings(tmp_path, trained_models_dir, monitor_check_kafka=True,
                           kafka_bootstrap_servers=f"127.0.0.1:{free_port('127.0.0.1')}")
    with live_monitor(nobody, store) as url:
        r = httpx.get(f"{url}/readyz", timeout=20)
        assert r.status_code == 503 and r.json()["checks"]["kafka"]["ok"] is False
        assert r.json()["checks"]["store"]["ok"] is True
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200  # alive, just not ready


def test_the_dashboard_url(tmp_path, trained_models_dir):
    assert dashboard_url(make_settings(tmp_path, trained_models_dir), 8123) == "http://127.0.0.1:8123/ui/"
    public = make_settings(tmp_path, trained_models_dir, monitor_public_url="https://skew.example/")
    assert dashboard_url(public, 8123) == "https://skew.example/ui/"
