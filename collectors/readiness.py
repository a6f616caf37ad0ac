"""When the merge stage may decide a window: every source partition that could feed it has passed it.

For a window of model M ending at E, over the input topic's partitions ``0..n-1``, each partition p
must be known and have nothing left for it:

* p has said nothing for ``stale_ms`` (its collector is gone, restarting, or cut off): wait;
* p has a stream of M: it must have closed through E (its partial for the window, if any, was sent
  before that report), or be idle with the window not among its open ones;
* p never carried M: it must be caught up with the broker (a backlog may still hold M's records).

Idle streams do not hold windows back, and never close one early: a stream becomes idle only while
its partition is caught up with a broker that answers, and its own open windows still wait for it.
"""

from __future__ import annotations

from typing import Mapping

from monitor.storage.rows import PartitionState, StreamState

__all__ = ["waiting_for"]


def waiting_for(model: str, start_ms: int, end_ms: int, *, partitions: int, partition_states: Mapping[int, PartitionState],
                streams: Mapping[tuple[int, str], StreamState], now_ms: int, stale_ms: int) -> str | None:
    """Why the window cannot be decided yet, or ``None`` when it can."""
    if partitions <= 0:
        return "the input topic's partitions are not known yet"
    for p in range(partitions):
        state = partition_states.get(p)
        if state is None:
            return f"partition {p} has not reported"
        if now_ms - state.sent_ms > stale_ms:
            return f"partition {p} silent for {(now_ms - state.sent_ms) / 1000:.0f}s"
        stream = streams.get((p, model))
        if stream is None:
            if not state.caught_up:
                return f"partition {p} is not caught up (it may still hold records of {model})"
            continue
        if stream.closed_through_ms >= end_ms:
            continue
        if stream.idle and start_ms not in stream.open_windows:
            continue
        return f"partition {p} has closed {model} only through {stream.closed_through_ms}"
    return None
