"""The monitor API over a real SQLite store, through FastAPI's TestClient and one real uvicorn."""

import math
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from alerts.lifecycle import AlertManager
from monitor.api import create_app
from monitor.api.server import build_server
from monitor.settings import Settings
from monitor.storage import SCHEMA_VERSION
from monitor.storage import Store


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "skewwatch.sqlite3") as s:
        yield s


@pytest.fixture
def filled(store, finding, window_kw):
    """Two models, both modes, three windows; alerts driven by the real AlertManager."""
    am = AlertManager(store=store)
    for i, temp in enumerate(["critical", "warning", "ok"]):
        kw = window_kw(i, rows=100 + i, late=i, invalid=2 * i)
        fs = [finding("temp", "ks", temp, effect=0.3 - 0.1 * i, q_value=1e-6 if temp != "ok" else 0.3),
              finding("temp", "psi", "ok", q_value=None, p_value=None, effect=0.01 * i),
              finding("hum", "ks", "warning", effect=0.2)]
        store.save_window(**kw, findings=fs)
        am.observe(kw, fs)
    sk = window_kw(0, mode="skew")
    skew = [finding("season", "chi2", "critical", mode="skew", effect=0.5)]
    store.save_window(**sk, findings=skew)
    am.observe(sk, skew)
    ow = window_kw(0, model="other")
    store.save_window(**ow, findings=[finding("x", "ks", "ok", model="other")])
    return store


@pytest.fixture
def client(filled):
    with TestClient(create_app(Settings(), filled)) as c:
        yield c


def test_healthz(client, store):
    r = client.get("/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "ok", "schema_version": SCHEMA_VERSION})
    store.close()
    r = client.get("/healthz")
    assert r.status_code == 503 and r.json()["status"] == "unavailable"
    r = client.get("/windows")
    assert r.status_code == 503 and "closed" in r.json()["detail"]


def test_windows_and_filters(client, filled):
    body = client.get("/windows").json()
    assert body["windows"] == [w.to_dict() for w in filled.list_windows()]
    assert len(body["windows"]) == 5
    only = client.get("/windows", params={"model": "bikeshare", "mode": "drift"}).json()["windows"]
    assert [(w["rows"], w["late_records"], w["findings"], w["alerting"]) for w in only] == [
        (102, 2, 3, 1), (101, 1, 3, 2), (100, 0, 3, 2)]
    since = client.get("/windows", params={"since": "2012-03-01T08:05:00Z", "model": "bikeshare"}).json()["windows"]
    assert [w["window_start"] for w in since] == ["2012-03-01T08:10:00.000000Z", "2012-03-01T08:05:00.000000Z"]
    offset = client.get("/windows?since=2012-03-01T09:05:00%2B01:00&model=bikeshare").json()["windows"]
    assert offset == since
    assert len(client.get("/windows", params={"limit": 2}).json()["windows"]) == 2


def test_findings_and_filters(client, filled):
    assert client.get("/findings").json()["findings"] == [f.to_dict() for f in filled.list_findings()]
    crit = client.get("/findings", params={"verdict": "critical"}).json()["findings"]
    assert sorted((f["feature"], f["mode"]) for f in crit) == [("season", "skew"), ("temp", "drift")]
    wid = client.get("/windows", params={"model": "other"}).json()["windows"][0]["id"]
    assert [f["model"] for f in client.get("/findings", params={"window_id": wid}).json()["findings"]] == ["other"]
    temp = client.get("/findings", params={"model": "bikeshare", "feature": "temp", "mode": "drift"}).json()
    assert len(temp["findings"]) == 6 and {f["feature"] for f in temp["findings"]} == {"temp"}
    psi = [f for f in temp["findings"] if f["test"] == "psi"]
    assert all(f["q_value"] is None for f in psi)


def test_alerts_and_state_filter(client):
    everything = client.get("/alerts").json()["alerts"]
    assert {(a["labels"]["feature"], a["labels"]["mode"], a["state"]) for a in everything} == {
        ("temp", "drift", "resolved"), ("hum", "drift", "firing"), ("season", "skew", "firing")}
    firing = client.get("/alerts", params={"state": "firing"}).json()["alerts"]
    assert sorted(a["labels"]["feature"] for a in firing) == ["hum", "season"]
    assert client.get("/alerts?state=resolved").json()["alerts"][0]["ends_at"] == "2012-03-01T08:15:00.000000Z"


@pytest.mark.parametrize("url, status, where", [
    ("/windows?limit=0", 422, ["query", "limit"]),
    ("/windows?limit=many", 422, ["query", "limit"]),
    ("/windows?since=yesterday", 422, ["query", "since"]),
    ("/windows?since=2012-03-01T08:00:00", 422, ["query", "since"]),  # no offset
    ("/windows?mode=shift", 422, ["query", "mode"]),
    ("/findings?verdict=bad", 422, ["query", "verdict"]),
    ("/findings?window_id=-3", 422, ["query", "window_id"]),
    ("/findings?model=", 422, ["query", "model"]),
    ("/alerts?state=open", 422, ["query", "state"]),
])
def test_bad_query_values_get_422_naming_the_parameter(client, url, status, where):
    r = client.get(url)
    assert r.status_code == status
    assert [d["loc"] for d in r.json()["detail"]] == [where]


def test_unknown_query_parameters_get_400(client):
    r = client.get("/findings", params={"verdcit": "critical"})
    assert r.status_code == 400
    assert r.json()["detail"] == ("unknown query parameter(s) verdcit; "
                                  "allowed: model, feature, verdict, window_id, mode, limit")
    assert client.get("/metrics?x=1").status_code == 400


def _families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_export_every_latest_score(client, filled):
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    fams = _families(r.text)
    scores = filled.latest_scores()
    assert len(scores) == 5  # temp/ks, temp/psi, hum/ks (drift), season/chi2 (skew), other x/ks
    for name, attr in (("skewwatch_finding_effect", "effect"), ("skewwatch_finding_q_value", "q_value"),
                       ("skewwatch_finding_statistic", "statistic"), ("skewwatch_finding_floor", "floor"),
                       ("skewwatch_finding_alerting", "alerting")):
        got = {(s.labels["model"], s.labels["feature"], s.labels["test"], s.labels["mode"]): s.value
               for s in fams[name].samples}
        want = {(s.model, s.feature, s.test, s.mode): getattr(s, attr) for s in scores}
        assert got.keys() == want.keys(), name
        for key, value in want.items():
            if value is None:
                assert math.isnan(got[key]), (name, key)
            else:
                assert got[key] == float(value), (name, key)
    by_test = {(s.labels["feature"], s.labels["test"]): s.value for s in fams["skewwatch_finding_alerting"].samples}
    assert by_test == {("temp", "ks"): 0.0, ("temp", "psi"): 0.0, ("hum", "ks"): 1.0, ("season", "chi2"): 1.0,
                       ("x", "ks"): 0.0}
    effect = {(s.labels["feature"], s.labels["test"]): s.value for s in fams["skewwatch_finding_effect"].samples}
    assert effect[("temp", "ks")] == pytest.approx(0.1)  # the latest window's value, not an earlier one


def test_metrics_alerts_and_windows(client):
    fams = _families(client.get("/metrics").text)
    firing = {(s.labels["model"], s.labels["severity"]): s.value for s in fams["skewwatch_alerts_firing"].samples}
    assert firing == {("bikeshare", "warning"): 1.0, ("bikeshare", "critical"): 1.0}
    windows = {(s.labels["model"], s.labels["mode"]): s.value for s in fams["skewwatch_windows"].samples}
    assert windows == {("bikeshare", "drift"): 3.0, ("bikeshare", "skew"): 1.0, ("other", "drift"): 1.0}
    rows = {(s.labels["model"], s.labels["mode"]): s.value for s in fams["skewwatch_window_rows"].samples}
    assert rows[("bikeshare", "drift")] == 102.0
    late = {(s.labels["model"], s.labels["mode"]): s.value for s in fams["skewwatch_window_late_records"].samples}
    assert late[("bikeshare", "drift")] == 2.0
    end = {(s.labels["model"], s.labels["mode"]): s.value
           for s in fams["skewwatch_window_end_timestamp_seconds"].samples}
    assert end[("bikeshare", "drift")] == 1330589700.0  # 2012-03-01T08:15:00Z
    assert fams["skewwatch_store_up"].samples[0].value == 1.0


def test_metrics_reflect_the_store_at_scrape_time(store, finding, window_kw):
    with TestClient(create_app(Settings(), store)) as c:
        assert "skewwatch_finding_effect{" not in c.get("/metrics").text
        store.save_window(**window_kw(0), findings=[finding("temp", "ks", "ok", effect=0.07)])
        fams = _families(c.get("/metrics").text)
        (sample,) = fams["skewwatch_finding_effect"].samples
        assert (sample.labels, sample.value) == (
            {"model": "bikeshare", "feature": "temp", "test": "ks", "mode": "drift"}, 0.07)
        store.close()
        fams = _families(c.get("/metrics").text)
        assert fams["skewwatch_store_up"].samples[0].value == 0.0


def test_two_apps_have_separate_registries(filled, tmp_path, finding, window_kw):
    with Store(tmp_path / "other.sqlite3") as other:
        other.save_window(**window_kw(0, model="solo"), findings=[finding(model="solo")])
        a = TestClient(create_app(Settings(), filled)).get("/metrics").text
        b = TestClient(create_app(Settings(), other)).get("/metrics").text
    models_b = {s.labels.get("model") for f in text_string_to_metric_families(b) for s in f.samples} - {None}
    assert models_b == {"solo"} and 'model="solo"' not in a


def test_real_uvicorn_server_serves_the_app(filled):
    settings = Settings(monitor_host="127.0.0.1", monitor_port=0, log_level="WARNING")
    server = build_server(settings, filled)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            thread.join(0.02)  # wait on the server's own flag, with a deadline
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert r.json() == {"status": "ok", "schema_version": SCHEMA_VERSION}
        assert "skewwatch_finding_effect" in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_settings_and_store_are_on_app_state(filled):
    s = Settings(monitor_port=8601)
    app = create_app(s, filled)
    assert app.state.settings is s and app.state.store is filled
