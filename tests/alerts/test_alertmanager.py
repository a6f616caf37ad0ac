"""A real Prometheus Alertmanager (Debian's ``prometheus-alertmanager``, started here on loopback with a
config this test writes) receives skewwatch's alerts on ``/api/v2/alerts``, groups them as configured
and delivers them onward through its own webhook to a test receiver; then their resolution.

Alertmanager's own webhook bodies must pass the same version-4 contract our generic webhook is
held to: the contract is Alertmanager's, not ours."""

from __future__ import annotations

import shutil
import socket
import subprocess

import httpx
import pytest

from alerts import AlertEngine, build_sender
from monitor.settings import Settings
from monitor.storage import Store
from tests.alerts.contracts import check_webhook_v4
from tests.alerts.helpers import config, decide, finding, healthy, receivers_for, wait_for

BINARY = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def alertmanager(tmp_path, receiver):
    if shutil.which(BINARY) is None:
        pytest.fail("Prometheus Alertmanager is not installed: apt-get install -y prometheus-alertmanager (.ci/run does)")
    port = free_port()
    (tmp_path / "am.yml").write_text(f"""
route:
  receiver: hook
  group_by: [model]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {receiver.url}/from-alertmanager
        send_resolved: true
""")
    proc = subprocess.Popen([BINARY, f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"

    def ready():
        if proc.poll() is not None:
            raise AssertionError(f"alertmanager exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            return httpx.get(url + "/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, timeout=30, what="alertmanager ready")
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_alertmanager_receives_groups_and_resolves_skewwatch_alerts(tmp_path, receiver, alertmanager):
    cfg = config({"route": {"receiver": "am", "group_wait": "0s", "group_interval": "1s", "for_windows": 1},
                  "receivers": [{"name": "am", "alertmanager_configs": [{"url": alertmanager, "resend_interval": "1s"}]}]})
    engine = AlertEngine(cfg)
    receivers = receivers_for(cfg)
    settings = Settings(alert_request_timeout_seconds=2, alert_lease_seconds=5, alert_poll_seconds=0.05)
    with Store(f"sqlite:///{tmp_path / 'am.sqlite3'}") as store:
        sender = build_sender(store, settings, engine, receivers).start()
        try:
            decide(store, engine, 0, [finding(f, verdict="critical") for f in ("temp", "atemp", "hum")])
            decide(store, engine, 0, [finding("hr", verdict="critical", model="taxi")], model="taxi")

            def groups_from_alertmanager(status):
                out = {}
                for r in receiver.received():
                    if r.path == "/from-alertmanager" and r.body["status"] == status:
                        out[r.body["groupLabels"]["model"]] = r.body
                return out

            def listed(groups):
                return {m: sorted(a["labels"]["feature"] for a in b["alerts"]) for m, b in groups.items()}

            want = {"bikeshare": ["atemp", "hum", "temp"], "taxi": ["hr"]}
            firing = wait_for(lambda: (g := groups_from_alertmanager("firing")) and listed(g) == want and g,
                              what="both groups, each with its alerts")
            for r in receiver.received():  # grouped by model as configured: no notification mixes models
                assert {a["labels"]["model"] for a in r.body["alerts"]} == {r.body["groupLabels"]["model"]}
            for body in firing.values():
                check_webhook_v4(body)  # Alertmanager's real output meets the contract our webhook meets
            active = httpx.get(alertmanager + "/api/v2/alerts", timeout=5).json()
            assert len(active) == 4 and all(a["status"]["state"] == "active" for a in active)
            # re-posted while active, as Prometheus does
            wait_for(lambda: len([r for r in store.list_outbox(status="delivered") if r.kind == "alertmanager"]) >= 4,
                     what="alerts re-posted")

            for i in (1, 2):
                decide(store, engine, i, healthy("temp", "atemp", "hum"))
            resolved = wait_for(lambda: groups_from_alertmanager("resolved").get("bikeshare"), what="the resolve")
            check_webhook_v4(resolved)
            assert sorted(a["labels"]["feature"] for a in resolved["alerts"]) == ["atemp", "hum", "temp"]
            assert all(a["status"] == "resolved" for a in resolved["alerts"])
        finally:
            sender.stop()
            receivers.close()
