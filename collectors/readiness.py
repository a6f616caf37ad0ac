"""When the merge stage may decide a window: every source partition that could feed it has passed it.

For a window of model M ending at E, over the input topic's partitions ``0..n-1``, each partition
p must be known and have nothing left for it:

* p's last report is older than the others' by more than ``fresh_ms`` (its collector died, is
  restarting or handing it over), or older than ``silent_ms`` by the wall clock: wait;
* p has a stream of M: it must have closed through E. An idle stream (its partition caught up with
  a broker that answers, no record of M for the idle timeout) moves on with the wall clock, so it
  stops holding windows back once they are over, and it never releases a window before that: a
  record that reaches it afterwards still belongs to a window it has not closed;
* p never carried M: it must be caught up with the broker (a backlog may still hold M's records).

Freshness is judged against the newest report of any partition, not only the wall clock, so a merge
stage that is behind on its queue (all reports equally old) still decides, while one partition
whose collector stopped reporting holds its windows back within seconds.
"""

from __future__ import annotations

from typing import Mapping

from monitor.storage.rows import PartitionState, StreamState

__all__ = ["waiting_for"]


def waiting_for(model: str, end_ms: int, *, partitions: int, partition_states: Mapping[int, PartitionState],
                streams: Mapping[tuple[int, str], StreamState], now_ms: int, fresh_ms: int = 3000,
                silent_ms: int = 30_000) -> str | None:
    """Why the window of ``model`` ending at ``end_ms`` cannot be decided yet, or ``None`` when it can."""
    if partitions <= 0:
        return "the input topic's partitions are not known yet"
    newest = max((s.sent_ms for s in partition_states.values()), default=0)
    for p in range(partitions):
        state = partition_states.get(p)
        if state is None:
            return f"partition {p} has not reported"
        if newest - state.sent_ms > fresh_ms or now_ms - state.sent_ms > silent_ms:
            return f"partition {p} has not reported for {(max(newest, now_ms) - state.sent_ms) / 1000:.0f}s"
        stream = streams.get((p, model))
        if stream is None:
            if not state.caught_up:
                return f"partition {p} is not caught up (it may still hold records of {model})"
            continue
        if stream.closed_through_ms < end_ms:
            return f"partition {p} has closed {model} only through {stream.closed_through_ms}"
    return None
