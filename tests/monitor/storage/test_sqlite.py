"""Store: round trips, idempotent saves, filters, latest scores against an oracle, schema, processes."""

import json
import math
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from monitor.errors import StatisticsError
from monitor.storage import SCHEMA_VERSION, Store

T0 = datetime(2012, 3, 1, 8, 0, tzinfo=timezone.utc)
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "state" / "skewwatch.sqlite3") as s:
        yield s


def test_save_and_read_back_json_safe_rows(store, finding, window_kw):
    wid = store.save_window(**window_kw(0, rows=97, late=2, invalid=3),
                            findings=[finding("temp", "ks", "critical", effect=0.4, q_value=1e-9),
                                      finding("hum", "psi", "ok", q_value=None, p_value=None)])
    (w,) = store.list_windows()
    assert w.to_dict() == {
        "id": wid, "model": "bikeshare", "model_version": "v1", "mode": "drift",
        "window_start": "2012-03-01T08:00:00.000000Z", "window_end": "2012-03-01T08:05:00.000000Z",
        "rows": 97, "late_records": 2, "invalid_records": 3, "saved_at": w.saved_at, "findings": 2, "alerting": 1,
    }
    fs = store.list_findings()
    assert [(f.feature, f.test, f.verdict, f.alerting, f.q_value, f.window_id) for f in fs] == [
        ("hum", "psi", "ok", False, None, wid), ("temp", "ks", "critical", True, 1e-9, wid)]
    assert fs[1].to_dict()["effect"] == 0.4 and fs[1].to_dict()["window_end"] == "2012-03-01T08:05:00.000000Z"
    json.dumps([r.to_dict() for r in [*store.list_windows(), *fs, *store.latest_scores()]], allow_nan=False)


def test_resaving_a_window_replaces_it_and_keeps_its_id(store, finding, window_kw):
    first = store.save_window(**window_kw(0, rows=10), findings=[finding("temp", "ks", "warning"),
                                                                  finding("hum", "ks", "ok")])
    other = store.save_window(**window_kw(1), findings=[finding("temp", "ks")])
    again = store.save_window(**window_kw(0, rows=12), findings=[finding("temp", "ks", "critical")])
    assert again == first != other
    windows = store.list_windows()
    assert [(w.id, w.rows, w.findings) for w in windows] == [(other, 100, 1), (first, 12, 1)]
    assert [(f.feature, f.verdict) for f in store.list_findings(window_id=first)] == [("temp", "critical")]
    # the key is (model, model_version, mode, window_start): these are distinct windows
    ids = {store.save_window(**window_kw(0, model_version="v2"), findings=[]),
           store.save_window(**window_kw(0, mode="skew"), findings=[]),
           store.save_window(**window_kw(0, model="other"), findings=[])}
    assert len(ids | {first, other}) == 5


def test_window_filters_and_order(store, window_kw):
    for i in range(6):
        store.save_window(**window_kw(i, model="a" if i % 2 else "b"), findings=[])
    store.save_window(**window_kw(2, model="a", mode="skew"), findings=[])
    starts = [w.window_start[11:16] for w in store.list_windows()]
    assert starts == ["08:25", "08:20", "08:15", "08:10", "08:10", "08:05", "08:00"]
    assert {w.model for w in store.list_windows(model="a")} == {"a"} and len(store.list_windows(model="a")) == 4
    assert [w.mode for w in store.list_windows(model="a", mode="skew")] == ["skew"]
    assert [w.window_start[11:16] for w in store.list_windows(since=T0 + timedelta(minutes=15))] == [
        "08:25", "08:20", "08:15"]
    since_other_tz = datetime(2012, 3, 1, 9, 15, tzinfo=timezone(timedelta(hours=1)))  # 08:15 UTC
    assert len(store.list_windows(since=since_other_tz)) == 3
    assert len(store.list_windows(limit=2)) == 2
    assert store.list_windows(model="nobody") == []


def test_finding_filters(store, finding, window_kw):
    w0 = store.save_window(**window_kw(0), findings=[finding("temp", "ks", "critical"), finding("hum", "ks", "ok")])
    w1 = store.save_window(**window_kw(1), findings=[finding("temp", "ks", "warning"), finding("temp", "psi", "ok")])
    store.save_window(**window_kw(1, model="other"), findings=[finding("temp", "ks", "critical", model="other")])
    assert {(f.model, f.window_id) for f in store.list_findings(model="bikeshare", feature="temp")} == {
        ("bikeshare", w0), ("bikeshare", w1)}
    assert [(f.model, f.verdict) for f in store.list_findings(verdict="critical")] == [
        ("other", "critical"), ("bikeshare", "critical")]
    assert [f.test for f in store.list_findings(window_id=w1)] == ["ks", "psi"]
    assert [f.window_id for f in store.list_findings(model="bikeshare")][:2] == [w1, w1]  # newest window first
    assert len(store.list_findings(limit=1)) == 1
    assert store.list_findings(mode="skew") == []


def test_latest_scores_match_an_oracle(store, finding):
    """Random saves (with replays) against a plain-Python reconstruction of 'the latest finding'."""
    rng = np.random.default_rng(7)
    saved: dict[tuple, dict] = {}  # window key -> {"id", "end", "findings"}
    for _ in range(120):
        model, version, mode = rng.choice(["m1", "m2"]), rng.choice(["v1", "v2"]), rng.choice(["skew", "drift"])
        i = int(rng.integers(0, 15))
        start = T0 + i * timedelta(minutes=5)
        fs = [finding(feat, test, str(rng.choice(["ok", "warning", "critical"])), model=model, mode=mode,
                      effect=float(rng.random()), q_value=None if test == "psi" else float(rng.random()))
              for feat in ("temp", "hum", "season") for test in ("ks", "psi") if rng.random() < 0.6]
        wid = store.save_window(model=model, model_version=version, mode=mode, window_start=start,
                                window_end=start + timedelta(minutes=5), rows=1, late_records=0, invalid_records=0,
                                findings=fs)
        key = (model, version, mode, start)
        assert saved.get(key, {"id": wid})["id"] == wid
        saved[key] = {"id": wid, "end": start + timedelta(minutes=5), "findings": fs}
    expected: dict[tuple, tuple] = {}
    for (model, version, mode, _), w in saved.items():
        for f in w["findings"]:
            k = (f.model, f.feature, f.test, f.mode)
            rank = (w["end"], w["id"])
            if k not in expected or rank > expected[k][0]:
                expected[k] = (rank, version, f)
    scores = store.latest_scores()
    assert len(scores) == len(expected) and len(scores) > 10
    for s in scores:
        (end, wid), version, f = expected[(s.model, s.feature, s.test, s.mode)]
        assert (s.window_id, s.model_version, s.effect, s.q_value, s.verdict, s.alerting) == (
            wid, version, f.effect, f.q_value, f.verdict, f.alerting)


def test_window_summary_counts_per_model_and_mode(store, window_kw):
    for i in range(3):
        store.save_window(**window_kw(i, rows=10 + i, late=i, invalid=2 * i), findings=[])
    store.save_window(**window_kw(0, mode="skew"), findings=[])
    summary = {(s.model, s.mode): s for s in store.window_summary()}
    d = summary["bikeshare", "drift"]
    assert (d.windows, d.last_rows, d.last_late_records, d.last_invalid_records, d.last_window_end) == (
        3, 12, 2, 4, "2012-03-01T08:15:00.000000Z")
    assert summary["bikeshare", "skew"].windows == 1


def test_non_finite_numbers_read_back_as_none(store, finding, window_kw):
    store.save_window(**window_kw(0), findings=[finding(statistic=math.inf, effect=math.nan, q_value=math.nan),
                                                finding("hum", statistic=np.float64(2.5), effect=np.float32(0.25))])
    temp, = store.list_findings(feature="temp")
    assert (temp.statistic, temp.effect, temp.q_value) == (None, None, None)
    hum, = store.list_findings(feature="hum")
    assert (hum.statistic, hum.effect) == (2.5, 0.25) and type(hum.statistic) is float


@pytest.mark.parametrize("change, field", [
    (dict(window_start=T0.replace(tzinfo=None)), "window_start: must carry a UTC offset"),
    (dict(window_end=T0), "window_end: .* is not after window_start"),
    (dict(rows=-1), "rows: must be a non-negative integer"),
    (dict(late_records=1.5), "late_records"),
    (dict(mode="shift"), "mode: must be one of skew, drift"),
    (dict(model=""), "model: must be a non-empty string"),
])
def test_bad_windows_are_refused(store, window_kw, change, field):
    with pytest.raises(StatisticsError, match=field):
        store.save_window(**{**window_kw(0), **change}, findings=[])
    assert store.list_windows() == []


@pytest.mark.parametrize("bad, field", [
    (dict(verdict="bad"), r"findings\[1\]\.verdict"),
    (dict(mode="skew"), r"findings\[1\]\.mode"),
    (dict(model="other"), r"findings\[1\]\.model"),
    (dict(effect="big"), r"findings\[1\]\.effect: must be a number"),
    (dict(feature=""), r"findings\[1\]\.feature"),
    (dict(test="psi", feature="temp"), r"findings\[1\]: duplicate of findings\[0\]"),
])
def test_a_bad_finding_rejects_the_window_atomically(store, finding, window_kw, bad, field):
    good = store.save_window(**window_kw(0), findings=[finding("temp", "psi", "warning")])
    fields = {**finding("hum", "ks", "ok").to_dict(), **bad}  # any object with the attributes, valid or not
    f = SimpleNamespace(**fields, alerting=fields["verdict"] != "ok")
    with pytest.raises(StatisticsError, match=field):
        store.save_window(**window_kw(0, rows=1), findings=[finding("temp", "psi", "critical"), f])
    (w,) = store.list_windows()
    assert (w.id, w.rows) == (good, 100)  # the earlier save is intact
    assert [f.verdict for f in store.list_findings()] == ["warning"]


def test_filter_arguments_are_checked(store):
    for call, field in ((lambda: store.list_windows(limit=0), "limit"),
                        (lambda: store.list_findings(verdict="fine"), "verdict"),
                        (lambda: store.list_windows(since=T0.replace(tzinfo=None)), "since"),
                        (lambda: store.list_alerts(state="open"), "state")):
        with pytest.raises(StatisticsError, match=field):
            call()


@dataclass(frozen=True)
class _Alert:
    fingerprint: str
    state: str
    labels: dict
    severity: str
    summary: str
    findings: tuple
    starts_at: datetime
    ends_at: datetime | None
    updated_at: datetime
    healthy_windows: int = 0
    notified_status: str | None = "firing"
    notified_severity: str | None = "warning"
    last_notified_at: datetime | None = T0


def test_alerts_round_trip_replace_and_filter(store):
    labels = {"model": "m", "feature": "temp", "mode": "drift", "severity": "warning"}
    a = _Alert("aaaa", "firing", labels, "warning", "s", ({"test": "ks", "effect": 0.2},), T0, None, T0)
    b = _Alert("bbbb", "resolved", {**labels, "feature": "hum"}, "critical", "r", (), T0, T0 + timedelta(hours=1),
               T0 + timedelta(hours=1), healthy_windows=2, notified_status="resolved", last_notified_at=None)
    store.save_alert(a)
    store.save_alert(b)
    rows = store.list_alerts()
    assert [r.fingerprint for r in rows] == ["bbbb", "aaaa"]  # most recently updated first
    assert rows[1].to_dict() == {
        "fingerprint": "aaaa", "state": "firing", "labels": labels, "severity": "warning", "summary": "s",
        "findings": [{"test": "ks", "effect": 0.2}], "starts_at": "2012-03-01T08:00:00.000000Z", "ends_at": None,
        "updated_at": "2012-03-01T08:00:00.000000Z", "healthy_windows": 0, "notified_status": "firing",
        "notified_severity": "warning", "last_notified_at": "2012-03-01T08:00:00.000000Z"}
    assert [r.fingerprint for r in store.list_alerts(state="firing")] == ["aaaa"]
    store.save_alert(_Alert("aaaa", "resolved", labels, "warning", "done", (), T0, T0, T0 + timedelta(hours=2)))
    assert store.list_alerts(state="firing") == [] and len(store.list_alerts()) == 2
    with pytest.raises(StatisticsError, match="findings: not JSON-safe"):
        store.save_alert(_Alert("cccc", "firing", labels, "warning", "s", ({"effect": math.inf},), T0, None, T0))
    with pytest.raises(StatisticsError, match="labels.feature"):
        store.save_alert(_Alert("cccc", "firing", {"model": "m"}, "warning", "s", (), T0, None, T0))


def test_schema_is_versioned_wal_and_migrated_once(tmp_path):
    path = tmp_path / "s.sqlite3"
    with Store(path) as s:
        assert s.ping() == SCHEMA_VERSION
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"windows", "findings", "alerts"} <= tables
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StatisticsError, match="newer than this skewwatch"):
        Store(path)


def test_reopening_keeps_data(tmp_path, finding, window_kw):
    path = tmp_path / "s.sqlite3"
    with Store(path) as s:
        wid = s.save_window(**window_kw(0), findings=[finding()])
    with Store(path) as s:
        assert [w.id for w in s.list_windows()] == [wid] and len(s.list_findings()) == 1


def test_close_is_clean_and_final(tmp_path):
    s = Store(tmp_path / "s.sqlite3")
    s.close()
    s.close()
    assert s.closed
    with pytest.raises(StatisticsError, match="closed"):
        s.list_windows()


_WRITER = textwrap.dedent("""
    import sys
    from datetime import datetime, timedelta, timezone
    from types import SimpleNamespace
    from monitor.storage import Store

    t0 = datetime(2012, 3, 1, tzinfo=timezone.utc)
    with Store(sys.argv[1]) as store:
        for i in range(int(sys.argv[2])):
            fs = [SimpleNamespace(model="m", feature=f"f{j}", test="ks", mode="drift", statistic=1.0, p_value=0.1,
                                  q_value=0.1, effect=0.1, floor=0.2, significant=False, verdict="ok", alerting=False,
                                  message="") for j in range(5)]
            start = t0 + timedelta(minutes=5 * i)
            store.save_window(model="m", model_version="v", mode="drift", window_start=start,
                              window_end=start + timedelta(minutes=5), rows=i, late_records=0, invalid_records=0,
                              findings=fs)
""")


def test_one_writer_process_and_a_reader_never_see_half_a_window(tmp_path):
    path = tmp_path / "shared.sqlite3"
    reader = Store(path)  # created first, as the API would be
    n = 40
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(n)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen, reads = 0, 0
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            rows = reader.list_windows(limit=1000)
            reads += 1
            assert all(w.findings == 5 for w in rows)  # a window is visible only with all its findings
            assert len(rows) >= seen  # committed windows never disappear
            seen = len(rows)
            if writer.poll() is not None and seen == n:
                break
        assert writer.wait(timeout=60) == 0, writer.stderr.read()
        assert seen == n and reads >= 1
        assert sorted(w.rows for w in reader.list_windows(limit=1000)) == list(range(n))
    finally:
        if writer.poll() is None:
            writer.kill()
        reader.close()


def test_has_window_answers_for_any_mode_of_a_saved_window(store, window_kw):
    kw = window_kw(3, model_version="v9", mode="skew")
    assert not store.has_window("bikeshare", "v9", kw["window_start"])
    store.save_window(**kw, findings=[])
    assert store.has_window("bikeshare", "v9", kw["window_start"])
    assert not store.has_window("bikeshare", "v8", kw["window_start"])
    assert not store.has_window("bikeshare", "v9", kw["window_end"])


def test_window_profiles_round_trip_and_replace(store, window_kw):
    kw = window_kw(1)
    assert store.load_profiles("bikeshare", "v1", kw["window_start"]) is None
    store.save_profiles(model="bikeshare", model_version="v1", window_start=kw["window_start"], features=b"f1", predictions=b"p1")
    store.save_profiles(model="bikeshare", model_version="v1", window_start=kw["window_start"], features=b"f2", predictions=b"p2")
    assert store.load_profiles("bikeshare", "v1", kw["window_start"]) == (b"f2", b"p2")
    stored = store.save_window(**kw, findings=[])
    (row,) = [w for w in store.list_windows() if w.id == stored]
    assert store.load_profiles("bikeshare", "v1", row.window_start) == (b"f2", b"p2")  # by the row's own timestamp


def test_a_version_1_store_is_migrated_in_place_keeping_its_rows(tmp_path, window_kw):
    from monitor.storage.schema import MIGRATIONS

    path = tmp_path / "old.sqlite3"
    raw = sqlite3.connect(path, isolation_level=None)
    for statement in [s for s in MIGRATIONS[0].split(";") if s.strip()]:
        raw.execute(statement)
    raw.execute("PRAGMA user_version = 1")
    raw.execute("INSERT INTO windows (model, model_version, mode, window_start, window_end, rows, late_records,"
                " invalid_records, saved_at) VALUES ('m', 'v', 'skew', '2012-01-01T00:00:00.000000Z',"
                " '2012-01-01T00:05:00.000000Z', 5, 0, 0, '2012-01-01T00:06:00.000000Z')")
    raw.close()
    with Store(path) as s:
        assert s.ping() == SCHEMA_VERSION >= 2
        assert [w.rows for w in s.list_windows()] == [5]
        s.save_profiles(model="m", model_version="v", window_start=T0, features=b"x", predictions=b"y")
        assert s.load_profiles("m", "v", T0) == (b"x", b"y")
