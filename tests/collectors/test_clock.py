"""The stream clock: one absurd timestamp moves nothing, real gaps and replays pass, replays from a
checkpoint reproduce every event."""

import random

from hypothesis import given, settings, strategies as st

from collectors.clock import Admitted, Expired, StreamClock

MIN = 60_000
JUMP = 5 * MIN
T0 = 1_325_376_000_000  # 2012-01-01
NOW = 1_796_000_000_000  # produce time (2026)


def _feed(clock, records):
    events = []
    for i, (event, produced) in enumerate(records):
        events += clock.offer(event, produced, i)
    return events


def _admitted(events):
    return [e.item for e in events if isinstance(e, Admitted)]


def test_steady_replay_is_admitted_and_the_watermark_trails_by_one_record():
    clock = StreamClock(max_jump_ms=JUMP)
    events = _feed(clock, [(T0 + i * 7_500, NOW + i) for i in range(100)])
    assert _admitted(events) == list(range(100))
    assert clock.watermark == T0 + 98 * 7_500


def test_one_absurd_record_moves_nothing_and_expires():
    clock = StreamClock(max_jump_ms=JUMP, hold_records=50)
    records = [(T0 + i * 1000, NOW + i) for i in range(10)]
    records.insert(5, (T0 + 88 * 365 * 24 * 3600 * 1000, NOW + 5))  # 2100
    events = _feed(clock, records + [(T0 + (10 + i) * 1000, NOW + 10 + i) for i in range(60)])
    expired = [e for e in events if isinstance(e, Expired)]
    assert [e.item for e in expired] == [5]
    assert clock.watermark < T0 + 100 * 1000
    assert 5 not in _admitted(events)


def test_a_single_fast_clock_cannot_close_a_window_early():
    clock = StreamClock(max_jump_ms=JUMP)
    _feed(clock, [(T0 + i * 1000, NOW + i * 1000) for i in range(10)])
    wm = clock.watermark
    clock.offer(T0 + 9000 + 4 * MIN, NOW + 10_000, "fast")  # within reach, admitted, but alone
    assert clock.watermark == T0 + 9000 == wm + 1000  # the watermark is the second largest


def test_a_quiet_night_then_live_traffic_passes_at_once():
    clock = StreamClock(max_jump_ms=JUMP)
    _feed(clock, [(NOW + i * 1000, NOW + i * 1000) for i in range(5)])
    eight_hours = 8 * 3600 * 1000
    events = clock.offer(NOW + eight_hours, NOW + eight_hours + 20, "morning")
    assert _admitted(events) == ["morning"]


def test_two_agreeing_records_confirm_a_jump():
    clock = StreamClock(max_jump_ms=JUMP)
    _feed(clock, [(T0 + i * 1000, NOW + i) for i in range(5)])
    later = T0 + 30 * 24 * 3600 * 1000
    assert clock.offer(later, NOW + 10, "a") == []
    events = clock.offer(later + 1000, NOW + 11, "b")
    assert _admitted(events) == ["a", "b"]
    assert clock.watermark == later


def test_an_absurd_first_record_cannot_anchor_the_stream():
    clock = StreamClock(max_jump_ms=JUMP, hold_records=20)
    records = [(NOW - 1000, NOW)] + [(T0 + i * 1000, NOW + i + 1) for i in range(30)]  # "now" first, then 2012
    events = _feed(clock, records)
    assert [e.item for e in events if isinstance(e, Expired)] == [0]
    assert _admitted(events) == list(range(1, 31))
    assert clock.watermark == T0 + 28 * 1000


def test_records_behind_the_anchor_are_admitted_with_the_watermark_they_missed():
    clock = StreamClock(max_jump_ms=JUMP)
    events = _feed(clock, [(T0, NOW), (T0 + 1000, NOW + 1), (T0 + 2000, NOW + 2), (T0 - 3600_000, NOW + 3)])
    late = [e for e in events if isinstance(e, Admitted) and e.item == 3][0]
    assert late.watermark == T0 + 1000  # the caller sees its window closed before it: late


def test_idle_advances_with_wall_time_and_settles_held_records():
    clock = StreamClock(max_jump_ms=JUMP)
    assert clock.offer(T0, NOW, "lone") == []  # unanchored: held
    events = clock.idle(elapsed_ms=10_000)
    assert _admitted(events) == ["lone"]
    assert clock.watermark == T0 + 10_000
    clock.offer(T0 + 10 * 365 * 24 * 3600 * 1000, NOW + 1, "jump")
    assert [e.item for e in clock.idle(elapsed_ms=0) if isinstance(e, Expired)] == ["jump"]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6), st.integers(5, 200), st.integers(0, 199))
def test_replaying_from_a_checkpoint_reproduces_every_event(seed, n, cut):
    rng = random.Random(seed)
    records = []
    t = T0
    for i in range(n):
        t += rng.choice([500, 1000, 7000, -20_000, 3 * 3600 * 1000 if rng.random() < 0.02 else 100])
        records.append((t if rng.random() > 0.03 else t + rng.choice([10**12, -10**11]), NOW + i * 10))
    cut = min(cut, n)
    whole = StreamClock(max_jump_ms=JUMP, hold_records=30)
    expected = _feed(whole, records)
    first = StreamClock(max_jump_ms=JUMP, hold_records=30)
    events = []
    for i, (event, produced) in enumerate(records[:cut]):
        events += first.offer(event, produced, i)
    if first.held:
        return  # held records pin the checkpoint position: the caller checkpoints before them
    resumed = StreamClock.restore(first.state(), max_jump_ms=JUMP, hold_records=30)
    for i, (event, produced) in enumerate(records[cut:], start=cut):
        events += resumed.offer(event, produced, i)
    assert events == expected
