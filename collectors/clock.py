"""Event time of one model in one source partition: a watermark one absurd timestamp cannot move.

Each (source partition, model) is a *stream* with its own :class:`StreamClock`. Models share
partitions (records are keyed by request id) and their event times may be hours apart (one
replays history while another serves live), so one watermark per partition would make one
model's records late for the other. The merge stage takes the minimum over the partitions.

Rules, in the order a record meets them:

1. **The watermark is the second-largest event time admitted**, so one record can never move it
   alone: one timestamp from 2100, or from a client whose clock runs an hour fast, closes and
   drops nothing by itself.
2. **A record far ahead is held, not admitted**: more than ``max_jump_ms`` beyond the largest
   admitted event time *plus* however far the producer's clock (the Kafka timestamp) moved since
   that record. Real gaps pass at once (traffic resuming after a quiet night moved event time and
   produce time together), compressed replays pass (each step is small), a jump of years does not.
   Two held records that agree with each other confirm a new present: both are admitted and the
   watermark follows. Held records nothing confirms expire after ``hold_records`` later admitted
   records, or when the stream goes idle; the caller dead-letters them (``event_time_jump``).
3. **A stream starts unanchored**: its records are held until two of them agree, so an absurd
   *first* record cannot anchor it either; records then admitted behind the watermark are late.
4. **Idle streams move on** (:meth:`idle`): when the partition is caught up with the broker and
   the stream had no record for the idle timeout, live traffic's watermark moves on by the wall
   time since its last record, as live traffic would; a replay of history (event times far behind
   when the records were produced: :meth:`historical`) that goes quiet has ended or paused, and its
   open windows close at once (:meth:`end_replay`). The caller declares idleness only while the
   broker answers and nothing is left to read: an outage is not quiet traffic.

Pure and deterministic: replaying the same records from a checkpoint of :meth:`state`
reproduces every event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["Admitted", "Expired", "StreamClock"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Admitted(Generic[T]):
    """A record to fold in; ``watermark`` is the watermark just before it (None: unanchored)."""

    item: T
    event_ms: int
    watermark: int | None


@dataclass(frozen=True, slots=True)
class Expired(Generic[T]):
    """A held record nothing confirmed: too far ahead of its stream."""

    item: T
    event_ms: int


@dataclass(slots=True)
class _Held(Generic[T]):
    event_ms: int
    produced_ms: int
    item: T
    admitted_since: int = 0


Event = Admitted[T] | Expired[T]


@dataclass(slots=True)
class StreamClock(Generic[T]):
    max_jump_ms: int
    hold_records: int = 1000
    max_held: int = 10_000
    anchored: bool = False
    top1: int | None = None  # largest admitted event time
    top2: int | None = None  # second largest: the watermark
    produced_at_top1: int = 0  # Kafka timestamp of the record that set top1
    held: list[_Held[T]] = field(default_factory=list)

    @property
    def watermark(self) -> int | None:
        """Windows whose end plus lateness is at or before this are closed at this stream."""
        return self.top2

    # -- checkpoints ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"anchored": self.anchored, "top1": self.top1, "top2": self.top2, "produced": self.produced_at_top1}

    @classmethod
    def restore(cls, state: dict[str, Any], *, max_jump_ms: int, hold_records: int = 1000,
                max_held: int = 10_000) -> "StreamClock[T]":
        return cls(max_jump_ms=max_jump_ms, hold_records=hold_records, max_held=max_held,
                   anchored=bool(state["anchored"]), top1=state["top1"], top2=state["top2"],
                   produced_at_top1=int(state["produced"]))

    # -- records -------------------------------------------------------------------------------
    def within_reach(self, event_ms: int, produced_ms: int) -> bool:
        """Could a record be admitted now (anchored, and not far ahead)?"""
        if not self.anchored:
            return False
        if self.top1 is None:
            return True
        return event_ms - self.top1 <= self.max_jump_ms + max(0, produced_ms - self.produced_at_top1)

    def offer(self, event_ms: int, produced_ms: int, item: T) -> list[Event]:
        """One record in; the records admitted or expired as a result, in order."""
        out: list[Event] = []
        if self.within_reach(event_ms, produced_ms):
            self._admit(_Held(event_ms, produced_ms, item), out)
        else:
            self.held.append(_Held(event_ms, produced_ms, item))
            if len(self.held) > self.max_held:
                h = self.held.pop(0)
                out.append(Expired(h.item, h.event_ms))
        self._settle(out)
        return out

    def _admit(self, h: _Held[T], out: list[Event]) -> None:
        out.append(Admitted(h.item, h.event_ms, self.top2))
        top1 = self.top1
        if top1 is None or h.event_ms >= top1:
            self.top2 = top1 if top1 is not None else self.top2
            self.top1, self.produced_at_top1 = h.event_ms, h.produced_ms
        elif self.top2 is None or h.event_ms > self.top2:
            self.top2 = h.event_ms
        for other in self.held:
            other.admitted_since += 1

    def _agreeing_pair(self) -> list[_Held[T]] | None:
        ordered = sorted(self.held, key=lambda h: (h.event_ms, h.produced_ms))
        for a, b in zip(ordered, ordered[1:]):
            if b.event_ms - a.event_ms <= self.max_jump_ms + abs(b.produced_ms - a.produced_ms):
                return [a, b]
        return None

    def _take(self, chosen: list[_Held[T]], out: list[Event]) -> None:
        ids = {id(h) for h in chosen}
        self.held = [h for h in self.held if id(h) not in ids]
        for h in chosen:
            self._admit(h, out)

    def _settle(self, out: list[Event]) -> None:
        while self.held:
            if not self.anchored:
                pair = self._agreeing_pair()
                if pair is None:
                    break
                self.anchored = True
                self._take(sorted(pair, key=lambda h: (h.event_ms, h.produced_ms)), out)
                continue
            reach = [h for h in self.held if self.within_reach(h.event_ms, h.produced_ms)]
            if reach:
                self._take(reach[:1], out)  # one at a time, arrival order: reach grows as they come in
                continue
            pair = self._agreeing_pair()  # a new present, confirmed by two records
            if pair is None:
                break
            self._take(sorted(pair, key=lambda h: (h.event_ms, h.produced_ms)), out)
        stale = [h for h in self.held if h.admitted_since >= self.hold_records]
        if stale:
            ids = {id(h) for h in stale}
            self.held = [h for h in self.held if id(h) not in ids]
            out.extend(Expired(h.item, h.event_ms) for h in stale)

    # -- idleness ------------------------------------------------------------------------------
    def idle(self, elapsed_ms: int) -> list[Event]:
        """The stream is idle: settle what is held, then advance by ``elapsed_ms`` of wall time.

        Unanchored with held records that never agreed: the one whose event time is closest to
        its produce time anchors the stream (it is the most plausible); the others are admitted if
        within its reach, else expired. Anchored: held records expire (nothing will confirm them).
        """
        out: list[Event] = []
        if not self.anchored and self.held:
            best = min(self.held, key=lambda h: (abs(h.produced_ms - h.event_ms), h.produced_ms))
            self.anchored = True
            self._take([best], out)
            self._settle(out)
        if self.held:
            out.extend(Expired(h.item, h.event_ms) for h in self.held)
            self.held = []
        if self.anchored and self.top1 is not None and elapsed_ms > 0:
            target = self.top1 + elapsed_ms
            self.top1, self.top2 = target, target
            self.produced_at_top1 += elapsed_ms
        return out

    def historical(self, margin_ms: int) -> bool:
        """Is this stream a replay of history (its newest event time far behind when it was produced)?"""
        return self.anchored and self.top1 is not None and self.produced_at_top1 - self.top1 > margin_ms

    def end_replay(self, through_ms: int) -> None:
        """An idle replay of history has ended (or paused): move the watermark to ``through_ms`` at once
        (the caller passes the end of its last open window plus the lateness)."""
        if self.anchored and self.top1 is not None and through_ms > (self.top2 or self.top1):
            self.top1 = max(self.top1, through_ms)
            self.top2 = through_ms
