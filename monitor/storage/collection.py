"""Collection state: partials waiting to be merged, what each source partition has closed,
collectors' checkpoints, and dead-letter counts.

A partial is identified by its window key plus (source topic, partition, first and last
offset). ``add_partial`` stores it once: the same identity again is a duplicate (a partial
published twice, or rebuilt identically after a crash), and a partial whose offset range
overlaps one already stored for the same window and partition holds records already counted
(a rebuild that started elsewhere) and is refused as an overlap. A partial for a window that is
already decided arrives too late to be merged.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Iterable, NamedTuple, Sequence

from sqlalchemy import bindparam, delete, func, insert, select

from monitor.keys import WindowKey
from monitor.storage import tables as t
from monitor.storage.base import key_clause, key_params, upsert
from monitor.storage.rows import PartialIn, PartialRow, PartitionState, StreamState, WindowCounts
from monitor.storage.windows import WINDOW_ID_AT

__all__ = ["CollectionStore", "PartialOutcome", "DeadLetterCount", "DeadLetterExample"]


class PartialOutcome(StrEnum):
    ADDED = "added"
    DUPLICATE = "duplicate"
    OVERLAP = "overlap"
    DECIDED = "decided"  # its window was decided before it arrived


# a partial's statements, built once and bound at each execution (key_params): the merge stage stores
# every partial, a hundred a window and more
_OVERLAPPING = select(t.partials.c.first_offset, t.partials.c.last_offset).where(
    key_clause(t.partials), t.partials.c.source_topic == bindparam("topic"),
    t.partials.c.source_partition == bindparam("partition"), t.partials.c.first_offset <= bindparam("last"),
    t.partials.c.last_offset >= bindparam("first"))
_INSERT_PARTIAL = insert(t.partials)


class DeadLetterCount(NamedTuple):
    reason: str
    model: str  # "" when the record names none
    count: int
    last_ms: int  # when the last one was counted


class DeadLetterExample(NamedTuple):
    reason: str
    model: str
    topic: str
    partition: int
    offset: int
    detail: str
    received_ms: int


class CollectionStore:
    """Mixin of :class:`monitor.storage.Store`: what the merge stage and collectors keep."""

    # -- partials ----------------------------------------------------------------------------

    def add_partial(self, p: PartialIn) -> PartialOutcome:
        key = p.key
        with self.write("storing a partial") as conn:  # type: ignore[attr-defined]
            if conn.execute(WINDOW_ID_AT, key_params(key)).first() is not None:
                return PartialOutcome.DECIDED
            same = conn.execute(_OVERLAPPING, key_params(key, topic=p.source_topic, partition=p.source_partition,
                                                         first=p.first_offset, last=p.last_offset)).all()
            if same:
                exact = any((r.first_offset, r.last_offset) == (p.first_offset, p.last_offset) for r in same)
                return PartialOutcome.DUPLICATE if exact else PartialOutcome.OVERLAP
            n = p.counts
            conn.execute(_INSERT_PARTIAL, {
                "model": key.model, "model_version": key.model_version, "segment": key.segment,
                "start_ms": key.start_ms, "source_topic": p.source_topic, "source_partition": p.source_partition,
                "first_offset": p.first_offset, "last_offset": p.last_offset, "end_ms": p.end_ms, "rows": n.rows,
                "records": n.records, "invalid_instances": n.invalid_instances, "late_records": n.late_records,
                "duplicate_records": n.duplicate_records, "features": p.features, "outputs": p.outputs,
                "sample": p.sample, "received_ms": self.now(),  # type: ignore[attr-defined]
            })
        return PartialOutcome.ADDED

    def partials_for(self, key: WindowKey, *, blobs: bool = True) -> list[PartialRow]:
        """The stored partials of a window; with ``blobs=False`` without their profiles and sample
        (empty bytes): identities and counts only."""
        c = t.partials.c
        columns = [c.source_topic, c.source_partition, c.first_offset, c.last_offset, c.end_ms, c.rows, c.records,
                   c.invalid_instances, c.late_records, c.duplicate_records]
        if blobs:
            columns += [c.features, c.outputs, c.sample]
        with self.read() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(select(*columns).where(key_clause(t.partials))
                                .order_by(c.source_topic, c.source_partition, c.first_offset), key_params(key))
            if not blobs:  # by position: a decision reads 100 of these
                return [PartialRow(key, end_ms, partition, first, last, WindowCounts(n, records, invalid, late, dups, 1),
                                   b"", b"", b"", topic)
                        for topic, partition, first, last, end_ms, n, records, invalid, late, dups in rows]
            return [PartialRow(key=key, end_ms=r.end_ms, source_partition=r.source_partition,
                               first_offset=r.first_offset, last_offset=r.last_offset,
                               counts=WindowCounts(r.rows, r.records, r.invalid_instances, r.late_records,
                                                   r.duplicate_records, 1),
                               features=bytes(r.features), outputs=bytes(r.outputs), sample=bytes(r.sample),
                               source_topic=r.source_topic)
                    for r in rows]

    def pending_windows(self, model: str | None = None) -> list[tuple[WindowKey, int]]:
        """Keys (and end) of windows that have partials and are not decided, oldest first."""
        c = t.partials.c
        where = [] if model is None else [c.model == model]
        with self.read() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(select(c.model, c.model_version, c.segment, c.start_ms, func.max(c.end_ms))
                                .where(*where).group_by(c.model, c.model_version, c.segment, c.start_ms)
                                .order_by(c.start_ms, c.model, c.model_version, c.segment))
            return [(WindowKey(r[0], r[1], r[2], r[3]), r[4]) for r in rows]

    # -- progress of the source partitions ---------------------------------------------------

    def save_progress(self, topic: str, partition: PartitionState, streams: Iterable[StreamState]) -> None:
        """What one source partition says now; ``closed_through`` only ever grows."""
        with self.write("storing collection progress") as conn:  # type: ignore[attr-defined]
            upsert(conn, t.partition_progress, [{
                "source_topic": topic, "source_partition": partition.source_partition,
                "caught_up": partition.caught_up, "position": partition.position, "sent_ms": partition.sent_ms,
            }], keys=("source_topic", "source_partition"), update=("caught_up", "position", "sent_ms"),
                where=lambda table, excluded: excluded.sent_ms >= table.c.sent_ms)
            c = t.stream_progress.c
            stored = {r.model: r for r in conn.execute(select(t.stream_progress).where(
                c.source_topic == topic, c.source_partition == partition.source_partition))}
            rows = []
            for s in streams:
                before = stored.get(s.model)
                if before is not None and before.sent_ms > s.sent_ms:
                    continue  # an older message arriving late
                # a partition that moved to a new owner may restart lower: never move backwards
                closed = s.closed_through_ms if before is None else max(before.closed_through_ms, s.closed_through_ms)
                rows.append({"source_topic": topic, "source_partition": s.source_partition, "model": s.model,
                             "closed_through_ms": closed, "idle": s.idle,
                             "open_windows": json.dumps(sorted(s.open_windows)), "sent_ms": s.sent_ms})
            upsert(conn, t.stream_progress, rows, keys=("source_topic", "source_partition", "model"),
                   update=("closed_through_ms", "idle", "open_windows", "sent_ms"))

    def progress(self, topic: str) -> tuple[dict[int, PartitionState], list[StreamState]]:
        with self.read() as conn:  # type: ignore[attr-defined]
            pc = t.partition_progress.c
            partitions = {r.source_partition: PartitionState(r.source_partition, bool(r.caught_up), r.position,
                                                             r.sent_ms)
                          for r in conn.execute(select(t.partition_progress).where(pc.source_topic == topic))}
            sc = t.stream_progress.c
            streams = [StreamState(r.source_partition, r.model, r.closed_through_ms, bool(r.idle),
                                   tuple(json.loads(r.open_windows)), r.sent_ms)
                       for r in conn.execute(select(t.stream_progress).where(sc.source_topic == topic))]
        return partitions, streams

    # -- collectors' checkpoints -------------------------------------------------------------

    def save_checkpoints(self, topic: str, states: Sequence[tuple[int, int, str]]) -> None:
        """(partition, position, state JSON) of each partition a collector owns, in one transaction."""
        if not states:
            return
        now = self.now()  # type: ignore[attr-defined]
        with self.write("saving collector checkpoints") as conn:  # type: ignore[attr-defined]
            upsert(conn, t.collector_checkpoints,
                   [{"source_topic": topic, "source_partition": p, "position": pos, "state": state, "saved_ms": now}
                    for p, pos, state in states],
                   keys=("source_topic", "source_partition"), update=("position", "state", "saved_ms"))

    def load_checkpoint(self, topic: str, partition: int) -> tuple[int, str] | None:
        c = t.collector_checkpoints.c
        with self.read() as conn:  # type: ignore[attr-defined]
            r = conn.execute(select(c.position, c.state).where(c.source_topic == topic,
                                                                c.source_partition == partition)).first()
        return None if r is None else (r.position, r.state)

    # -- dead letters ------------------------------------------------------------------------

    def count_dead_letters(self, letters: Sequence[DeadLetterExample], *, keep_examples: int = 50,
                           cursor: tuple[str, int, int, str] | None = None) -> int:
        """Count dead letters by (reason, model), each identity (source topic, partition, offset) once,
        and keep the newest ``keep_examples`` per reason. Returns how many were new.

        ``cursor`` = (dead-letter topic, partition, next offset, state JSON): the counting consumer's
        position, saved in the same transaction.
        """
        if not letters and cursor is None:
            return 0
        now = self.now()  # type: ignore[attr-defined]
        with self.write("counting dead letters") as conn:  # type: ignore[attr-defined]
            if cursor is not None:
                topic, partition, position, state = cursor
                upsert(conn, t.collector_checkpoints, [{"source_topic": topic, "source_partition": partition,
                                                        "position": position, "state": state, "saved_ms": now}],
                       keys=("source_topic", "source_partition"), update=("position", "state", "saved_ms"))
            fresh: list[DeadLetterExample] = []
            seen = t.dead_letter_seen.c
            for letter in letters:
                if letter.offset >= 0:
                    hit = conn.execute(select(seen.seen_ms).where(
                        seen.source_topic == letter.topic, seen.source_partition == letter.partition,
                        seen.source_offset == letter.offset)).first()
                    if hit is not None:
                        continue
                    conn.execute(insert(t.dead_letter_seen).values(source_topic=letter.topic,
                                                                   source_partition=letter.partition,
                                                                   source_offset=letter.offset, seen_ms=now))
                fresh.append(letter)
            counts: dict[tuple[str, str], int] = {}
            for letter in fresh:
                counts[(letter.reason, letter.model)] = counts.get((letter.reason, letter.model), 0) + 1
            c = t.dead_letters.c
            for (reason, model), n in counts.items():
                found = conn.execute(select(c.count).where(c.reason == reason, c.model == model)).first()
                if found is None:
                    conn.execute(insert(t.dead_letters).values(reason=reason, model=model, count=n, last_ms=now))
                else:
                    conn.execute(t.dead_letters.update().where(c.reason == reason, c.model == model)
                                 .values(count=c.count + n, last_ms=now))
            newest: dict[str, list[DeadLetterExample]] = {}
            for letter in fresh:
                newest.setdefault(letter.reason, []).append(letter)
            e = t.dead_letter_examples.c
            for reason, items in newest.items():
                conn.execute(insert(t.dead_letter_examples), [
                    {"reason": x.reason, "model": x.model, "source_topic": x.topic, "source_partition": x.partition,
                     "source_offset": x.offset, "detail": x.detail[:2000], "received_ms": x.received_ms}
                    for x in items[-keep_examples:]])
                cutoff = conn.execute(select(e.id).where(e.reason == reason).order_by(e.id.desc())
                                      .offset(keep_examples).limit(1)).scalar()
                if cutoff is not None:
                    conn.execute(delete(t.dead_letter_examples).where(e.reason == reason, e.id <= cutoff))
        return len(fresh)

    def forget_dead_letter_identities(self, before_ms: int) -> int:
        """Drop counted identities older than ``before_ms`` (a collector re-reads minutes, not days, after a crash)."""
        with self.write("pruning dead-letter identities") as conn:  # type: ignore[attr-defined]
            return conn.execute(delete(t.dead_letter_seen).where(t.dead_letter_seen.c.seen_ms < before_ms)).rowcount

    def dead_letter_counts(self) -> list[DeadLetterCount]:
        c = t.dead_letters.c
        with self.read() as conn:  # type: ignore[attr-defined]
            return [DeadLetterCount(r.reason, r.model, r.count, r.last_ms)
                    for r in conn.execute(select(t.dead_letters).order_by(c.reason, c.model))]

    def dead_letter_examples(self, reason: str | None = None, limit: int = 50) -> list[DeadLetterExample]:
        e = t.dead_letter_examples.c
        where = [] if reason is None else [e.reason == reason]
        with self.read() as conn:  # type: ignore[attr-defined]
            return [DeadLetterExample(r.reason, r.model, r.source_topic, r.source_partition, r.source_offset,
                                      r.detail, r.received_ms)
                    for r in conn.execute(select(t.dead_letter_examples).where(*where)
                                          .order_by(e.id.desc()).limit(limit))]
