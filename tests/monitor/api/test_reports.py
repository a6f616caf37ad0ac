"""GET /reports/{window_id}: Evidently over the window's row sample against the training sample, with
skewwatch's scores, built once and then served from the cache."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from monitor.api import create_app
from monitor.keys import WindowKey
from monitor.storage import WindowCounts, WindowDecision
from tests.monitor.api.conftest import make_settings
from tests.monitor.api.populate import STEP_MS, T0_MS


def test_a_report_is_built_once_then_cached(api, tmp_path):
    client, _, info = api
    wid = info.buggy_ids[0]
    first = client.get(f"/reports/{wid}")
    assert first.status_code == 200 and first.headers["x-skewwatch-report"] == "built"
    page = first.text
    assert 'id="skewwatch-scores"' in page and "root_" in page  # our scores, then Evidently's dashboard
    critical = re.findall(r'<tr class="critical"><td>skew</td><td>features</td><td>temp</td>', page)
    assert critical
    srcs = re.findall(r'<script src="([^"]+)"', page)
    assert srcs == ["/reports/static/evidently-0.7.23.js"]  # Evidently's library once, from the monitor
    assert len(page) < 2_000_000
    assert client.get(srcs[0]).status_code == 200
    second = client.get(f"/reports/{wid}")
    assert second.headers["x-skewwatch-report"] == "cached" and second.text == page
    assert client.app.state.reports.built == 1
    assert "default-src 'self'" in second.headers["content-security-policy"]
    assert list((tmp_path / "state" / "reports").glob(f"window-{wid}-*.html"))


def test_without_a_sample_the_report_has_skewwatch_scores_only(api):
    client, store, info = api
    key = WindowKey("bikeshare", info.version, "", T0_MS + 50 * STEP_MS)
    profiles = store.load_profiles(info.window_ids[0])
    wid = store.decide_window(WindowDecision(key=key, end_ms=key.start_ms + STEP_MS, counts=WindowCounts(rows=1),
                                             findings=[], features=profiles[0], outputs=profiles[1]))
    r = client.get(f"/reports/{wid}")
    assert r.status_code == 200 and "No row sample is kept" in r.text and "root_" not in r.text
    assert client.get("/reports/999999").status_code == 404


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's, inside Evidently, on +-1.7e308
def test_a_window_of_values_at_the_ends_of_the_float_range_has_its_report_and_distribution(api):
    """A client sent +-1.7e308 (finite JSON numbers): the distribution's edges stepped by inf (NaN edges, the
    histogram refused them: 500) and Evidently failed on the sample (IndexError: 500). Now the distribution
    is drawn and the report shows skewwatch's scores, saying why Evidently's part is missing if it is."""
    import json

    import numpy as np

    from monitor.stats import Profile

    client, store, info = api
    src = info.window_ids[0]
    features, outputs = (Profile.from_bytes(b) for b in store.load_profiles(src))
    sample = json.loads(store.load_sample(src))
    n = len(sample["columns"]["temp"])
    sample["columns"]["temp"] = [(1.7e308, -1.7e308, 21.5)[i % 3] for i in range(n)]
    wild = Profile.empty(features.specs)
    wild.update_instances([{**{s.name: None for s in features.specs}, "temp": v}
                           for v in sample["columns"]["temp"] * 20])
    key = WindowKey("bikeshare", info.version, "", T0_MS + 60 * STEP_MS)
    wid = store.decide_window(WindowDecision(key=key, end_ms=key.start_ms + STEP_MS, counts=WindowCounts(rows=n),
                                             findings=[], features=wild.to_bytes(), outputs=outputs.to_bytes(),
                                             sample=json.dumps(sample).encode(), sample_rows=n))
    r = client.get(f"/reports/{wid}")
    assert r.status_code == 200 and 'id="skewwatch-scores"' in r.text
    assert "root_" in r.text or "Evidently could not build its report on this window" in r.text
    d = client.get(f"/windows/{wid}/distribution", params={"feature": "temp"})
    assert d.status_code == 200
    num = d.json()["distribution"]
    edges = np.array(num["edges"])
    assert np.isfinite(edges).all() and (np.diff(edges) > 0).all() and edges[0] == -1.7e308
    side = num["window"]
    assert side["std"] is not None and side["std"] > 1e308 / 2  # finite: not the overflowed variance's root
    assert sum(side["shares"]) + side["below"] + side["above"] == pytest.approx(1.0, abs=1e-6)


def test_the_cache_keeps_the_newest_reports_only(populated, tmp_path, trained_models_dir):
    store, info = populated
    app = create_app(make_settings(tmp_path, trained_models_dir, report_cache_size=1), store)
    with TestClient(app) as client:
        for wid in info.window_ids[:1]:
            assert client.get(f"/reports/{wid}").headers["x-skewwatch-report"] == "built"
        client.get(f"/reports/{info.window_ids[1]}")
        kept = list((tmp_path / "state" / "reports").glob("window-*.html"))
        assert [p.name.split("-")[1] for p in kept] == [str(info.window_ids[1])]
        assert client.get(f"/reports/{info.window_ids[0]}").headers["x-skewwatch-report"] == "built"
