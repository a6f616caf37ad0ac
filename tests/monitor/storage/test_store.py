"""The store on SQLite and on PostgreSQL: one transaction per window, partial identities, progress,
checkpoints, dead letters, migrations, and store failures as StoreError."""

import subprocess
import sys
import textwrap

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from monitor.decide import Finding
from monitor.errors import StoreError
from monitor.keys import WindowKey
from monitor.storage import (
    DeadLetterExample,
    FindingIn,
    PartialIn,
    PartialOutcome,
    PartitionState,
    Store,
    StreamState,
    WindowCounts,
    WindowDecision,
)
from monitor.storage.tables import metadata

MIN = 60_000


def _finding(feature="temp", test="ks", verdict="ok", mode="skew", effect=0.05, message="m"):
    return Finding(model="bikeshare", feature=feature, test=test, mode=mode, statistic=1.5, p_value=0.01,
                   q_value=0.02, effect=effect, floor=0.1, significant=verdict != "ok", verdict=verdict,
                   message=message)


def _key(i=0, segment="", version="v1"):
    return WindowKey("bikeshare", version, segment, i * 5 * MIN)


def _decision(i=0, findings=(), **kw):
    key = kw.pop("key", _key(i))
    return WindowDecision(key=key, end_ms=key.start_ms + 5 * MIN, counts=WindowCounts(rows=100, records=4, partials=2),
                          findings=[FindingIn(f) for f in findings] or [FindingIn(_finding())],
                          features=b"features-%d" % i, outputs=b"outputs", **kw)


def _partial(key, first, last, partition=0, topic="skewwatch.predictions"):
    return PartialIn(key=key, end_ms=key.start_ms + 5 * MIN, source_topic=topic, source_partition=partition,
                     first_offset=first, last_offset=last, counts=WindowCounts(rows=10, records=1, partials=1),
                     features=b"f", outputs=b"o", sample=b"[]")


def test_migrations_create_exactly_the_declared_tables(store_url):
    Store(store_url).close()
    engine = create_engine(store_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    engine.dispose()
    assert diff == []


def test_a_decided_window_is_one_transaction(store):
    key = _key(0)
    store.add_partial(_partial(key, 0, 9))

    def boom(tx):
        assert tx.window_id > 0
        raise RuntimeError("alert step failed")

    with pytest.raises(RuntimeError):
        store.decide_window(_decision(0), react=boom)
    assert store.window_at(key) is None
    assert store.list_findings() == []
    assert store.latest_scores() == []
    assert [p.first_offset for p in store.partials_for(key)] == [0]  # nothing consumed

    wid = store.decide_window(_decision(0, findings=[_finding(verdict="warning", effect=0.2)]))
    row = store.window(wid)
    assert (row.rows, row.records, row.partials, row.findings, row.alerting, row.status) == (100, 4, 2, 1, 1, "decided")
    assert store.partials_for(key) == []
    assert store.load_profiles(wid) == (b"features-0", b"outputs")
    assert store.decide_window(_decision(0)) is None  # a second decider changes nothing
    assert store.window(wid).alerting == 1


def test_latest_scores_only_move_forward(store):
    store.decide_window(_decision(2, findings=[_finding(effect=0.3, verdict="warning")]))
    store.decide_window(_decision(1, findings=[_finding(effect=0.01)]))  # an older window decided later
    (score,) = store.latest_scores()
    assert (score.effect, score.verdict, score.end_ms) == (0.3, "warning", 15 * MIN)


def test_history_for_persistence_is_oldest_first_and_per_mode(store):
    for i in range(5):
        store.decide_window(_decision(i, findings=[_finding(effect=i / 10), _finding(mode="drift", effect=1 + i)]))
    history = store.recent_findings(_key(4), mode="skew", family="features", windows=3)
    assert [[f.effect for f in w] for w in history] == [[0.1], [0.2], [0.3]]
    assert store.recent_findings(_key(0), mode="skew", family="features", windows=3) == []
    assert store.previous_window(_key(3)).start_ms == _key(2).start_ms
    assert store.previous_window(_key(0)) is None


def test_findings_by_window_reads_back_what_the_finding_rows_hold(store):
    import math
    from dataclasses import replace

    odd = [replace(_finding(feature="a", verdict="warning"), statistic=math.inf, p_value=math.nan, q_value=None,
                   effect=math.nan, floor=-math.inf),
           Finding(model="bikeshare", feature="b", test="psi", mode="skew", statistic=math.nan, p_value=None,
                   q_value=None, effect=math.nan, floor=0.1, significant=False, verdict="insufficient_data",
                   message="few", min_samples=30),
           _finding(feature="c", mode="drift"), _finding(feature="d", message="x" * 5000)]
    decisions = [_decision(i, findings=odd) for i in range(2)]
    ids = [store.decide_window(d) for d in decisions]
    expected = {}
    for row in store.list_findings(limit=100, newest_first=False):
        expected.setdefault(row.window_id, {}).setdefault((row.mode, row.family), []).append(row.to_finding(raw=True))
    found = store.findings_by_window(ids + [10_000])
    assert found[10_000] == {}
    for i in ids:  # NaN never equals itself: compare the reprs
        assert repr(found[i]) == repr(expected[i])
    assert store.findings_by_window([]) == {}
    for d, i in zip(decisions, ids):  # what a decider keeps of the window it stored, without reading it back
        assert repr(store.history_of(d.key, d.findings)) == repr(expected[i])


def test_messages_are_bounded(store):
    wid = store.decide_window(_decision(0, findings=[_finding(message="x" * 5_000_000)]))
    (row,) = store.list_findings(window_id=wid)
    assert len(row.message) <= 2000 and row.message.endswith("[truncated]")


def test_listing_pages_newest_first(store):
    for i in range(7):
        store.decide_window(_decision(i))
    first = store.list_windows(limit=3)
    second = store.list_windows(limit=3, before=(first[-1].start_ms, first[-1].id))
    assert [w.start_ms // (5 * MIN) for w in first + second] == [6, 5, 4, 3, 2, 1]
    ids = [f.id for f in store.list_findings(limit=3)]
    more = [f.id for f in store.list_findings(limit=3, after_id=ids[-1])]
    assert ids + more == sorted(ids + more, reverse=True) and len(set(ids + more)) == 6


def test_partial_identity_duplicate_overlap_and_late(store):
    key = _key(0)
    assert store.add_partial(_partial(key, 10, 20)) is PartialOutcome.ADDED
    assert store.add_partial(_partial(key, 10, 20)) is PartialOutcome.DUPLICATE
    assert store.add_partial(_partial(key, 15, 30)) is PartialOutcome.OVERLAP
    assert store.add_partial(_partial(key, 21, 30)) is PartialOutcome.ADDED  # adjacent range, new records
    assert store.add_partial(_partial(key, 10, 20, partition=1)) is PartialOutcome.ADDED
    assert [(p.source_partition, p.first_offset) for p in store.partials_for(key)] == [(0, 10), (0, 21), (1, 10)]
    assert store.pending_windows() == [(key, key.start_ms + 5 * MIN)]
    store.decide_window(_decision(0))
    assert store.add_partial(_partial(key, 40, 50)) is PartialOutcome.DECIDED
    assert store.add_late_records(key, 3)
    assert store.window_at(key).late_records == 3
    assert not store.add_late_records(_key(9), 1)


def test_progress_never_moves_closed_through_backwards(store):
    topic = "skewwatch.predictions"
    store.save_progress(topic, PartitionState(0, True, 100, sent_ms=1),
                        [StreamState(0, "bikeshare", 10 * MIN, False, (), 1)])
    # a new owner of the partition restarts from a checkpoint and reports less
    store.save_progress(topic, PartitionState(0, False, 90, sent_ms=2),
                        [StreamState(0, "bikeshare", 5 * MIN, True, (5 * MIN,), 2)])
    partitions, streams = store.progress(topic)
    assert partitions[0].caught_up is False and partitions[0].position == 90
    (s,) = streams
    assert (s.closed_through_ms, s.idle, s.open_windows) == (10 * MIN, True, (5 * MIN,))
    # an older message arriving late changes nothing
    store.save_progress(topic, PartitionState(0, True, 50, sent_ms=1), [StreamState(0, "bikeshare", 0, False, (), 1)])
    assert store.progress(topic)[0][0].position == 90


def test_checkpoints_round_trip(store):
    assert store.load_checkpoint("t", 3) is None
    store.save_checkpoints("t", [(3, 120, '{"a": 1}'), (4, 7, "{}")])
    store.save_checkpoints("t", [(3, 130, '{"a": 2}')])
    assert store.load_checkpoint("t", 3) == (130, '{"a": 2}')
    assert store.load_checkpoint("t", 4) == (7, "{}")


def test_dead_letters_count_each_identity_once_and_keep_recent_examples(store):
    letters = [DeadLetterExample("late", "bikeshare", "t", 0, i, f"#{i}", i) for i in range(8)]
    assert store.count_dead_letters(letters, keep_examples=5) == 8
    # the same dead letters again (a collector re-read its partition after a crash), in another order
    assert store.count_dead_letters(letters[::-1] + [DeadLetterExample("not_json", "", "t", 1, 3, "x", 9)]) == 1
    counts = {(c.reason, c.model): c.count for c in store.dead_letter_counts()}
    assert counts == {("late", "bikeshare"): 8, ("not_json", ""): 1}
    assert [e.offset for e in store.dead_letter_examples("late")] == [7, 6, 5, 4, 3]
    assert store.forget_dead_letter_identities(before_ms=store.now() + 1) == 9


def test_a_failed_window_is_kept_with_its_error_and_not_retried(store):
    key = _key(0)
    store.add_partial(_partial(key, 0, 1))
    wid = store.record_failed_window(key, key.start_ms + 5 * MIN, WindowCounts(rows=10), "ValueError: boom")
    row = store.window(wid)
    assert (row.status, row.error) == ("failed", "ValueError: boom")
    assert store.pending_windows() == []
    assert store.decide_window(_decision(0)) is None


def test_a_newer_schema_and_a_first_release_file_are_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.sqlite3'}"
    Store(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="newer than this skewwatch"):
        Store(url)
    legacy = tmp_path / "legacy.sqlite3"
    with create_engine(f"sqlite:///{legacy}").begin() as conn:
        conn.execute(text("CREATE TABLE windows (id INTEGER PRIMARY KEY)"))
        conn.execute(text("PRAGMA user_version = 2"))
    with pytest.raises(StoreError, match="first skewwatch release"):
        Store(f"sqlite:///{legacy}")
    assert inspect(create_engine(f"sqlite:///{legacy}")).get_table_names() == ["windows"]  # untouched


def test_a_locked_sqlite_store_raises_store_error_not_a_crash(tmp_path):
    path = tmp_path / "locked.sqlite3"
    Store(f"sqlite:///{path}").close()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sqlite3, sys, time
        conn = sqlite3.connect({str(path)!r}, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        print("locked", flush=True)
        sys.stdin.readline()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with Store(f"sqlite:///{path}", busy_timeout_s=0.3) as store:
            with pytest.raises(StoreError, match="locked"):
                store.decide_window(_decision(0))
            holder.stdin.write("\n")
            holder.stdin.flush()
            holder.wait(10)
            assert store.decide_window(_decision(0)) is not None  # works again once released
    finally:
        holder.kill()


def test_two_processes_migrating_at_once_both_succeed(tmp_path):
    url = f"sqlite:///{tmp_path / 'race.sqlite3'}"
    code = f"from monitor.storage import Store; Store({url!r}).close(); print('ok')"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [o[0].strip() for o in outs] == ["ok"] * 3, outs
