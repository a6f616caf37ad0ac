"""Collection scenarios of issue 8 on the embedded broker: several models, partitions and collector
processes, SIGKILL and restarts, rebalances, hostile timestamps, a locked store, a broker restart.

Each compares the windows the scenario stores with those of one uninterrupted collector over the
same records: counts exactly, and per feature the exact parts of the statistics (count, missing,
mean, variance, min, max, category counts).
"""

from __future__ import annotations

import random
import subprocess
from datetime import timedelta
import sys
import textwrap
import threading
import time

import pytest

from skewwatch.broker import EmbeddedBroker, ensure_topic
from tests.collectors.scenario import (
    T0,
    reference_table,
    stop_live,
    Deployment,
    SteadyProducer,
    clone_models,
    encoded,
    produce,
    records,
    version_of,
    wait_windows,
    window_table,
)

pytestmark = [pytest.mark.slow, pytest.mark.broker]

TOPIC = "skewwatch.predictions"


@pytest.fixture(autouse=True)
def _no_collector_outlives_its_test():
    yield
    stop_live()


@pytest.fixture(scope="module")
def models(trained_models_dir, tmp_path_factory):
    return clone_models(trained_models_dir, tmp_path_factory.mktemp("models"), ["alpha", "beta", "gamma"])


def _reference(bootstrap, models, tmp_path, expected):
    """One uninterrupted single-process run over the same records (tests.collectors.scenario.reference_table)."""
    table = reference_table(bootstrap, TOPIC, models, tmp_path)
    assert len(table) == expected
    return table


def _assert_same(got, want):
    assert set(got) == set(want), (sorted(set(want) - set(got))[:5], sorted(set(got) - set(want))[:5])
    for key in want:
        g, w = got[key], want[key]
        assert (g["status"], g["rows"], g["records"], g["invalid"], g["duplicates"]) == \
               (w["status"], w["rows"], w["records"], w["invalid"], w["duplicates"]), key
        assert g["stats"] == w["stats"], key


def test_sigkill_at_five_random_points_of_a_200k_record_stream(models, serving_rows, tmp_path):
    """One collector killed five times mid-stream and restarted: every window as if it never died."""
    rng = random.Random(11)
    version = version_of(models, "alpha")
    recs = records(serving_rows, model="alpha", version=version, windows=40, per_window=5000, window_seconds=60,
                   batch=1, seed=1)
    assert len(recs) == 200_000
    with EmbeddedBroker() as broker:
        ensure_topic(broker.bootstrap_servers, TOPIC, 4)
        d = Deployment(broker.bootstrap_servers, models, tmp_path / "state", "kills",
                       extra={"SKEWWATCH_COLLECTOR_INSTANCE_ID": "kills-0"})
        proc = d.add("collector").start()
        traffic = SteadyProducer(broker.bootstrap_servers, TOPIC, encoded(recs), seconds=40).start()
        start = time.monotonic()
        for at in sorted(rng.uniform(3, 36) for _ in range(5)):
            time.sleep(max(0.0, start + at - time.monotonic()))
            proc.kill()
            proc.start()
        assert traffic.join() == len(recs)
        wait_windows(d.state_dir, 40, timeout=240, deployment=d)
        d.stop_all()
        with d.store() as store:
            got = window_table(store)
        want = _reference(broker.bootstrap_servers, models, tmp_path, 40)
    assert proc.starts == 6
    _assert_same(got, want)
    assert all(w["rows"] == 5000 and w["records"] == 5000 for w in got.values())


def test_three_collectors_six_partitions_three_models_a_kill_and_a_fourth_joining(models, serving_rows, tmp_path):
    names = ["alpha", "beta", "gamma"]
    recs = []
    for i, name in enumerate(names):
        recs += records(serving_rows, model=name, version=version_of(models, name), windows=6, per_window=2500,
                        window_seconds=60, batch=5, seed=10 + i)
    recs.sort(key=lambda r: r.event_time)  # the three models interleaved, as live traffic is
    with EmbeddedBroker() as broker:
        ensure_topic(broker.bootstrap_servers, TOPIC, 6)
        d = Deployment(broker.bootstrap_servers, models, tmp_path / "state", "trio")
        # dynamic membership: on the embedded broker, several static members with a SIGKILL, a restart and a
        # join fell into join storms (a member never assigned again; 4 of 9 runs failed, 0 of 3 without)
        procs = [d.add(f"c{i}").start() for i in range(3)]
        time.sleep(4)  # the group forms
        traffic = SteadyProducer(broker.bootstrap_servers, TOPIC, encoded(recs), seconds=24).start()
        time.sleep(6)
        procs[1].kill()  # mid-window, mid-stream
        time.sleep(3)
        procs[1].start()
        time.sleep(4)
        d.add("c3").start()  # a fourth joins mid-window: a rebalance
        assert traffic.join() == len(recs)
        wait_windows(d.state_dir, 18, timeout=300, deployment=d)
        d.stop_all()
        with d.store() as store:
            got = window_table(store)
        want = _reference(broker.bootstrap_servers, models, tmp_path, 18)
    _assert_same(got, want)
    assert all(w["rows"] == 2500 for w in got.values())


def _consume_all(bootstrap, topic, *, expect, timeout=60):
    """Every message of ``topic`` (value, headers) once ``expect`` have arrived."""
    from confluent_kafka import Consumer, TopicPartition

    from collectors.kafka import topic_partitions

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{time.monotonic_ns()}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "log_level": 3})
    n = topic_partitions(c, topic)
    c.assign([TopicPartition(topic, p, 0) for p in range(n)])
    got, deadline = [], time.monotonic() + timeout
    while len(got) < expect and time.monotonic() < deadline:
        for m in c.consume(500, 0.5):
            if m.error() is None:
                got.append((m.value(), dict(m.headers() or ())))
    c.close()
    return got


def test_hostile_time_two_models_hours_apart_a_backlog_an_idle_partition_and_late_records(models, serving_rows, tmp_path):
    """Windows exactly those of the valid records; nothing closed early; absurd and late records dead-lettered."""
    import orjson

    from monitor.record import encode_record
    from monitor.timeutil import from_datetime

    alpha, beta = version_of(models, "alpha"), version_of(models, "beta")
    five_hours = 5 * 3600
    expected: dict[tuple, int] = {}

    def batch(model, version, w, offset_s, n, tag, shift=0):
        recs = records(serving_rows, model=model, version=version, windows=1, per_window=n, window_seconds=60,
                       batch=5, start=T0 + (w * 60 + offset_s + shift) * timedelta(seconds=1),
                       tag=tag, seed=w * 7 + len(tag))
        return recs

    backlog, live, hostile = [], [], []
    for w in range(5):
        for p in (1, 2):  # a 2-partition backlog, there before any collector runs
            for r in batch("alpha", alpha, w, 0, 200, f"b{p}-"):
                backlog.append((p, r))
        for r in batch("alpha", alpha, w, 0, 300, "live-"):
            live.append((0, r))
        for r in batch("beta", beta, w, 0, 300, "beta-", shift=five_hours):  # the same partition, 5 hours later
            live.append((0, r))
    for p, r in backlog + live:
        key = (r.model_name, r.model_version, from_datetime(r.event_time) // 60_000 * 60_000)
        expected[key] = expected.get(key, 0) + len(r.instances)
    live.sort(key=lambda pr: (pr[1].event_time - timedelta(
        seconds=five_hours if pr[1].model_name == "beta" else 0)))
    # late records for alpha's window 1: one inside the 10 s lateness, one far outside
    late_inside = records(serving_rows, model="alpha", version=alpha, windows=1, per_window=5, window_seconds=60,
                          batch=5, start=T0 + timedelta(seconds=61), tag="late-in-")[0]
    late_outside = records(serving_rows, model="alpha", version=alpha, windows=1, per_window=5, window_seconds=60,
                           batch=5, start=T0 + timedelta(seconds=62), tag="late-out-")[0]
    w1 = (late_inside.model_name, alpha, from_datetime(T0) + 60_000)
    expected[w1] += 5
    msgs = [(p, r.request_id.encode(), encode_record(r)) for p, r in live]
    cut_inside = next(i for i, (p, r) in enumerate(live) if r.model_name == "alpha"
                      and from_datetime(r.event_time) >= from_datetime(T0) + 125_000)
    cut_outside = next(i for i, (p, r) in enumerate(live) if r.model_name == "alpha"
                       and from_datetime(r.event_time) >= from_datetime(T0) + 200_000)
    msgs.insert(cut_outside, (0, b"late-out", encode_record(late_outside)))
    msgs.insert(cut_inside, (0, b"late-in", encode_record(late_inside)))
    for i, stamp in enumerate(["9999-12-31T23:59:59Z", "2100-01-01T00:00:00Z", "1970-01-01T00:00:00Z",
                               "0001-01-01T00:00:00+01:00"]):
        bad = orjson.loads(encode_record(live[0][1]))
        bad["event_time"], bad["request_id"] = stamp, f"absurd-{i}"
        hostile.append(orjson.dumps(bad))
        msgs.insert(len(msgs) // 5 * (i + 1), (0, f"absurd-{i}".encode(), hostile[-1]))
    with EmbeddedBroker() as broker:
        ensure_topic(broker.bootstrap_servers, TOPIC, 4)  # partition 3 never gets a record: idle throughout
        produce(broker.bootstrap_servers, TOPIC, [(p, r.request_id.encode(), encode_record(r)) for p, r in backlog])
        d = Deployment(broker.bootstrap_servers, models, tmp_path / "state", "hostile",
                       extra={"SKEWWATCH_ALLOWED_LATENESS_SECONDS": "10"})
        d.add("collector").start()
        produce(broker.bootstrap_servers, TOPIC, msgs)
        wait_windows(d.state_dir, len(expected), timeout=240, deployment=d)
        dead = _consume_all(broker.bootstrap_servers, "skewwatch.dead-letters", expect=5)
        with d.store() as store:
            windows = store.list_windows(limit=1000)
            counts = {(c.reason, c.model): c.count for c in store.dead_letter_counts()}
        d.stop_all()
    got = {(w.model, w.model_version, w.start_ms): w.rows for w in windows}
    assert got == expected  # every valid record in its window, nothing dropped, nothing early
    assert {w.late_records for w in windows if (w.model, w.model_version, w.start_ms) == w1} == {2}  # 1 kept, 1 too late
    reasons = sorted(h["skewwatch-reason"].decode() for _v, h in dead)
    assert reasons == ["implausible_event_time"] * 4 + ["late"]
    assert sorted(v for v, h in dead if h["skewwatch-reason"] == b"implausible_event_time") == sorted(hostile)
    assert counts == {("implausible_event_time", "alpha"): 4, ("late", "alpha"): 1}


def _bad_messages(rng, valid_template, n):
    """``n`` unusable messages of every dead-letter reason, each unique, with the reason it must get."""
    import orjson

    base = orjson.loads(valid_template)
    out = []
    makers = [
        ("not_utf8", lambda i: b"\xff\xfe" + str(i).encode()),
        ("not_json", lambda i: b"{not json " + str(i).encode()),
        ("invalid", lambda i: orjson.dumps({**base, "request_id": f"x{i}", "columns": {"temp": [1.0] * 7}})),
        ("invalid", lambda i: orjson.dumps({k: v for k, v in {**base, "request_id": f"y{i}"}.items() if k != "model_name"})),
        ("invalid", lambda i: orjson.dumps({**base, "request_id": f"z{i}", "part": 3, "parts": 2})),
        ("invalid", lambda i: orjson.dumps([i])),
        ("newer_schema", lambda i: orjson.dumps({**base, "request_id": f"n{i}", "schema_version": 99})),
        ("implausible_event_time", lambda i: orjson.dumps({**base, "request_id": f"t{i}", "event_time": rng.choice(
            ["9999-12-31T23:59:59Z", "2100-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00",
             "yesterday"])})),
        ("unknown_model", lambda i: orjson.dumps({**base, "request_id": f"m{i}", "model_name": f"ghost-{i}"})),
        ("unknown_version", lambda i: orjson.dumps({**base, "request_id": f"v{i}", "model_version": "19990101T000000Z"})),
        ("too_large", lambda i: b'{"padding": "' + b"x" * 30_000 + str(i).encode() + b'"}'),
    ]
    for i in range(n):
        reason, make = makers[i % len(makers)]
        out.append((reason, make(i)))
    return out


def test_a_fuzz_stream_of_10k_bad_messages_among_valid_ones(models, serving_rows, tmp_path):
    """No crash; windows equal to those of the valid records alone; every bad message dead-lettered with its reason."""
    from monitor.record import encode_record

    rng = random.Random(5)
    version = version_of(models, "alpha")
    valid = records(serving_rows, model="alpha", version=version, windows=5, per_window=2000, window_seconds=60,
                    batch=1, seed=3)
    valid_msgs = encoded(valid)
    bad = _bad_messages(rng, encode_record(valid[0]), 10_000)
    # late and far-ahead records: valid JSON a collector must still refuse, once the stream has moved on
    late = records(serving_rows, model="alpha", version=version, windows=1, per_window=200, window_seconds=60,
                   batch=1, tag="late-", seed=4)
    ahead = [r for i, r in enumerate(records(serving_rows, model="alpha", version=version, windows=1, per_window=200,
                                             window_seconds=60, batch=1, tag="ahead-", seed=6))]
    ahead = [type(r)(r.model_name, r.model_version, r.event_time + timedelta(days=2 + 3 * i),
                     r.request_id, r.instances, r.predictions) for i, r in enumerate(ahead)]
    mixed = list(valid_msgs)
    for reason, value in bad:
        mixed.insert(rng.randrange(len(mixed) + 1), (f"bad-{rng.random()}".encode(), value))
    half = len(mixed) // 2
    for r in late:
        mixed.insert(rng.randrange(half, len(mixed)), (r.request_id.encode(), encode_record(r)))
    for r in ahead:
        mixed.insert(rng.randrange(len(mixed) // 4, half), (r.request_id.encode(), encode_record(r)))
    expected_reasons = sorted([reason for reason, _ in bad] + ["late"] * len(late) + ["event_time_jump"] * len(ahead))
    with EmbeddedBroker() as broker:
        ensure_topic(broker.bootstrap_servers, TOPIC, 4)
        ensure_topic(broker.bootstrap_servers, "clean", 4)
        extra = {"SKEWWATCH_MAX_RECORD_BYTES": "20000", "SKEWWATCH_LOG_LEVEL": "WARNING"}
        fuzz = Deployment(broker.bootstrap_servers, models, tmp_path / "fuzz-state", "fuzz", extra=extra)
        clean = Deployment(broker.bootstrap_servers, models, tmp_path / "clean-state", "clean",
                           extra={**extra, "SKEWWATCH_TOPIC": "clean", "SKEWWATCH_PARTIALS_TOPIC": "clean.partials",
                                  "SKEWWATCH_DEAD_LETTER_TOPIC": "clean.dead"})
        fuzz.add("fuzz").start()
        clean.add("clean").start()
        produce(broker.bootstrap_servers, TOPIC, mixed)
        produce(broker.bootstrap_servers, "clean", valid_msgs)
        wait_windows(clean.state_dir, 5, timeout=240, deployment=clean)
        wait_windows(fuzz.state_dir, 5, timeout=240, deployment=fuzz)
        dead = _consume_all(broker.bootstrap_servers, "skewwatch.dead-letters", expect=len(expected_reasons), timeout=120)
        for d in (fuzz, clean):
            assert all(p.alive for p in d.processes), d.logs()  # no crash, on any input
        with fuzz.store() as s1, clean.store() as s2:
            got, want = window_table(s1), window_table(s2)
            counts = sum(c.count for c in s1.dead_letter_counts())
        fuzz.stop_all()
        clean.stop_all()
    _assert_same(got, want)
    assert sorted(h["skewwatch-reason"].decode() for _v, h in dead) == expected_reasons
    by_value = {v: h["skewwatch-reason"].decode() for v, h in dead}
    assert all(by_value[value] == reason for reason, value in bad)  # unchanged, with its own reason
    assert all(h["skewwatch-source-topic"] == TOPIC.encode() for _v, h in dead)
    assert counts == len(expected_reasons)


def test_a_store_locked_for_30s_then_the_broker_stopped_for_20s(models, serving_rows, tmp_path):
    """The collector stays up and in its group through a locked store (decisions and checkpoints wait
    longer than max.poll.interval) and a broker restart (commits fail, the log is gone); every window
    of the traffic before and after is stored whole."""
    version = version_of(models, "alpha")
    before = records(serving_rows, model="alpha", version=version, windows=6, per_window=1000, window_seconds=60,
                     batch=5, seed=21)
    after = records(serving_rows, model="alpha", version=version, windows=4, per_window=1000, window_seconds=60,
                    batch=5, seed=22, start=T0 + timedelta(minutes=10), tag="after-")
    from monitor.storage import Store
    from skewwatch.broker import free_port

    port = free_port()
    broker = EmbeddedBroker(port=port).start()
    try:
        ensure_topic(broker.bootstrap_servers, TOPIC, 3)
        d = Deployment(broker.bootstrap_servers, models, tmp_path / "state", "outage",
                       extra={"SKEWWATCH_STORE_BUSY_TIMEOUT_SECONDS": "2", "SKEWWATCH_COLLECTOR_METRICS_PORT": str(free_port())})
        proc = d.add("collector").start()
        Store(f"sqlite:///{d.state_dir / 'skewwatch.sqlite3'}").close()  # the schema exists before the lock
        traffic = SteadyProducer(broker.bootstrap_servers, TOPIC, encoded(before), seconds=20).start()
        time.sleep(4)
        holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
            import sqlite3, time
            conn = sqlite3.connect({str(d.state_dir / 'skewwatch.sqlite3')!r}, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            print("locked", flush=True)
            time.sleep(30)
            conn.execute("ROLLBACK")
        """)], stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "locked"
        assert traffic.join() == len(before)
        holder.wait(60)
        wait_windows(d.state_dir, 6, timeout=120, deployment=d)
        assert proc.alive, d.logs()
        broker.stop()
        time.sleep(20)
        assert proc.alive, d.logs()
        broker = EmbeddedBroker(port=port).start()  # memory storage: the topics and offsets are gone
        ensure_topic(broker.bootstrap_servers, TOPIC, 3)
        produce(broker.bootstrap_servers, TOPIC, encoded(after))
        wait_windows(d.state_dir, 10, timeout=180, deployment=d)
        assert proc.alive, d.logs()
        log = proc.log_path.read_text()
        d.stop_all()
    finally:
        broker.stop()
    with d.store() as store:
        windows = store.list_windows(limit=100)
    assert sorted(w.rows for w in windows) == [1000] * 10
    assert all(w.status == "decided" for w in windows)
    assert "store unavailable" in log  # the lock was felt, and survived
    assert "Traceback" not in log


class _FlakySink:
    """An HTTP receiver that misbehaves until ``until`` (``hang``: accepts and never answers; ``fail``: 500),
    then answers 200, recording each body by its Idempotency-Key."""

    def __init__(self, mode: str, until: float) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        sink = self
        self.mode, self.until = mode, until
        self.delivered: dict[str, list[dict]] = {}
        self.refused = 0
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                import json

                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if time.monotonic() < sink.until:
                    with sink._lock:
                        sink.refused += 1
                    if sink.mode == "hang":
                        time.sleep(max(0.0, sink.until - time.monotonic()) + 1)
                        return  # the client gave up long ago: no answer at all
                    self.send_response(500)
                    self.end_headers()
                    return
                with sink._lock:
                    sink.delivered.setdefault(self.headers["Idempotency-Key"], []).append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_hanging_sink_and_a_failing_one_for_a_minute_stall_nothing_and_lose_nothing(models, serving_rows, tmp_path):
    from skewwatch.demo import fahrenheit_bug

    version = version_of(models, "alpha")
    healthy = records(serving_rows, model="alpha", version=version, windows=3, per_window=1000, window_seconds=60,
                      batch=10, seed=31)
    buggy = records([fahrenheit_bug(r) for r in serving_rows], model="alpha", version=version, windows=3,
                    per_window=1000, window_seconds=60, batch=10, seed=32, start=T0 + timedelta(minutes=3), tag="bug-")
    config = tmp_path / "monitor.yaml"
    config.write_text("version: 1\nalerting:\n  route: {receiver: default, group_wait: 1s, group_interval: 2s, "
                      "for_windows: {warning: 1, critical: 1}}\n")
    outage_ends = time.monotonic() + 60
    sinks = [_FlakySink("hang", outage_ends), _FlakySink("fail", outage_ends)]
    try:
        with EmbeddedBroker() as broker:
            ensure_topic(broker.bootstrap_servers, TOPIC, 3)
            d = Deployment(broker.bootstrap_servers, models, tmp_path / "state", "sinks", extra={
                "SKEWWATCH_MONITOR_CONFIG": str(config), "SKEWWATCH_WEBHOOK_URLS": ",".join(s.url for s in sinks),
                "SKEWWATCH_ALERT_REQUEST_TIMEOUT_SECONDS": "2", "SKEWWATCH_ALERT_RETRY_MAX_SECONDS": "5"})
            d.add("collector").start()
            produce(broker.bootstrap_servers, TOPIC, encoded(healthy + buggy))
            wait_windows(d.state_dir, 6, timeout=50, deployment=d)
            decided_before_recovery = time.monotonic() < outage_ends
            assert all(s.delivered == {} for s in sinks)  # nothing got through yet
            deadline = outage_ends + 60
            while time.monotonic() < deadline and not all(s.delivered for s in sinks):
                time.sleep(0.5)
            time.sleep(3)  # any duplicate would arrive by now
            with d.store() as store:
                sent = store.outbox_counts()
                windows = store.list_windows()
            d.stop_all()
    finally:
        for s in sinks:
            s.close()
    assert decided_before_recovery  # consumption and decisions went on at full speed through the outage
    assert all(w.rows == 1000 for w in windows)
    assert all(s.refused > 0 for s in sinks)
    keys = [set(s.delivered) for s in sinks]
    assert keys[0] and keys[0] == keys[1]  # every message reached both, after recovery
    assert all(len(bodies) == 1 for s in sinks for bodies in s.delivered.values())  # exactly once
    assert any(a["labels"]["feature"] == "temp" for s in sinks for b in s.delivered.values() for a in b[0]["alerts"])
    assert sent.get("pending", 0) == 0 and sent.get("failed", 0) == 0
