"""When the merge stage may decide a window (pure): every partition accounted for, claims verified."""

from collectors.readiness import waiting_for
from monitor.storage.rows import PartitionState, StreamState

END = 60_000


def ask(partitions, streams=(), hw=None, now=10_000, n=2, start=0, end=END):
    states = {p.source_partition: p for p in partitions}
    hw = hw if hw is not None else {p.source_partition: p.position for p in partitions}
    return waiting_for("m", start, end, partitions=n, partition_states=states,
                       streams={(s.source_partition, s.model): s for s in streams}, high_watermarks=hw, now_ms=now)


def part(p, caught_up=True, position=100, sent=10_000):
    return PartitionState(p, caught_up, position, sent)


def stream(p, closed, idle=False, open_windows=(), sent=10_000):
    return StreamState(p, "m", closed, idle, tuple(open_windows), sent)


def test_ready_when_every_partition_closed_through_the_end():
    assert ask([part(0), part(1)], [stream(0, END), stream(1, END + 5)]) is None


def test_a_partition_behind_holds_the_window():
    assert "only through" in ask([part(0), part(1)], [stream(0, END), stream(1, END - 1)])


def test_a_silent_partition_holds_the_window_while_the_others_report():
    why = ask([part(0, sent=10_000), part(1, sent=20_000)], [stream(0, END), stream(1, END)], now=20_000)
    assert why == "partition 0 has not reported for 10s"
    assert "not reported" in ask([part(0)], [stream(0, END)], n=2)


def test_a_partition_that_never_carried_the_model_needs_to_be_caught_up():
    assert ask([part(0), part(1)], [stream(0, END)]) is None
    assert "not caught up" in ask([part(0), part(1, caught_up=False)], [stream(0, END)])


def test_an_idle_partition_does_not_hold_back_windows_it_has_no_records_of():
    assert ask([part(0), part(1)], [stream(0, END), stream(1, 0, idle=True)]) is None
    assert "only through" in ask([part(0), part(1)], [stream(0, END), stream(1, 0, idle=True, open_windows=[0])])


def test_a_stale_claim_is_refuted_by_the_broker_high_watermark():
    # partition 1's collector said "caught up at 100, idle" and died; records landed since
    refuted = {0: 100, 1: 150}
    assert "only through" in ask([part(0), part(1)], [stream(0, END), stream(1, 0, idle=True)], hw=refuted)
    assert "not caught up" in ask([part(0), part(1)], [stream(0, END)], hw=refuted)
    assert "not caught up" in ask([part(0), part(1)], [stream(0, END)], hw={0: 100})  # no evidence: no claim


def test_partitions_unknown():
    assert "not known" in ask([], n=0)
