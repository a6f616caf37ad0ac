"""When the merge stage may decide a window: every source partition that could feed it has passed it.

For a window of model M ending at E, over the input topic's partitions ``0..n-1``, each partition
p must be known and have nothing left for the window:

* p's last report is older than the others' by more than ``fresh_ms`` (its collector died, is
  restarting or handing it over), or older than ``silent_ms`` by the wall clock: wait;
* p has a stream of M that has closed through E: fine;
* p's stream of M is idle (its partition caught up with a broker that answers, no record of M for the
  idle timeout) and the window is not among the ones it holds open: fine, an idle partition does not
  hold windows back;
* p never carried M and is caught up: fine (a partition with a backlog may still hold M's records).

"Caught up" is a claim of p's collector, and a claim can go stale (the collector is killed, new
records arrive before its next report). So the merge stage checks it against the broker itself:
a claim counts only while the partition's high watermark, which the merge stage queries on its own,
has not moved past the position the collector reported. A killed collector's partitions therefore
hold their windows back as soon as a record lands on them, and a window is never released early.

A claim can still be overtaken by records produced just before it was checked (a producer batches
per partition), so the merge stage accepts a window released by claims only once a high watermark
read a little after the window first looked ready still agrees (``claims=False`` asks without them).

Freshness is judged against the newest report of any partition, not only the wall clock, so a merge
stage that is behind on its queue (all reports equally old) still decides.
"""

from __future__ import annotations

from typing import Mapping

from monitor.storage.rows import PartitionState, StreamState

__all__ = ["waiting_for"]


def waiting_for(model: str, start_ms: int, end_ms: int, *, partitions: int,
                partition_states: Mapping[int, PartitionState], streams: Mapping[tuple[int, str], StreamState],
                high_watermarks: Mapping[int, int], now_ms: int, fresh_ms: int = 3000,
                silent_ms: int = 30_000, claims: bool = True) -> str | None:
    """Why the window of ``model`` [start, end) cannot be decided yet, or ``None`` when it can.

    ``claims=False``: only partitions that have closed through the end count (no "caught up" or
    "idle" claim), the evidence that needs no confirmation from the broker."""
    if partitions <= 0:
        return "the input topic's partitions are not known yet"
    newest = max((s.sent_ms for s in partition_states.values()), default=0)
    for p in range(partitions):
        state = partition_states.get(p)
        if state is None:
            return f"partition {p} has not reported"
        if newest - state.sent_ms > fresh_ms or now_ms - state.sent_ms > silent_ms:
            return f"partition {p} has not reported for {(max(newest, now_ms) - state.sent_ms) / 1000:.0f}s"
        hw = high_watermarks.get(p)
        caught_up = claims and state.caught_up and hw is not None and hw <= state.position
        stream = streams.get((p, model))
        if stream is not None and stream.closed_through_ms >= end_ms:
            continue
        if stream is None:
            if caught_up:
                continue
            return f"partition {p} is not caught up (it may still hold records of {model})"
        if stream.idle and caught_up and start_ms not in stream.open_windows:
            continue
        return f"partition {p} has closed {model} only through {stream.closed_through_ms}"
    return None
