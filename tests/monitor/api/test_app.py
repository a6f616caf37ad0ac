"""The monitor API over a store populated by a short run on real data (SQLite, and PostgreSQL for reads)."""

from __future__ import annotations

import base64
import json

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from monitor.api import create_app
from monitor.api.bounded import MARKER
from monitor.timeutil import format_instant
from tests.monitor.api.conftest import AUTH, TOKEN, make_settings
from tests.monitor.api.populate import STEP_MS, T0_MS

# -- the inputs the issue reported as 500s -----------------------------------------------------


@pytest.mark.parametrize("url", [
    "/windows?since=0001-01-01T00:00:00%2B01:00",
    "/windows?since=0001-01-01T00:00:00%2B00:30",
    "/windows?since=9999-12-31T23:59:59-01:00",
    "/findings?since=0001-01-01T00:00:00%2B01:00",
    "/findings?until=9999-12-31T23:59:59-01:00",
    "/models/bikeshare/features/temp/history?since=0001-01-01T00:00:00%2B00:30",
    "/windows/9223372036854775808",
    "/windows/18446744073709551616",
    "/findings?window_id=9223372036854775808",
    "/windows/9223372036854775808/distribution?feature=temp",
    "/reports/9223372036854775808",
])
def test_instants_outside_the_range_and_ids_beyond_63_bits_are_422_not_500(api, url):
    client, _, _ = api
    r = client.get(url)
    assert r.status_code == 422, r.text
    (problem,) = r.json()["detail"]
    assert problem["loc"][0] in ("query", "path")
    assert problem["loc"][1] in ("since", "until", "window_id")


def test_the_largest_id_and_the_range_ends_are_accepted(api):
    client, _, _ = api
    assert client.get("/windows/9223372036854775807").status_code == 404
    assert client.get("/windows?since=0001-01-01T00:00:00Z&until=9999-12-31T23:59:59.999Z").status_code == 200
    assert client.get("/windows?since=0001-01-01T01:00:00%2B01:00").status_code == 200


# -- reads -------------------------------------------------------------------------------------


def test_models_list_versions_bundles_and_latest_windows(any_api):
    client, _, info = any_api
    (model,) = client.get("/models").json()["models"]
    assert model["model"] == "bikeshare" and model["config_source"] == "defaults"
    (version,) = model["versions"]
    assert version["version"] == info.version
    assert [f["name"] for f in version["bundle"]["features"]] == list(info.features)
    (stream,) = version["streams"]
    assert stream["segment"] == "" and stream["latest_window"]["id"] == info.window_ids[-1]
    assert client.get("/models/bikeshare").json() == model
    assert client.get("/models/nope").status_code == 404


def test_windows_page_newest_first_with_a_cursor_and_filters(any_api):
    client, _, info = any_api
    seen, url = [], "/windows?limit=4"
    while url:
        body = client.get(url).json()
        seen += [w["id"] for w in body["windows"]]
        url = f"/windows?limit=4&cursor={body['next']}" if body["next"] else None
    assert seen == list(reversed(info.window_ids))
    drift = client.get("/windows", params={"mode": "drift"}).json()["windows"]
    assert [w["id"] for w in drift] == list(reversed(info.window_ids[1:]))  # the first window has no drift reference
    since = format_instant(T0_MS + 2 * STEP_MS).replace("+", "%2B")
    until = format_instant(T0_MS + 4 * STEP_MS)
    got = client.get(f"/windows?since={since}&until={until}").json()["windows"]
    assert [w["start_ms"] for w in got] == [T0_MS + 3 * STEP_MS, T0_MS + 2 * STEP_MS]
    same_offset = client.get("/windows?since=2012-03-01T09:10:00%2B01:00&until=2012-03-01T09:20:00%2B01:00").json()
    assert same_offset["windows"] == got
    w = client.get(f"/windows/{info.window_ids[2]}").json()
    assert w["window"]["report_url"] == f"/reports/{info.window_ids[2]}"
    assert w["reference_window_ids"] == [info.window_ids[1]]
    assert client.get("/windows", params={"model_version": "19990101T000000Z"}).json() == {"windows": [], "next": None}


def test_a_cursor_is_opaque_and_belongs_to_its_query(api):
    client, _, _ = api
    cursor = client.get("/windows?limit=2").json()["next"]
    assert client.get(f"/windows?limit=2&cursor={cursor}").status_code == 200
    for url in (f"/windows?limit=3&cursor={cursor}", f"/windows?limit=2&model=bikeshare&cursor={cursor}",
                f"/findings?limit=2&cursor={cursor}", "/windows?cursor=bm90LWEtY3Vyc29y",
                "/windows?cursor=" + base64.urlsafe_b64encode(b'["x", 99999999999999999999999, 1]').decode().rstrip("=")):
        r = client.get(url)
        assert r.status_code == 422, url
        assert r.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_findings_filter_and_page_through_everything(any_api):
    client, store, info = any_api
    everything = store.page_findings(limit=100_000).rows
    seen, cursor = [], None
    while True:
        body = client.get("/findings", params={"limit": 250, **({"cursor": cursor} if cursor else {})}).json()
        seen += [f["id"] for f in body["findings"]]
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == [f.id for f in everything]
    critical = client.get("/findings", params={"verdict": "critical", "limit": 2000}).json()["findings"]
    assert critical and {f["verdict"] for f in critical} == {"critical"}
    assert {f["window_id"] for f in critical if f["feature"] == "temp"} <= set(info.buggy_ids)
    one = client.get("/findings", params={"window_id": info.window_ids[0]}).json()["findings"]
    assert {f["mode"] for f in one} == {"skew"} and {f["family"] for f in one} == {"features", "output"}
    temp = client.get("/findings", params={"model": "bikeshare", "feature": "temp", "test": "mean_shift",
                                           "mode": "skew"}).json()["findings"]
    assert [f["window_id"] for f in temp] == list(reversed(info.window_ids))
    assert all(f["effect_over_floor"] == pytest.approx(f["effect"] / f["floor"]) for f in temp)


def test_history_of_a_feature_has_every_score_against_its_floor(any_api):
    client, _, info = any_api
    body = client.get("/models/bikeshare/features/temp/history").json()
    assert body["next"] is None
    series = {(s["mode"], s["test"]): s["points"] for s in body["series"]}
    assert {t for m, t in series if m == "skew"} >= {"mean_shift", "ks", "psi", "wasserstein"}
    skew = series[("skew", "mean_shift")]
    assert [p["window_id"] for p in skew] == info.window_ids  # oldest first
    before = [p["effect"] / p["floor"] for p in skew[:3]]
    after = [p["effect"] / p["floor"] for p in skew[3:]]
    assert max(before) < 1 < min(after)  # the Fahrenheit client crosses the floor, the healthy ones do not
    assert len(series[("drift", "mean_shift")]) == len(info.window_ids) - 1
    paged = client.get("/models/bikeshare/features/temp/history?limit=7").json()
    assert sum(len(s["points"]) for s in paged["series"]) == 7 and paged["next"]
    older = client.get(f"/models/bikeshare/features/temp/history?limit=7&cursor={paged['next']}").json()
    newest_older = max(p["start_ms"] for s in older["series"] for p in s["points"])
    oldest_first_page = min(p["start_ms"] for s in paged["series"] for p in s["points"])
    assert newest_older <= oldest_first_page


def test_latest_scores_are_those_of_the_latest_window(any_api):
    client, store, info = any_api
    scores = client.get("/scores").json()["scores"]
    assert len(scores) == len(store.latest_scores())
    assert {s["window_id"] for s in scores if s["mode"] == "skew"} == {info.window_ids[-1]}
    drift = client.get("/scores", params={"mode": "drift"}).json()["scores"]
    assert drift and {s["mode"] for s in drift} == {"drift"}


def test_distributions_show_the_fahrenheit_shift(any_api):
    client, _, info = any_api
    buggy = info.buggy_ids[0]
    d = client.get(f"/windows/{buggy}/distribution", params={"feature": "temp"}).json()
    num = d["distribution"]
    assert (d["reference"], num["kind"]) == ("baseline", "numeric")
    assert num["window"]["mean"] > num["reference"]["mean"] + 20  # ~15 C against ~59 F
    for side in ("reference", "window"):
        s = num[side]
        assert sum(s["shares"]) + s["below"] + s["above"] == pytest.approx(1.0, abs=1e-6)
        assert len(s["shares"]) == len(num["edges"]) - 1 and len(s["cdf"]) == len(num["grid"])
        assert s["cdf"] == sorted(s["cdf"])
    healthy = client.get(f"/windows/{info.window_ids[1]}/distribution?feature=temp&reference=window").json()
    assert healthy["reference_window_id"] == info.window_ids[0]
    assert abs(healthy["distribution"]["window"]["mean"] - healthy["distribution"]["reference"]["mean"]) < 3
    season = client.get(f"/windows/{buggy}/distribution?feature=season").json()["distribution"]
    assert season["kind"] == "categorical"
    values = {c["value"]: c for c in season["categories"]}
    assert {"spring", "summer", "fall", "winter", "(missing)"} <= set(values)
    assert sum(c["window"] for c in season["categories"]) == pytest.approx(1.0)
    pred = client.get(f"/windows/{buggy}/distribution?feature=prediction").json()
    assert pred["family"] == "output" and pred["distribution"]["kind"] == "numeric"
    assert client.get(f"/windows/{buggy}/distribution?feature=nope").status_code == 404
    assert client.get(f"/windows/{info.window_ids[0]}/distribution?feature=temp&reference=window").status_code == 404


def test_baseline_of_a_bundle_per_feature(any_api):
    client, _, info = any_api
    b = client.get(f"/models/bikeshare/versions/{info.version}/baseline").json()
    assert b["rows"] > 1000 and [f["name"] for f in b["features"]] == list(info.features)
    temp = next(f for f in b["features"] if f["name"] == "temp")
    assert temp["kind"] == "numeric" and temp["quantiles"]["p05"] < temp["quantiles"]["p50"] < temp["quantiles"]["p95"]
    season = next(f for f in b["features"] if f["name"] == "season")
    assert season["kind"] == "categorical" and {t["value"] for t in season["top"]} == {"spring", "summer", "fall", "winter"}
    assert [p["name"] for p in b["predictions"]] == ["prediction"]
    assert b["uploaded_tfdv"] is None
    assert client.get("/models/bikeshare/versions/20000101T000000Z/baseline").status_code == 404


def test_dead_letters_by_reason_with_bounded_examples(any_api):
    client, _, _ = any_api
    body = client.get("/dead-letters").json()
    assert body["total"] == 5
    assert [(r["reason"], r["model"], r["count"]) for r in body["reasons"]] == [("not_json", "", 3),
                                                                               ("schema", "bikeshare", 2)]
    examples = client.get("/dead-letters/examples", params={"reason": "not_json"}).json()["examples"]
    assert len(examples) == 3 and all(len(e["detail"]) <= 256 for e in examples)
    assert sum(MARKER in e["detail"] for e in examples) == 1  # stored as 2,000 chars, shown as 256


def test_unknown_query_parameters_are_400_naming_them(api):
    client, _, _ = api
    r = client.get("/findings", params={"verdcit": "critical"})
    assert r.status_code == 400 and "verdcit" in r.json()["detail"]
    assert client.get("/metrics?x=1").status_code == 400


# -- metrics -----------------------------------------------------------------------------------


def _families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_export_every_latest_score_and_the_latest_windows(any_api):
    client, store, info = any_api
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    fams = _families(r.text)
    scores = store.latest_scores()
    got = {tuple(s.labels[k] for k in ("model", "model_version", "segment", "mode", "family", "feature", "test")): s.value
           for s in fams["skewwatch_finding_effect"].samples}
    assert got == {(s.model, s.model_version, s.segment, s.mode, s.family, s.feature, s.test): s.effect for s in scores}
    severity = {(s.labels["feature"], s.labels["test"], s.labels["mode"]): s.value
                for s in fams["skewwatch_finding_severity"].samples}
    assert severity[("temp", "mean_shift", "skew")] == 2.0
    (end,) = fams["skewwatch_window_end_timestamp_seconds"].samples
    assert end.value == (T0_MS + len(info.window_ids) * STEP_MS) / 1000
    dead = {(s.labels["reason"], s.labels["model"]): s.value for s in fams["skewwatch_dead_letters"].samples
            if s.name == "skewwatch_dead_letters_total"}
    assert dead == {("not_json", ""): 3.0, ("schema", "bikeshare"): 2.0}
    assert fams["skewwatch_store_up"].samples[0].value == 1.0


# -- store failures ----------------------------------------------------------------------------


def test_a_failing_store_is_503_never_4xx(api):
    client, store, _ = api
    store.close()
    for url in ("/windows", "/findings", "/scores", "/models", "/dead-letters", "/windows/1",
                "/models/bikeshare/features/temp/history", "/models/bikeshare/config"):
        r = client.get(url)
        assert r.status_code == 503, url
        assert r.headers["retry-after"] == "5" and "store unavailable" in r.json()["detail"]
    assert client.get("/healthz").status_code == 503
    assert client.put("/models/bikeshare/config", json={"document": {}, "by": "x"}, headers=AUTH).status_code == 503
    assert _families(client.get("/metrics").text)["skewwatch_store_up"].samples[0].value == 0.0


# -- security ----------------------------------------------------------------------------------


def test_changing_endpoints_need_the_token_and_never_echo_it(api):
    client, _, _ = api
    body = {"document": {"floors": {"psi": 0.3}}, "by": "alice"}
    assert client.put("/models/bikeshare/config", json=body).status_code == 401
    wrong = client.put("/models/bikeshare/config", json=body, headers={"Authorization": "Bearer not-it-at-all"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert "not-it-at-all" not in wrong.text and TOKEN not in wrong.text
    assert client.put("/models/bikeshare/config", json=body, headers={"Authorization": TOKEN}).status_code == 401
    assert client.put("/models/bikeshare/config", json=body, headers=AUTH).status_code == 200
    assert client.post("/admin/retention").status_code == 401
    assert TOKEN not in client.get("/openapi.json").text


def test_without_a_configured_token_nothing_can_change(populated, tmp_path, trained_models_dir):
    store, _ = populated
    app = create_app(make_settings(tmp_path, trained_models_dir, api_token=None), store)
    with TestClient(app) as client:
        r = client.put("/models/bikeshare/config", json={"document": {}, "by": "x"}, headers=AUTH)
        assert r.status_code == 403 and "SKEWWATCH_API_TOKEN" in r.json()["detail"]
        assert client.get("/windows").status_code == 200


def test_reads_can_be_closed(populated, tmp_path, trained_models_dir):
    store, _ = populated
    app = create_app(make_settings(tmp_path, trained_models_dir, api_read_auth=True), store)
    with TestClient(app) as client:
        for url in ("/windows", "/findings", "/models", "/metrics", "/scores", "/dead-letters"):
            assert client.get(url).status_code == 401, url
            assert client.get(url, headers=AUTH).status_code == 200, url
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
    spec = app.openapi()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_request_bodies_are_limited(api):
    client, _, info = api
    big = {"document": {"features": {}}, "by": "x" * 70_000}
    r = client.put("/models/bikeshare/config", json=big, headers=AUTH)
    assert r.status_code == 413
    streamed = client.put("/models/bikeshare/config", content=iter([b"{" + b" " * 40_000, b" " * 40_000 + b"}"]),
                          headers={**AUTH, "content-type": "application/json"})
    assert streamed.status_code == 413
    # a baseline upload may be larger (here it is refused later, for its content, not its size)
    upload = {"statistics": base64.b64encode(b"\0" * 70_000).decode(), "schema": "feature {}", "by": "x"}
    r = client.put(f"/models/bikeshare/versions/{info.version}/baseline/tfdv", json=upload, headers=AUTH)
    assert r.status_code == 422


def test_cors_is_off_by_default_and_on_for_named_origins(populated, tmp_path, trained_models_dir):
    store, _ = populated
    headers = {"Origin": "http://dash.example", "Access-Control-Request-Method": "GET"}
    with TestClient(create_app(make_settings(tmp_path, trained_models_dir), store)) as client:
        assert "access-control-allow-origin" not in client.get("/windows", headers=headers).headers
        assert client.options("/windows", headers=headers).status_code == 405
    app = create_app(make_settings(tmp_path, trained_models_dir, api_cors_origins="http://dash.example"), store)
    with TestClient(app) as client:
        assert client.get("/windows", headers=headers).headers["access-control-allow-origin"] == "http://dash.example"
        assert "access-control-allow-origin" not in client.get("/windows", headers={"Origin": "http://evil"}).headers


# -- monitor config ----------------------------------------------------------------------------


def test_config_read_validate_replace_and_forget(api):
    client, store, _ = api
    before = client.get("/models/bikeshare/config").json()
    assert before["source"] == "defaults" and before["document"] == {}
    assert before["policies"]["temp"]["floors"]["psi"] == pytest.approx(0.2)  # the built-in floor
    doc = {"floors": {"psi": 0.4}, "features": {"temp": {"tests": {"ks": False}, "persistence": {"k": 1, "n": 2}}}}
    checked = client.post("/models/bikeshare/config/validate", json={"document": doc}).json()
    assert checked["policies"]["temp"]["floors"]["psi"] == pytest.approx(0.4)
    assert store.monitor_config("bikeshare") is None  # validating stores nothing
    r = client.put("/models/bikeshare/config", json={"document": doc, "by": "alice"}, headers=AUTH)
    assert r.status_code == 200
    after = client.get("/models/bikeshare/config").json()
    assert (after["source"], after["updated_by"]) == ("store", "alice")
    assert after["document"] == doc
    assert "ks" not in after["policies"]["temp"]["enabled"] and "ks" in after["policies"]["hum"]["enabled"]
    assert after["policies"]["temp"]["persistence"] == {"k": 1, "n": 2}
    assert store.monitor_config("bikeshare").document == doc
    assert client.delete("/models/bikeshare/config", headers=AUTH).json()["source"] == "defaults"
    assert client.delete("/models/bikeshare/config", headers=AUTH).status_code == 404


@pytest.mark.parametrize("document, loc", [
    ({"floors": {"psi": -1}}, ["body", "document", "floors", "psi"]),
    ({"floors": {"no_such_test": 0.1}}, ["body", "document", "floors", "no_such_test"]),
    ({"persistence": {"k": 3, "n": 2}}, ["body", "document", "persistence"]),
    ({"bh_leve": 0.1}, ["body", "document", "bh_leve"]),
    ({"features": {"tmep": {"floors": {"ks": 0.1}}}}, ["body", "document", "features", "tmep"]),
])
def test_an_invalid_config_is_422_naming_the_key_and_changes_nothing(api, document, loc):
    client, store, _ = api
    r = client.put("/models/bikeshare/config", json={"document": document, "by": "bob"}, headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == loc
    assert store.monitor_config("bikeshare") is None


# -- TFDV baselines ----------------------------------------------------------------------------


def test_a_tfdv_statistics_and_schema_pair_is_uploaded_checked_and_read_back(api, trained_bundle):
    client, store, info = api
    stats = (trained_bundle.path / "tfdv" / "statistics.pb").read_bytes()
    schema = (trained_bundle.path / "tfdv" / "schema.pbtxt").read_text()
    url = f"/models/bikeshare/versions/{info.version}/baseline/tfdv"
    body = {"statistics": base64.b64encode(stats).decode(), "schema": schema, "by": "carol"}
    r = client.put(url, json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    assert (r.json()["features"], r.json()["uploaded_by"]) == (len(info.features), "carol")
    got = client.get(url).json()
    assert {f["name"] for f in got["feature_statistics"]} == set(info.features)
    temp = next(f for f in got["feature_statistics"] if f["name"] == "temp")
    assert temp["type"] == "FLOAT" and temp["num_non_missing"] > 1000
    assert client.get(f"/models/bikeshare/versions/{info.version}/baseline").json()["uploaded_tfdv"]["sha256"] == \
        got["sha256"]
    assert store.baseline("bikeshare", info.version).schema.strip()


@pytest.mark.parametrize("change, loc", [
    (lambda b: {**b, "statistics": "%%% not base64"}, ["body", "statistics"]),
    (lambda b: {**b, "statistics": base64.b64encode(b"\xff\xfe garbage").decode()}, ["body", "statistics"]),
    (lambda b: {**b, "schema": "feature { name: "}, ["body", "schema"]),
    (lambda b: {**b, "schema": 'feature { name: "temp" type: FLOAT }'}, ["body", "schema"]),
])
def test_a_broken_tfdv_pair_is_422_naming_the_field(api, trained_bundle, change, loc):
    client, store, info = api
    body = {"statistics": base64.b64encode((trained_bundle.path / "tfdv" / "statistics.pb").read_bytes()).decode(),
            "schema": (trained_bundle.path / "tfdv" / "schema.pbtxt").read_text(), "by": "dave"}
    r = client.put(f"/models/bikeshare/versions/{info.version}/baseline/tfdv", json=change(body), headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == loc
    assert store.baseline("bikeshare", info.version) is None


# -- bounded answers ---------------------------------------------------------------------------


def test_a_five_megabyte_category_value_is_cut_everywhere_it_shows(api, trained_bundle):
    import pandas as pd

    from monitor.evaluate import evaluate
    from monitor.config import MonitorConfig
    from monitor.keys import WindowKey
    from monitor.stats import Profile
    from monitor.bundle import PREDICTION_SPEC
    from monitor.storage import FindingIn, WindowCounts, WindowDecision

    client, store, info = api
    huge = "w" * 5_000_000
    rows = pd.DataFrame({s.name: [huge if s.name == "weathersit" else None] * 600 for s in trained_bundle.specs})
    rows["temp"] = 15.0
    features = Profile(trained_bundle.specs)
    features.update_frame(rows)
    outputs = Profile((PREDICTION_SPEC,))
    outputs.update_frame(pd.DataFrame({"prediction": [100.0] * 600}))
    report = evaluate(reference=trained_bundle.baseline(), current=features, model="bikeshare",
                      config=MonitorConfig(), mode="skew")
    key = WindowKey("bikeshare", info.version, "", T0_MS + 100 * STEP_MS)
    wid = store.decide_window(WindowDecision(key=key, end_ms=key.start_ms + STEP_MS, counts=WindowCounts(rows=600),
                                             findings=[FindingIn(f) for f in report.findings],
                                             features=features.to_bytes(), outputs=outputs.to_bytes()))
    r = client.get("/findings", params={"window_id": wid})
    assert len(r.content) < 200_000
    messages = [f["message"] for f in r.json()["findings"] if f["feature"] == "weathersit"]
    assert messages and all(len(m) <= 256 for m in messages) and any(MARKER in m for m in messages)
    d = client.get(f"/windows/{wid}/distribution?feature=weathersit")
    assert len(d.content) < 50_000
    (cut,) = [c for c in d.json()["distribution"]["categories"] if c["value"].startswith("www")]
    assert len(cut["value"]) <= 256 and cut["value"].endswith("chars]") and cut["unseen"] is True


def test_openapi_documents_every_route(api):
    client, _, _ = api
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {"/models", "/models/{model}", "/models/{model}/versions/{version}/baseline",
            "/models/{model}/versions/{version}/baseline/tfdv", "/models/{model}/config", "/windows",
            "/windows/{window_id}", "/windows/{window_id}/distribution", "/findings", "/scores",
            "/models/{model}/features/{feature}/history", "/dead-letters", "/dead-letters/examples", "/healthz",
            "/readyz", "/metrics", "/admin/retention"} <= paths
    put = spec["paths"]["/models/{model}/config"]["put"]
    assert put["security"] == [{"HTTPBearer": []}] and {"401", "403", "413", "422", "503"} <= set(put["responses"])


def test_json_of_every_list_route_is_a_dict_with_a_next_cursor(api):
    client, _, _ = api
    for url, key in (("/windows", "windows"), ("/findings", "findings")):
        body = client.get(url).json()
        assert set(body) == {key, "next"}
    assert json.loads(client.get("/scores").text)["scores"]
