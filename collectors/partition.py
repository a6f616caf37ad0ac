"""Everything the first collection stage does for one source partition, without Kafka.

:class:`PartitionProcessor` takes the partition's messages in offset order and turns them into
events for the consumer loop: :class:`Publish` a closed partial window, :class:`DeadLetter` a
message that cannot be used (with its reason). Per model it keeps a
:class:`~collectors.clock.StreamClock`; a partial closes when its model's watermark passes the
window's end plus the allowed lateness, or when an idle stream's watermark moves on with the
wall clock.

Offsets and restarts. :meth:`safe_offset` is the offset the consumer may commit: the lowest
offset still needed (a record in an open partial, a held record, a partial or dead letter not yet
acknowledged by Kafka), else the position. :meth:`checkpoint` is the clock state at the
position, saved to the store before each commit. A new owner of the partition restores the
checkpoint and re-reads from the committed offset: records before the checkpoint's position are
replayed against the restored clock without moving it (their windows are open: they are rebuilt;
closed: they were counted or dead-lettered already and are skipped), so the new owner rebuilds
exactly the partials the old one had open and closes them at the same records, and the merge
stage sees the same partial identities (merged once).
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from collectors.clock import Admitted, Expired, StreamClock
from collectors.partials import ClosedPartial, OpenPartial
from collectors.scanned import full, scan_record
from monitor.errors import RecordError, TimeError
from monitor.keys import ALL_TRAFFIC, WindowKey
from monitor.record import DeadLetterReason, LoggedRecord, decode_record
from monitor.schema import FeatureSpec
from monitor.timeutil import check_plausible

__all__ = ["Publish", "DeadLetter", "Resolved", "Timing", "PartitionProcessor"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Publish:
    token: int
    partial: ClosedPartial


@dataclass(frozen=True, slots=True)
class DeadLetter:
    token: int
    offset: int
    value: bytes
    reason: DeadLetterReason
    detail: str
    model: str = ""


Event = Publish | DeadLetter


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a model version's records are checked against: or why they cannot be used."""

    specs: tuple[FeatureSpec, ...] | None
    output_specs: tuple[FeatureSpec, ...] = ()
    reason: DeadLetterReason | None = None  # unknown_model / unknown_version when specs is None
    detail: str = ""
    segmenter: Any = None  # collectors.segments.Segmenter: how the model's traffic is split, or None


@dataclass(frozen=True, slots=True)
class Timing:
    window_ms: int
    lateness_ms: int
    max_jump_ms: int
    idle_ms: int
    min_event_ms: int
    max_future_ms: int
    max_record_bytes: int = 32 << 20
    hold_records: int = 1000
    sample_records: int = 20
    max_request_ids: int = 200_000
    native_scan: bool = True  # read plain version-2 records with the C fast path (collectors.scanned)


@dataclass(slots=True)
class _Stream:
    clock: StreamClock
    last_record_wall: int
    last_advance_wall: int
    idle: bool = False
    changed: bool = True
    late: Counter = field(default_factory=Counter)  # (version, window start) -> late records not yet reported


class PartitionProcessor:
    def __init__(self, topic: str, partition: int, timing: Timing, resolve: Callable[[str, str], Resolved], *,
                 wall: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
                 checkpoint: tuple[int, str] | None = None) -> None:
        self.topic = topic
        self.partition = partition
        self.timing = timing
        self._resolve = resolve
        self._wall = wall
        self._streams: dict[str, _Stream] = {}
        self._open: dict[WindowKey, OpenPartial] = {}
        self._last: tuple[int, str, str, OpenPartial] | None = None  # the whole-traffic partial folded into last
        self._by_model: dict[str, set[WindowKey]] = defaultdict(set)
        self._earliest: dict[str, int | None] = {}  # per model, the start of its oldest open window
        self._inflight: dict[int, int] = {}  # token -> lowest source offset it covers
        self._tokens = itertools.count(1)
        self.position: int | None = None  # next offset to read
        self._replay_until = -1  # records below this offset were processed by a previous owner
        self.counts: Counter[str] = Counter()
        if checkpoint is not None:
            self._restore(*checkpoint)

    # -- checkpoints ---------------------------------------------------------------------------
    def _restore(self, position: int, state: str) -> None:
        data = json.loads(state)
        now = self._wall()
        t = self.timing
        for model, s in data.get("streams", {}).items():
            clock = StreamClock.restore(s, max_jump_ms=t.max_jump_ms, hold_records=t.hold_records)
            self._streams[model] = _Stream(clock, last_record_wall=now, last_advance_wall=now)
        self._replay_until = position

    def checkpoint(self) -> tuple[int, str] | None:
        """(position, state JSON) to save before committing :meth:`safe_offset`; None before any record."""
        if self.position is None:
            return None
        streams = {m: s.clock.state() for m, s in self._streams.items()}
        return self.position, json.dumps({"streams": streams}, sort_keys=True)

    # -- offsets -------------------------------------------------------------------------------
    def safe_offset(self) -> int | None:
        """The lowest offset still needed, else the position (what the consumer may commit)."""
        if self.position is None:
            return None
        needed = [p.first_offset for p in self._open.values() if p.first_offset is not None]
        needed += self._inflight.values()
        needed += [h.item[0] for s in self._streams.values() for h in s.clock.held]
        return min([self.position, *needed])

    def delivered(self, token: int) -> None:
        """Kafka acknowledged the partial or dead letter of ``token``."""
        self._inflight.pop(token, None)

    def failed(self, token: int) -> None:
        """Kafka refused it for good: keep its offsets pinned (never committed past), count it."""
        self.counts["delivery_failed"] += 1

    @property
    def open_partials(self) -> int:
        return len(self._open)

    @property
    def held_records(self) -> int:
        return sum(len(s.clock.held) for s in self._streams.values())

    # -- records -------------------------------------------------------------------------------
    def _dead(self, offset: int, value: bytes, reason: DeadLetterReason, detail: str, model: str = "") -> DeadLetter:
        token = next(self._tokens)
        self._inflight[token] = offset
        self.counts[f"dead_letter:{reason.value}"] += 1
        return DeadLetter(token, offset, value, reason, detail, model)

    def add(self, value: bytes | None, offset: int, produced_ms: int | None) -> list[Event]:
        """One message at ``offset`` (its Kafka timestamp ``produced_ms``, None if it has none)."""
        self.position = offset + 1
        replay = offset < self._replay_until
        t = self.timing
        raw = value or b""
        if len(raw) > t.max_record_bytes:
            return [self._dead(offset, raw, DeadLetterReason.TOO_LARGE,
                               f"{len(raw)} bytes, over the {t.max_record_bytes}-byte record limit")]
        record = scan_record(raw) if t.native_scan else None
        if record is None:
            try:
                record = decode_record(raw)
            except RecordError as exc:
                return [self._dead(offset, raw, DeadLetterReason(exc.reason), str(exc), getattr(exc, "model", ""))]
        now = self._wall()
        produced = produced_ms if produced_ms is not None and produced_ms > 0 else now
        try:
            check_plausible(record.event_time_ms, reference_ms=produced, min_ms=t.min_event_ms,
                            max_future_ms=t.max_future_ms)
        except TimeError as exc:
            return [self._dead(offset, raw, DeadLetterReason.IMPLAUSIBLE_TIME, str(exc), record.model_name)]
        resolved = self._resolve(record.model_name, record.model_version)
        if resolved.specs is None:
            reason = resolved.reason or DeadLetterReason.UNKNOWN_MODEL
            return [self._dead(offset, raw, reason, resolved.detail, record.model_name)]
        stream = self._streams.get(record.model_name)
        if stream is None:
            stream = self._streams[record.model_name] = _Stream(
                StreamClock(max_jump_ms=t.max_jump_ms, hold_records=t.hold_records), now, now)
        stream.last_record_wall = stream.last_advance_wall = now
        stream.idle = False
        stream.changed = True
        item = (offset, raw, record, resolved)
        if replay:
            return self._replay(stream, record, item, produced)
        out: list[Event] = []
        self._apply(record.model_name, stream, stream.clock.offer(record.event_time_ms, produced, item), out)
        return out

    def _replay(self, stream: _Stream, record: LoggedRecord, item: Any, produced: int) -> list[Event]:
        """A record a previous owner processed: rebuild open windows, never move the clock."""
        clock = stream.clock
        out: list[Event] = []
        if not clock.within_reach(record.event_time_ms, produced):
            self._apply(record.model_name, stream, clock.offer(record.event_time_ms, produced, item), out)
            return out
        start = record.event_time_ms - record.event_time_ms % self.timing.window_ms
        wm = clock.watermark
        if wm is not None and start + self.timing.window_ms + self.timing.lateness_ms <= wm:
            self.counts["replayed_closed"] += 1  # counted or dead-lettered by the previous owner
            return out
        self._fold(item, late=wm is not None and wm >= start + self.timing.window_ms)
        return out

    def _apply(self, model: str, stream: _Stream, events: Sequence[Admitted | Expired], out: list[Event]) -> None:
        t = self.timing
        for e in events:
            offset, raw, record, resolved = e.item
            if isinstance(e, Expired):
                out.append(self._dead(offset, raw, DeadLetterReason.TIME_JUMP,
                                      "event time far ahead of its partition's watermark and never confirmed",
                                      record.model_name))
                continue
            start = e.event_ms - e.event_ms % t.window_ms
            end = start + t.window_ms
            if e.watermark is not None and end + t.lateness_ms <= e.watermark:
                stream.late[(record.model_version, start)] += 1
                out.append(self._dead(offset, raw, DeadLetterReason.LATE,
                                      f"its window {start}..{end} closed before it arrived", record.model_name))
                continue
            self._fold(e.item, late=e.watermark is not None and e.watermark >= end)
        self._close_passed(model, stream, out)

    def _fold(self, item: Any, *, late: bool) -> None:
        offset, raw, record, resolved = item
        start = record.event_time_ms - record.event_time_ms % self.timing.window_ms
        segmenter = resolved.segmenter
        if segmenter is not None:
            record = full(record, raw)  # the segmenter reads values
        whole = self._whole_traffic(record, start, resolved)
        self.counts["accepted" if whole.add(record, offset, late=late, raw=raw) else "duplicate"] += 1
        if segmenter is not None:
            for segment, part in segmenter.split(record):
                key = WindowKey(record.model_name, record.model_version, segment, start)
                self._partial(key, resolved).add(part, offset, late=late)

    def _whole_traffic(self, record: LoggedRecord, start: int, resolved: Resolved) -> OpenPartial:
        """The whole-traffic partial of the record's window. Consecutive records mostly share one, so the
        last is kept: no key made and hashed per record."""
        last = self._last
        if last is not None and last[0] == start and last[1] == record.model_name and last[2] == record.model_version:
            return last[3]
        partial = self._partial(WindowKey(record.model_name, record.model_version, ALL_TRAFFIC, start), resolved)
        self._last = (start, record.model_name, record.model_version, partial)
        return partial

    def _partial(self, key: WindowKey, resolved: Resolved) -> OpenPartial:
        """The open partial of ``key``, made when it is the window's first record here."""
        t = self.timing
        start = key.start_ms
        partial = self._open.get(key)
        if partial is None:
            partial = self._open[key] = OpenPartial(key, start + t.window_ms, resolved.specs, resolved.output_specs,
                                                    sample_records=t.sample_records,
                                                    max_request_ids=t.max_request_ids)
            self._by_model[key.model].add(key)
            earliest = self._earliest.get(key.model)
            if earliest is None or start < earliest:
                self._earliest[key.model] = start
        return partial

    def _close_passed(self, model: str, stream: _Stream, out: list[Event]) -> None:
        wm = stream.clock.watermark
        if wm is None:
            return
        t = self.timing
        earliest = self._earliest.get(model)
        if earliest is None or earliest + t.window_ms + t.lateness_ms > wm:
            return  # the usual case, per record: nothing to close
        keys = self._by_model.get(model, set())
        for key in sorted(k for k in keys if k.start_ms + t.window_ms + t.lateness_ms <= wm):
            out.append(self._publish(key))
        self._earliest[model] = min((k.start_ms for k in keys), default=None)

    def _publish(self, key: WindowKey) -> Publish:
        partial = self._open.pop(key)
        if self._last is not None and self._last[3] is partial:
            self._last = None
        keys = self._by_model[key.model]
        keys.discard(key)
        if self._earliest.get(key.model) == key.start_ms:
            self._earliest[key.model] = min((k.start_ms for k in keys), default=None)
        closed = partial.close(self.topic, self.partition)
        token = next(self._tokens)
        self._inflight[token] = closed.first_offset
        self.counts["partials"] += 1
        return Publish(token, closed)

    # -- time passing --------------------------------------------------------------------------
    def tick(self, *, caught_up: bool) -> list[Event]:
        """Called about once a second: idle streams advance with the wall clock and close windows.

        ``caught_up``: the consumer has read everything the broker holds for this partition and the
        broker answers. Only then is a quiet stream idle; an outage or a backlog never is.
        """
        now = self._wall()
        out: list[Event] = []
        if not caught_up:
            return out
        for model, stream in self._streams.items():
            if not stream.idle and now - stream.last_record_wall >= self.timing.idle_ms:
                stream.idle = True
                stream.changed = True
                elapsed = now - stream.last_record_wall
            elif stream.idle:
                elapsed = now - stream.last_advance_wall
            else:
                continue
            stream.last_advance_wall = now
            before = stream.clock.watermark
            t = self.timing
            historical = stream.clock.historical(max(t.window_ms, t.lateness_ms, t.idle_ms))
            self._apply(model, stream, stream.clock.idle(0 if historical else elapsed), out)
            if historical:  # a quiet replay of history has ended or paused: close what it left open
                ends = [k.start_ms + t.window_ms for k in self._by_model.get(model, ())]
                if ends:
                    stream.clock.end_replay(max(ends) + t.lateness_ms)
                    self._close_passed(model, stream, out)
            if stream.clock.watermark != before:
                stream.changed = True
        return out

    # -- what the merge stage hears ------------------------------------------------------------
    def stream_reports(self, *, everything: bool = False,
                       ) -> list[tuple[str, int, bool, tuple[int, ...], dict[tuple[str, int], int]]]:
        """(model, closed_through_ms, idle, open window starts, late counts) for streams that changed
        since the last report (every stream with ``everything``); late counts are handed over once."""
        out = []
        t = self.timing
        for model, s in self._streams.items():
            if not (everything or s.changed or s.late):
                continue
            wm = s.clock.watermark
            closed = (wm - t.lateness_ms) if wm is not None else -(2**62)
            starts = tuple(sorted(k.start_ms for k in self._by_model.get(model, ())))
            out.append((model, closed, s.idle, starts, dict(s.late)))
            s.late.clear()
            s.changed = False
        return out

    def models(self) -> list[str]:
        return list(self._streams)
