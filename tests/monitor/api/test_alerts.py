"""Alerts and silences through the API, over alerts raised by the short run's alert engine."""

from __future__ import annotations

import pytest

from monitor.timeutil import format_instant
from tests.monitor.api.conftest import AUTH


def test_alerts_list_filter_page_and_read(api):
    client, store, _ = api
    stored = store.list_alerts()
    assert {a.state for a in stored} >= {"firing"}
    body = client.get("/alerts").json()
    assert [a["fingerprint"] for a in body["alerts"]] == [a.fingerprint for a in stored] and body["next"] is None
    firing = client.get("/alerts", params={"state": "firing"}).json()["alerts"]
    assert firing and {a["state"] for a in firing} == {"firing"}
    assert all(a["report_url"] == f"/reports/{a['window_id']}" for a in firing)
    pages, cursor = [], None
    while True:
        page = client.get("/alerts", params={"limit": 1, **({"cursor": cursor} if cursor else {})}).json()
        pages += [a["fingerprint"] for a in page["alerts"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == [a.fingerprint for a in stored]
    one = client.get(f"/alerts/{firing[0]['fingerprint']}").json()
    assert one == firing[0]
    assert client.get("/alerts/0000000000000000").status_code == 404
    assert client.get("/alerts", params={"state": "open"}).status_code == 422


def test_acknowledge_then_resolve(api):
    client, store, _ = api
    fp = store.list_alerts(state="firing")[0].fingerprint
    url = f"/alerts/{fp}/acknowledge"
    assert client.post(url, json={"by": "erin", "duration": "2h"}).status_code == 401
    r = client.post(url, json={"by": "erin", "duration": "2h", "comment": "looking"}, headers=AUTH)
    assert r.status_code == 200, r.text
    acked = r.json()
    assert (acked["acknowledged"], acked["acknowledged_by"], acked["acknowledged_comment"]) == (True, "erin", "looking")
    assert acked["acknowledged_until_ms"] == pytest.approx(store.now() + 2 * 3_600_000, abs=60_000)
    assert [a["fingerprint"] for a in client.get("/alerts?state=acknowledged").json()["alerts"]] == [fp]
    resolved = client.post(f"/alerts/{fp}/resolve", json={"by": "erin"}, headers=AUTH).json()
    assert (resolved["state"], resolved["resolved_by"]) == ("resolved", "erin")
    again = client.post(url, json={"by": "erin", "duration": "2h"}, headers=AUTH)
    assert again.status_code == 409 and "resolved" in again.json()["detail"]


@pytest.mark.parametrize("body, loc", [
    ({"by": "x", "until": "2000-01-01T00:00:00Z"}, ["body", "until"]),  # in the past
    ({"by": "x", "until": "0001-01-01T00:00:00+01:00"}, ["body", "until"]),  # outside the range
    ({"by": "x", "duration": "soon"}, ["body", "duration"]),
    ({"by": "x"}, ["body"]),  # neither until nor duration
    ({"by": "", "duration": "1h"}, ["body", "by"]),
])
def test_a_bad_acknowledgement_is_422_and_changes_nothing(api, body, loc):
    client, store, _ = api
    fp = store.list_alerts(state="firing")[0].fingerprint
    r = client.post(f"/alerts/{fp}/acknowledge", json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][: len(loc)] == loc
    assert not store.get_alert(fp).acknowledged


def test_silences_create_list_and_expire(api):
    client, store, _ = api
    ends = format_instant(store.now() + 3_600_000)
    body = {"matchers": ["feature=temp", {"name": "mode", "op": "=~", "value": "skew|drift"}], "ends": ends,
            "created_by": "frank", "comment": "known client bug"}
    assert client.post("/silences", json=body).status_code == 401
    r = client.post("/silences", json=body, headers=AUTH)
    assert r.status_code == 201, r.text
    silence = r.json()
    assert silence["state"] == "active" and silence["ends"] == ends
    muted = [a for a in client.get("/alerts").json()["alerts"] if silence["id"] in a["silenced_by"]]
    assert muted and {a["feature"] for a in muted} == {"temp"}
    now = format_instant(store.now()).replace("+", "%2B")
    assert [s["id"] for s in client.get(f"/silences?active_at={now}").json()["silences"]] == [silence["id"]]
    expired = client.post(f"/silences/{silence['id']}/expire", headers=AUTH).json()
    assert expired["state"] == "expired"
    later = format_instant(store.now() + 1000).replace("+", "%2B")
    assert client.get(f"/silences?active_at={later}").json()["silences"] == []
    assert client.post("/silences/nope/expire", headers=AUTH).status_code == 404
    second = client.post("/silences", json={**body, "matchers": ["feature=hum"]}, headers=AUTH).json()
    page = client.get("/silences?limit=1").json()
    rest = client.get(f"/silences?limit=1&cursor={page['next']}").json()
    assert len(page["silences"]) == len(rest["silences"]) == 1 and rest["next"] is None
    assert {s["id"] for s in page["silences"] + rest["silences"]} == {silence["id"], second["id"]}


@pytest.mark.parametrize("change, loc", [
    ({"matchers": []}, ["body", "matchers"]),
    ({"matchers": ["not a matcher"]}, ["body", "matchers"]),
    ({"matchers": ["feature=~.*"]}, ["body", "matchers"]),  # would mute everything
    ({"ends": "2000-01-01T00:00:00Z"}, ["body", "ends"]),  # in the past
    ({"ends": None}, ["body"]),
])
def test_a_bad_silence_is_422(api, change, loc):
    client, store, _ = api
    body = {"matchers": ["feature=temp"], "ends": format_instant(store.now() + 3_600_000), "created_by": "g",
            **change}
    body = {k: v for k, v in body.items() if v is not None}
    r = client.post("/silences", json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][: len(loc)] == loc
    assert store.list_silences() == []


def test_metrics_count_firing_alerts(api):
    from prometheus_client.parser import text_string_to_metric_families

    client, store, _ = api
    fams = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    got = {(s.labels["model"], s.labels["severity"]): s.value for s in fams["skewwatch_alerts_firing"].samples}
    firing = store.list_alerts(state="firing")
    assert got[("bikeshare", "critical")] == sum(a.severity == "critical" for a in firing)
    assert ("bikeshare", "warning") in got
