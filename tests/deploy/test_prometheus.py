"""The shipped Prometheus rules and Grafana dashboard: promtool checks and unit tests, and a real
Prometheus (Debian's package) on loopback scraping a real monitor, and a real collector on the
embedded broker, and evaluating the rules.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.monitor.api.conftest import make_settings
from tests.monitor.api.live import live_monitor

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "skewwatch-rules.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "skewwatch.json"
PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")

pytestmark = pytest.mark.skipif(PROMETHEUS is None or PROMTOOL is None,
                                reason="apt-get install -y prometheus (.ci/run does)")


def _promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=RULES.parent)


def test_promtool_checks_the_rules_and_the_config():
    done = _promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 19 rules found" in done.stdout
    done = _promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_of_the_rules_pass():
    done = _promtool("test", "rules", "skewwatch-rules.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_rule_tests_can_fail():
    """A rule test that expects the wrong thing fails: the unit tests above are not vacuous."""
    text = (RULES.parent / "skewwatch-rules.test.yml").read_text().replace('summary: "bikeshare/v1: temp skew is critical"',
                                                                          'summary: "something else"')
    broken = RULES.parent / ".broken-rules.test.yml"
    try:
        broken.write_text(text)
        done = _promtool("test", "rules", broken.name)
    finally:
        broken.unlink(missing_ok=True)
    assert done.returncode != 0 and "something else" in done.stdout + done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what, probe, timeout=60.0):  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def prometheus(populated, tmp_path, trained_models_dir):
    store, info = populated
    with live_monitor(make_settings(tmp_path, trained_models_dir), store) as monitor_url:
        port = _free_port()
        config = tmp_path / "prometheus.yml"
        shutil.copy(RULES, tmp_path / RULES.name)
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: [{RULES.name}]\n"
            "scrape_configs:\n"
            "  - job_name: skewwatch-monitor\n"
            f"    static_configs: [{{targets: ['{monitor_url.split('//')[1]}']}}]\n")
        # the recording group says 30s; here it runs every second so the test does not wait
        rules = (tmp_path / RULES.name).read_text().replace("interval: 30s", "interval: 1s")
        (tmp_path / RULES.name).write_text(rules)
        proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                                stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "w"))
        url = f"http://127.0.0.1:{port}"
        try:
            _wait("Prometheus to be ready", lambda: _get(f"{url}/-/ready") == 200 or proc.poll() is not None)
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            yield url, monitor_url, store, info
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return 0


def _query(url: str, expr: str) -> list:
    body = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


def test_a_real_prometheus_scrapes_the_monitor_and_evaluates_the_shipped_rules(prometheus):
    url, monitor_url, store, info = prometheus
    target = _wait("the monitor target to be up", lambda: [
        t for t in httpx.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"] if t["health"] == "up"])
    assert target[0]["labels"]["job"] == "skewwatch-monitor"
    # the recording rule equals the API's effect / floor for each latest score
    ratios = _wait("the recording rules", lambda: _query(url, "skewwatch:finding_effect_over_floor:ratio"))
    api = {(s["mode"], s["family"], s["feature"], s["test"]): s["effect_over_floor"]
           for s in httpx.get(f"{monitor_url}/scores", timeout=10).json()["scores"] if s["effect_over_floor"] is not None}
    got = {(r["metric"]["mode"], r["metric"]["family"], r["metric"]["feature"], r["metric"]["test"]): float(r["value"][1])
           for r in ratios}
    assert got.keys() == api.keys()
    assert all(got[k] == pytest.approx(v, rel=1e-9) for k, v in api.items())
    # the Fahrenheit client's critical temperature scores fire the shipped alert
    alerts = _wait("SkewwatchCriticalScore to fire", lambda: [
        a for a in httpx.get(f"{url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        if a["labels"]["alertname"] == "SkewwatchCriticalScore" and a["state"] == "firing"])
    fired = {(a["labels"]["feature"], a["labels"]["mode"]) for a in alerts}
    assert ("temp", "skew") in fired
    critical = {(f.feature, f.mode) for f in store.latest_scores() if f.alerting and f.verdict == "critical"}
    assert fired == critical
    # every rule evaluates without error, and the health alerts stay quiet
    groups = httpx.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == 19 and all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]
    quiet = {r["name"]: r["state"] for r in rules if r["type"] == "alerting"}
    assert quiet["SkewwatchStoreDown"] == quiet["SkewwatchMonitorDown"] == "inactive"


def test_every_dashboard_query_runs_on_the_scraped_data(prometheus):
    url, _, _, info = prometheus
    _wait("the recording rules", lambda: _query(url, "skewwatch:feature_effect_over_floor:max"))
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "skewwatch" and len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for p in dashboard["panels"]:
        assert p["datasource"]["uid"] == "${datasource}"
    exprs = {p["title"]: [re.sub(r"\$(model_version|model|segment)\b", ".*", t["expr"]) for t in p["targets"]]
             for p in dashboard["panels"]}
    wanted = ("Store answering", "Latest skew: effect / floor, features x tests",
              "Worst score of each feature over time (effect / floor)", "Rows in the latest window",
              "Dead letters by reason")  # the collector panels stay empty: this Prometheus scrapes only the monitor

    def answer():  # every query succeeds; the ones over the monitor's data return some (rates need 2 scrapes)
        got = {title: [r for e in es for r in _query(url, e)] for title, es in exprs.items()}
        return got if all(got[t] for t in wanted) else None

    answered = _wait("the dashboard's queries to answer", answer)
    temp = [r for r in answered["Worst score of each feature over time (effect / floor)"]
            if r["metric"]["feature"] == "temp" and r["metric"]["mode"] == "skew"]
    assert float(temp[0]["value"][1]) >= 2


@pytest.mark.slow
@pytest.mark.broker
def test_a_real_prometheus_scrapes_a_collector_and_its_rules_evaluate(trained_models_dir, serving_rows, tmp_path):
    """A collector process consuming real traffic (and a few dead letters) on the embedded broker:
    Prometheus scrapes its /metrics, the collector recording rules and the lag alert evaluate."""
    from skewwatch.broker import EmbeddedBroker, ensure_topic
    from tests.collectors.scenario import Deployment, encoded, produce, records, stop_live, version_of, wait_windows

    metrics_port, port = _free_port(), _free_port()
    with EmbeddedBroker() as broker:
        ensure_topic(broker.bootstrap_servers, "skewwatch.predictions", 2)
        d = Deployment(broker.bootstrap_servers, trained_models_dir, tmp_path / "state", "prom",
                       extra={"SKEWWATCH_COLLECTOR_METRICS_PORT": str(metrics_port)})
        try:
            d.add("collector").start()
            version = version_of(trained_models_dir, "bikeshare")
            recs = records(serving_rows, model="bikeshare", version=version, windows=2, per_window=500, window_seconds=60)
            produce(broker.bootstrap_servers, "skewwatch.predictions",
                    encoded(recs) + [(b"bad", b"{not json"), (b"bad2", b"\xff")])
            wait_windows(d.state_dir, 2, timeout=120, deployment=d)
            shutil.copy(RULES, tmp_path / RULES.name)
            (tmp_path / RULES.name).write_text((tmp_path / RULES.name).read_text().replace("interval: 30s", "interval: 1s"))
            config = tmp_path / "prometheus.yml"
            config.write_text(
                "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                f"rule_files: [{RULES.name}]\n"
                "scrape_configs:\n"
                "  - job_name: skewwatch-collector\n"
                f"    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n")
            proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                     f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                                    stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "w"))
            url = f"http://127.0.0.1:{port}"
            try:
                _wait("Prometheus to be ready", lambda: _get(f"{url}/-/ready") == 200 or proc.poll() is not None)
                up = _wait("the collector target to be up", lambda: [
                    t for t in httpx.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
                    if t["health"] == "up"])
                assert up[0]["labels"]["job"] == "skewwatch-collector"
                accepted = _wait("the records counter", lambda: _query(url, 'skewwatch_collector_records_total{outcome="accepted"}'))
                assert int(float(accepted[0]["value"][1])) == len(recs)
                dead = {r["metric"]["reason"]: int(float(r["value"][1]))
                        for r in _wait("the dead-letter counter", lambda: _query(url, "skewwatch_collector_dead_letters_total"))}
                assert dead == {"not_json": 1, "not_utf8": 1}
                lag = _wait("per-partition lag", lambda: _query(url, "skewwatch_collector_partition_lag_records"))
                assert {r["metric"]["partition"] for r in lag} == {"0", "1"}
                assert all(float(r["value"][1]) == 0 for r in lag)  # caught up
                _wait("the collector recording rules", lambda: _query(url, "skewwatch:collector_lag_records:sum"))
                groups = httpx.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"]
                rules = [r for g in groups for r in g["rules"]]
                assert all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]
                lag_alert = [r for r in rules if r["type"] == "alerting" and "lag" in r["query"]]
                assert lag_alert and all(r["state"] == "inactive" for r in lag_alert)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        finally:
            stop_live()
