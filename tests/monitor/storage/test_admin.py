"""The monitor API's side of the store, on SQLite and PostgreSQL: bounded pages, feature histories,
latest windows per stream, configs, uploaded baselines and retention."""

from __future__ import annotations

import pytest

from monitor.decide import Finding
from monitor.keys import WindowKey
from monitor.storage import FindingIn, Store, WindowCounts, WindowDecision
from monitor.storage.admin import FindingFilter, RetentionPolicy, WindowFilter

MIN = 60_000
DAY = 86_400_000


def _finding(feature="temp", test="ks", mode="skew", verdict="ok", effect=0.05):
    return Finding(model="bikeshare", feature=feature, test=test, mode=mode, statistic=1.0, p_value=0.2, q_value=0.3,
                   effect=effect, floor=0.1, significant=verdict != "ok", verdict=verdict, message="m")


def _decide(store, i, *, version="v1", segment="", drift=False, ref=None, features=("temp", "hum"),
            tests=("ks", "psi"), alerting_feature=None):
    key = WindowKey("bikeshare", version, segment, i * 5 * MIN)
    found = []
    for f in features:
        for t in tests:
            verdict = "critical" if f == alerting_feature else "ok"
            found.append(FindingIn(_finding(f, t, "skew", verdict, effect=i / 100)))
            if drift:
                found.append(FindingIn(_finding(f, t, "drift", effect=i / 50), reference_window_id=ref))
    return store.decide_window(WindowDecision(key=key, end_ms=key.start_ms + 5 * MIN, counts=WindowCounts(rows=10),
                                              findings=found, features=b"f%d" % i, outputs=b"o", sample=b"{}",
                                              sample_rows=1))


def _all_pages(fetch, **kw):
    rows, after, pages = [], None, 0
    while True:
        page = fetch(after=after, **kw)
        rows += page.rows
        pages += 1
        if page.next is None:
            return rows, pages
        after = page.next


def test_window_pages_examine_a_bounded_stretch_and_still_reach_everything(store):
    ids = []
    for i in range(30):
        ids.append(_decide(store, i, drift=i % 3 == 0, ref=ids[-1] if ids else None))
    # only every third window has drift findings: with scan=4 some pages come back short or empty
    rows, pages = _all_pages(lambda **kw: store.page_windows(WindowFilter(mode="drift"), scan=4, limit=3, **kw))
    assert [r.id for r in rows] == [ids[i] for i in range(29, -1, -1) if i % 3 == 0]
    assert pages >= 30 // 4
    plain, _ = _all_pages(lambda **kw: store.page_windows(WindowFilter(model="bikeshare"), limit=7, **kw))
    assert [r.id for r in plain] == ids[::-1]
    since = store.page_windows(WindowFilter(since_ms=20 * 5 * MIN, until_ms=22 * 5 * MIN)).rows
    assert [r.start_ms for r in since] == [21 * 5 * MIN, 20 * 5 * MIN]


def test_finding_pages_follow_one_window_one_feature_or_everything(store):
    ids = [_decide(store, i, alerting_feature="hum" if i == 4 else None) for i in range(6)]
    one = store.page_findings(FindingFilter(window_id=ids[2])).rows
    assert {(f.feature, f.test) for f in one} == {("temp", "ks"), ("temp", "psi"), ("hum", "ks"), ("hum", "psi")}
    feature, _ = _all_pages(lambda **kw: store.page_findings(FindingFilter(model="bikeshare", feature="temp"),
                                                             limit=5, **kw))
    assert [f.start_ms for f in feature] == sorted((f.start_ms for f in feature), reverse=True)
    assert len(feature) == 12 and {f.feature for f in feature} == {"temp"}
    critical, pages = _all_pages(lambda **kw: store.page_findings(FindingFilter(verdict="critical"), scan=3, limit=2,
                                                                  **kw))
    assert {(f.window_id, f.feature) for f in critical} == {(ids[4], "hum")} and len(critical) == 2
    assert pages == 8  # 24 findings, 3 examined per page
    everything, _ = _all_pages(lambda **kw: store.page_findings(limit=7, **kw))
    assert [f.id for f in everything] == sorted((f.id for f in everything), reverse=True) and len(everything) == 24


def test_feature_history_is_every_score_of_one_feature(store):
    for i in range(4):
        _decide(store, i, drift=True)
    page = store.feature_history("bikeshare", "hum", limit=100)
    assert {(f.mode, f.test) for f in page.rows} == {("skew", "ks"), ("skew", "psi"), ("drift", "ks"), ("drift", "psi")}
    assert len(page.rows) == 16 and page.next is None
    ks = store.feature_history("bikeshare", "hum", test="ks", mode="drift").rows
    assert [f.effect for f in ks] == [0.06, 0.04, 0.02, 0.0]


def test_latest_window_of_each_stream(store):
    _decide(store, 1)
    _decide(store, 2)
    _decide(store, 1, version="v2")
    _decide(store, 3, segment="weekend")
    latest = store.latest_windows()
    assert [(w.model_version, w.segment, w.start_ms // (5 * MIN)) for w in latest] == [
        ("v1", "", 2), ("v1", "weekend", 3), ("v2", "", 1)]
    assert store.latest_windows(model="other") == []
    store.record_failed_window(WindowKey("bikeshare", "v1", "", 9 * 5 * MIN), 10 * 5 * MIN, WindowCounts(rows=1), "boom")
    assert store.latest_windows()[0].start_ms == 2 * 5 * MIN  # a newer failed window is not the stream's latest
    assert store.scores() == store.latest_scores() and len(store.scores()) == 3 * 4  # streams x (features x tests)


def test_configs_and_baselines_round_trip(store):
    assert store.monitor_config("bikeshare") is None
    store.put_monitor_config("bikeshare", {"floors": {"psi": 0.3}}, by="alice")
    row = store.put_monitor_config("bikeshare", {"floors": {"psi": 0.4}}, by="bob")
    assert store.monitor_config("bikeshare") == row and row.document == {"floors": {"psi": 0.4}}
    assert [c.model for c in store.monitor_configs()] == ["bikeshare"]
    assert store.delete_monitor_config("bikeshare") and not store.delete_monitor_config("bikeshare")
    saved = store.save_baseline("bikeshare", "v1", statistics=b"\x00\x01" * 10, schema="feature {}", features=3,
                                by="carol")
    assert store.baseline("bikeshare", "v1") == saved
    (listed,) = store.baselines("bikeshare")
    assert (listed.sha256, listed.statistics) == (saved.sha256, b"")


@pytest.fixture
def clocked(store_url):
    now = {"ms": 100 * DAY}
    with Store(store_url, clock=lambda: now["ms"]) as store:
        yield store, now


def test_retention_deletes_by_decision_time_and_keeps_what_is_still_needed(clocked):
    store, now = clocked
    ids = []
    for i in range(10):  # one window decided per day, days 100..109
        now["ms"] = (100 + i) * DAY
        ids.append(_decide(store, i, drift=i > 0, ref=ids[-1] if ids else None))
    now["ms"] = 110 * DAY
    # the newest window (ids[9]) and the window it was compared with (ids[8]) are kept whatever the age
    done = store.enforce_retention(RetentionPolicy(windows_ms=DAY // 2), batch=3)
    assert done.windows == 8 and done.protected == 2
    assert [w.id for w in store.page_windows().rows] == [ids[9], ids[8]]
    assert store.load_profiles(ids[8]) is not None and store.load_profiles(ids[9]) is not None
    assert {s.window_id for s in store.latest_scores()} == {ids[9]}
    assert store.page_findings(FindingFilter(window_id=ids[3])).rows == []


def test_findings_and_profiles_can_go_before_their_windows(clocked):
    store, now = clocked
    ids = []
    for i in range(6):
        now["ms"] = (100 + i) * DAY
        ids.append(_decide(store, i))
    now["ms"] = 106 * DAY
    done = store.enforce_retention(RetentionPolicy(findings_ms=int(3.5 * DAY), profiles_ms=int(1.5 * DAY)))
    assert done.windows == 0 and done.findings == 3 * 4 and done.profiles == 5 and done.samples == 5
    assert len(store.page_windows().rows) == 6
    assert [bool(store.page_findings(FindingFilter(window_id=w)).rows) for w in ids] == [False] * 3 + [True] * 3
    assert [store.load_profiles(w) is not None for w in ids] == [False] * 5 + [True]
    assert store.load_sample(ids[0]) is None and store.load_sample(ids[5]) == b"{}"
    again = store.enforce_retention(RetentionPolicy(findings_ms=int(3.5 * DAY), profiles_ms=int(1.5 * DAY)))
    assert again.to_dict() == {"windows": 0, "findings": 0, "profiles": 0, "samples": 0, "protected": 0}


def test_the_protect_hook_keeps_pinned_references(clocked):
    store, now = clocked
    ids = []
    for i in range(4):
        now["ms"] = (100 + i) * DAY
        ids.append(_decide(store, i))
    now["ms"] = 200 * DAY
    store.enforce_retention(RetentionPolicy(windows_ms=DAY), protect=lambda conn: [ids[0]])
    assert sorted(w.id for w in store.page_windows().rows) == [ids[0], ids[3]]


def test_forever_means_forever(clocked):
    store, now = clocked
    _decide(store, 0)
    now["ms"] = 10_000 * DAY
    assert RetentionPolicy.from_days(windows=0, findings=0, profiles=0) == RetentionPolicy()
    assert store.enforce_retention(RetentionPolicy()).to_dict()["windows"] == 0
    assert len(store.page_windows().rows) == 1
