"""The partial stage for one partition, without Kafka: windows, dedup, parts, lateness, hostile
timestamps, dead letters, idleness, and a crash replayed from a checkpoint."""

import random
from datetime import datetime, timedelta, timezone

import numpy as np
import orjson
import pytest

from collectors.partition import DeadLetter, PartitionProcessor, Publish, Resolved, Timing
from monitor.record import DeadLetterReason, PredictionRecord, encode_record, encode_record_parts
from monitor.schema import FeatureSpec
from monitor.stats import Profile
from monitor.timeutil import from_datetime

SPECS = (FeatureSpec("x", "numeric", "float"), FeatureSpec("c", "categorical", "string"))
OUT = (FeatureSpec("prediction", "numeric", "float"),)
T0 = datetime(2012, 1, 2, tzinfo=timezone.utc)
NOW = from_datetime(datetime(2026, 12, 1, tzinfo=timezone.utc))
WINDOW = 60_000


def resolve(model, version):
    if model not in ("m", "other"):
        return Resolved(None, reason=DeadLetterReason.UNKNOWN_MODEL, detail="no such model")
    if version != "v1":
        return Resolved(None, reason=DeadLetterReason.UNKNOWN_VERSION, detail="no such version")
    return Resolved(SPECS, OUT)


def timing(**kw):
    base = dict(window_ms=WINDOW, lateness_ms=10_000, max_jump_ms=WINDOW, idle_ms=5_000,
                min_event_ms=from_datetime(datetime(2000, 1, 1, tzinfo=timezone.utc)), max_future_ms=300_000,
                sample_records=5)
    base.update(kw)
    return Timing(**base)


class Wall:
    def __init__(self):
        self.ms = NOW

    def __call__(self):
        return self.ms


def rec(seconds, rows, *, model="m", version="v1", rid=None, at=None):
    at = at or T0 + timedelta(seconds=seconds)
    return PredictionRecord(model, version, at, rid or f"r{seconds}-{len(rows)}-{rows[0].get('x') if rows else ''}",
                            tuple(rows), tuple(float(i) for i in range(len(rows))))


def feed(proc, values, start_offset=0):
    events = []
    for i, v in enumerate(values, start=start_offset):
        events += proc.add(v, i, NOW)
    return events


def published(events):
    return [e.partial for e in events if isinstance(e, Publish)]


def dead(events):
    return [e for e in events if isinstance(e, DeadLetter)]


def rows(n, seed=0):
    rng = np.random.default_rng(seed)
    return [{"x": float(rng.normal()), "c": str(rng.integers(0, 4))} for _ in range(n)]


def test_windows_hold_exactly_their_records_and_close_when_the_watermark_passes():
    proc = PartitionProcessor("t", 0, timing(), resolve, wall=Wall())
    by_window = {0: [], 1: []}
    values = []
    for i in range(200):
        s = i * 0.6  # 0..119.4 s: two windows
        r = rows(3, seed=i)
        by_window[int(s // 60)].extend(r)
        values.append(encode_record(rec(s, r, rid=f"a{i}")))
    events = feed(proc, values)
    (first,) = published(events)  # closes at 70 s + one record: the watermark is the second largest
    assert proc.safe_offset() == 0  # sent but not acknowledged: its records stay uncommitted
    proc.delivered(next(e.token for e in events if isinstance(e, Publish)))
    assert first.key.start_ms == from_datetime(T0)
    expected = Profile.empty(SPECS)
    expected.update_instances(by_window[0])
    got = Profile.from_bytes(first.features)
    assert (got.rows, first.counts.rows, first.counts.records) == (expected.rows, 300, 100)
    assert got["x"].mean == pytest.approx(expected["x"].mean, rel=1e-12)
    assert got["x"].variance == pytest.approx(expected["x"].variance, rel=1e-9)
    assert got["c"].counts() == expected["c"].counts()
    assert Profile.from_bytes(first.outputs)["prediction"].count == 300
    assert (first.first_offset, first.last_offset) == (0, 99)
    assert proc.open_partials == 1 and proc.safe_offset() == 100  # the open window's first record pins the commit


def test_duplicates_count_once_and_parts_count_as_one_request():
    proc = PartitionProcessor("t", 0, timing(), resolve, wall=Wall())
    big = rec(1, rows(300), rid="big")
    parts = encode_record_parts(big, max_bytes=4000)
    assert len(parts) > 2
    values = parts + [parts[1], encode_record(rec(2, rows(2, 9), rid="small")), encode_record(rec(2, rows(2, 9), rid="small"))]
    values += [encode_record(rec(80 + i, rows(1, 50 + i), rid=f"late{i}")) for i in range(2)]
    (p,) = published(feed(proc, values))
    assert (p.counts.rows, p.counts.records, p.counts.duplicate_records) == (302, 2, 2)


@pytest.mark.parametrize("stamp", ["9999-12-31T23:59:59Z", "2100-01-01T00:00:00Z", "1970-01-01T00:00:00Z",
                                   "0001-01-01T00:00:00+01:00", "1999-12-31T23:59:59Z"])
def test_absurd_timestamps_are_dead_lettered_and_change_nothing(stamp):
    proc = PartitionProcessor("t", 0, timing(), resolve, wall=Wall())
    good = [encode_record(rec(i, rows(1, i), rid=f"g{i}")) for i in range(30)]
    bad = orjson.loads(encode_record(rec(0, rows(1), rid="bad")))
    bad["event_time"] = stamp
    values = good[:15] + [orjson.dumps(bad)] + good[15:]
    events = feed(proc, values)
    (d,) = dead(events)
    assert d.reason is DeadLetterReason.IMPLAUSIBLE_TIME and d.offset == 15 and d.value == orjson.dumps(bad)
    assert published(events) == []  # 30 s of traffic: the window is still open, nothing closed early
    proc2 = PartitionProcessor("t", 0, timing(), resolve, wall=Wall())
    feed(proc2, good)
    assert proc.checkpoint()[1] == proc2.checkpoint()[1]  # the clock never saw it


def test_a_plausible_but_far_record_is_held_then_dead_lettered_as_a_jump():
    proc = PartitionProcessor("t", 0, timing(hold_records=20), resolve, wall=Wall())
    values = [encode_record(rec(i, rows(1, i), rid=f"g{i}")) for i in range(10)]
    values.append(encode_record(rec(0, rows(1), rid="jump", at=datetime(2026, 11, 30, tzinfo=timezone.utc))))
    values += [encode_record(rec(10 + i, rows(1, 10 + i), rid=f"h{i}")) for i in range(25)]
    events = feed(proc, values)
    jumps = [d for d in dead(events) if d.reason is DeadLetterReason.TIME_JUMP]
    assert [d.offset for d in jumps] == [10]
    assert proc.safe_offset() == 0  # the open window still starts at offset 0; the held record no longer pins


def test_late_records_within_and_beyond_the_lateness():
    proc = PartitionProcessor("t", 0, timing(), resolve, wall=Wall())
    values = [encode_record(rec(s, rows(1, int(s)), rid=f"a{s}")) for s in (1, 2, 61, 62, 65)]
    values.append(encode_record(rec(30, rows(1, 99), rid="inside")))  # watermark 62 >= end 60, < 70: late but kept
    values += [encode_record(rec(s, rows(1, int(s)), rid=f"b{s}")) for s in (71, 72)]
    values.append(encode_record(rec(40, rows(1, 98), rid="outside")))  # the first window has closed
    events = feed(proc, values)
    (p,) = published(events)
    assert (p.counts.rows, p.counts.late_records) == (3, 1)
    (d,) = dead(events)
    assert d.reason is DeadLetterReason.LATE and d.offset == 8
    (report,) = [r for r in proc.stream_reports() if r[0] == "m"]
    assert report[4] == {("v1", from_datetime(T0)): 1}


def test_bad_messages_get_their_reason_and_siblings_are_kept():
    proc = PartitionProcessor("t", 0, timing(max_record_bytes=10_000), resolve, wall=Wall())
    mixed = [{"x": 1.0, "c": "a"}, {"x": "oops", "c": "b"}, {"x": 2.0, "c": ["no"]}, {"x": 3.0, "c": "c"}]
    values = [b"\xff\xfe", b"{nope", b"[1]", orjson.dumps({"schema_version": 3}), b"x" * 20_000,
              encode_record(rec(1, rows(1), model="ghost")), encode_record(rec(1, rows(1), version="v9")),
              encode_record(rec(1, mixed, rid="mixed"))]
    values += [encode_record(rec(s, rows(1, s), rid=f"z{s}")) for s in (35, 50, 65, 71, 72)]
    events = feed(proc, values)
    assert [d.reason.value for d in dead(events)] == ["not_utf8", "not_json", "invalid", "newer_schema", "too_large",
                                                      "unknown_model", "unknown_version"]
    (p,) = published(events)
    assert (p.counts.rows, p.counts.invalid_instances) == (4, 2)  # mixed's two good rows, then 35 s and 50 s
    assert Profile.from_bytes(p.features)["x"].count == 4


def test_two_models_hours_apart_in_one_partition_do_not_disturb_each_other():
    proc = PartitionProcessor("t", 0, timing(), resolve, wall=Wall())
    values = []
    for i in range(100):
        values.append(encode_record(rec(i, rows(1, i), model="m", rid=f"m{i}")))
        values.append(encode_record(rec(i + 5 * 3600, rows(1, i), model="other", rid=f"o{i}")))
    events = feed(proc, values)
    assert dead(events) == []
    closed = published(events)
    assert {p.key.model for p in closed} == {"m", "other"}
    assert sum(p.counts.rows for p in closed) + proc.open_partials * 0 <= 200
    assert all(p.counts.rows == 60 for p in closed)


def test_idle_closes_only_when_caught_up():
    wall = Wall()
    proc = PartitionProcessor("t", 0, timing(), resolve, wall=wall)
    feed(proc, [encode_record(rec(i, rows(1, i), rid=f"g{i}")) for i in range(5)])
    wall.ms += 60_000
    assert proc.tick(caught_up=False) == []  # an outage or a backlog is not idleness
    wall.ms += 30_000
    (p,) = published(proc.tick(caught_up=True))
    assert p.counts.rows == 5
    (report,) = proc.stream_reports()
    assert report[2] is True  # idle


def test_a_crash_replayed_from_a_checkpoint_gives_the_same_partials():
    rng = random.Random(7)
    values = []
    for i in range(400):
        s = i * 0.5 + rng.uniform(-8, 0)  # out of order within the lateness
        values.append(encode_record(rec(s, rows(rng.randint(1, 3), i), rid=f"q{i}")))
        if i % 97 == 0:
            values.append(values[-1])  # a duplicate delivery
    whole = PartitionProcessor("t", 0, timing(), resolve, wall=Wall())
    expected = {(p.key, p.first_offset, p.last_offset): p for p in published(feed(whole, values))}
    for cut in (37, 150, 301):
        first = PartitionProcessor("t", 0, timing(), resolve, wall=Wall())
        got = {(p.key, p.first_offset, p.last_offset): p for p in published(feed(first, values[:cut]))}
        safe, checkpoint = first.safe_offset(), first.checkpoint()
        second = PartitionProcessor("t", 0, timing(), resolve, wall=Wall(), checkpoint=checkpoint)
        for p in published(feed(second, values[safe:], start_offset=safe)):
            ident = (p.key, p.first_offset, p.last_offset)
            assert ident not in got or got[ident].features == p.features  # re-published identically
            got[ident] = p
        assert set(got) == set(expected), cut
        for ident, p in expected.items():
            assert got[ident].counts == p.counts
            assert Profile.from_bytes(got[ident].features)["x"].sum == Profile.from_bytes(p.features)["x"].sum


def test_the_row_sample_does_not_depend_on_how_records_were_split():
    from collectors.partials import merge_samples

    values = [encode_record(rec(i * 0.1, rows(2, i), rid=f"s{i}")) for i in range(300)]
    values.append(encode_record(rec(70, rows(1), rid="close1")))
    values.append(encode_record(rec(71, rows(1), rid="close2")))
    whole = PartitionProcessor("t", 0, timing(sample_records=7), resolve, wall=Wall())
    (one,) = published(feed(whole, values))
    halves = []
    for parity in (0, 1):
        proc = PartitionProcessor("t", parity, timing(sample_records=7), resolve, wall=Wall())
        mine = [v for i, v in enumerate(values[:300]) if i % 2 == parity] + values[300:]
        halves += published(feed(proc, mine))
    merged = merge_samples([p.sample for p in halves], 7)
    assert merged == merge_samples([one.sample], 7)
    assert len(merged) == 7 and sorted({e[1] for e in merged}) == sorted(e[1] for e in merged)


def test_the_fast_path_and_the_general_path_give_the_same_partials_and_dead_letters(monkeypatch):
    """Plain records go through the C scanner (collectors.scanned), the rest through orjson: the partials
    (profiles byte for byte, counts, samples) and dead letters are those of the general path alone."""
    import collectors.scanned as scanned_mod
    from monitor.record import encode_record_parts

    rng = random.Random(7)
    values = []
    for i in range(600):
        s = i * 0.25  # 0..150 s: three windows
        kind = rng.random()
        if kind < 0.08:
            r = [{"x": "oops", "c": "a"}, {"x": 1.5, "c": "b"}]  # a row dropped: the general path
        elif kind < 0.16:
            r = [{"c": "only-c"}, {"x": None, "c": None}, {"x": -0.0, "c": ""}]  # absent and null values
        elif kind < 0.22:
            r = [{"x": 2.0, "c": "é中文🙂", "extra": [1, {"a": None}]}]  # non-ASCII, unknown column
        elif kind < 0.26:
            r = [{"x": True, "c": "bool"}]  # a bool is not a number
        elif kind < 0.30:
            r = [{"x": 3, "c": 7}]  # an int category
        else:
            r = rows(rng.randrange(0, 5), seed=i)
        rid = f"q{i % 550}"  # some duplicates
        if kind > 0.97:
            values += encode_record_parts(rec(s, rows(6, i), rid=f"p{i}"), max_bytes=400)
        else:
            values.append(encode_record(rec(s, r, rid=rid)))
        if i % 97 == 0:
            values.append(b"{nope")
    values.append(encode_record(rec(400, rows(1), rid="closer")))

    def run(native):
        proc = PartitionProcessor("t", 0, timing(native_scan=native, lateness_ms=0), resolve, wall=Wall())
        events = feed(proc, values)
        return ([(p.key, p.first_offset, p.last_offset, p.counts, p.features, p.outputs, p.sample, p.errors)
                 for p in published(events)],
                [(d.offset, d.reason, d.detail) for d in dead(events)])

    scans = []
    real = scanned_mod.SCANNER.scan
    monkeypatch.setattr(scanned_mod, "SCANNER", type("Counting", (), {"scan": lambda self, raw: scans.append(raw)
                                                                      or real(raw)})())
    general = run(False)
    assert scans == []
    monkeypatch.undo()
    fast = run(True)
    assert fast == general
    assert len(general[0]) == 2 and general[1]
    accepted = sum(scanned_mod.scan_record(v) is not None for v in values)
    assert accepted > len(values) // 2  # the comparison covered the fast path, not only its fallback
