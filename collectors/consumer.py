"""The first collection stage: a consumer-group member turning prediction records into partial windows.

Per assigned partition a :class:`~collectors.partition.PartitionProcessor` builds partial windows;
each closed partial goes to the partials topic (keyed by model), each unusable message to the
dead-letter topic unchanged (reason, source topic, partition and offset in its headers), and what
every partition has closed is reported to the merge stage. The poll loop never blocks on anything
slow: store writes (checkpoints) run on their own thread, produce calls are asynchronous.

What a crash costs: nothing counted twice, nothing lost. Offsets are committed only up to the
lowest offset still needed (a record in an open partial, a held record, a partial or dead letter
Kafka has not acknowledged), and only after the partition's checkpoint (its watermark state at a
position at or past that offset) is in the store. A new owner restores the checkpoint, re-reads
from the commit and rebuilds the open partials exactly; partials already sent are recognised by
the merge stage by their identity (partition, first and last offset).

Rebalances keep what the collector still owns: the assignment is eager (every partition is revoked
and reassigned), so a partition that comes back keeps its state and is resumed at this collector's
own position; only partitions that moved away are dropped. Commit failures (a broker restart, a
rebalance in between) are counted and retried; the collector never exits on them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from typing import Callable

from collectors import scanned
from collectors.kafka import (Statistics, consumer_config, ensure_topics, partials_partition, producer_config,
                              topic_partitions)
from collectors.messages import PartitionMessage, StreamMessage, encode_partial, encode_partition, encode_stream
from collectors.partition import DeadLetter, PartitionProcessor, Publish, Resolved, Timing
from monitor.errors import StoreError
from monitor.settings import Settings
from monitor.storage import Store

__all__ = ["PartialStage", "timing_from"]

log = logging.getLogger(__name__)

_TICK_S = 1.0
_FULL_REPORT_S = 5.0


def timing_from(settings: Settings) -> Timing:
    from monitor.timeutil import parse_instant

    window_ms = int(settings.window_seconds * 1000)
    lateness_ms = int(settings.allowed_lateness_seconds * 1000)
    # one record can never move the watermark (it is the second largest), so the jump rule only has to
    # stop absurd leaps; a partition that sees a model every few windows still jumps several windows
    jump = int(settings.max_watermark_jump_seconds * 1000) or max(30 * window_ms, 86_400_000, lateness_ms)
    return Timing(window_ms=window_ms, lateness_ms=lateness_ms, max_jump_ms=jump,
                  idle_ms=int(settings.idle_close_seconds * 1000),
                  min_event_ms=parse_instant(settings.min_event_time, what="min_event_time"),
                  max_future_ms=int(settings.max_event_time_future_seconds * 1000),
                  max_record_bytes=settings.max_record_bytes, sample_records=settings.sample_records,
                  native_scan=settings.native_scan)


class _Checkpointer(threading.Thread):
    """Writes checkpoints to the store off the poll thread; reports back which commits they allow."""

    def __init__(self, store: Store, topic: str) -> None:
        super().__init__(name="skewwatch-checkpoints", daemon=True)
        self.store = store
        self.topic = topic
        self.requests: queue.Queue = queue.Queue()
        self.done: queue.Queue = queue.Queue()
        self.failures = 0

    def run(self) -> None:
        while True:
            job = self.requests.get()
            if job is None:
                return
            generation, states, commits = job
            try:
                self.store.save_checkpoints(self.topic, states)
            except StoreError as exc:
                self.failures += 1
                log.warning("cannot save collector checkpoints (offsets stay uncommitted, retried): %s", exc)
                self.done.put((generation, None))
                continue
            self.done.put((generation, commits))


class PartialStage:
    """Consume the input topic until ``stop`` is set (see the module docstring)."""

    def __init__(self, settings: Settings, *, store: Store, resolve: Callable[[str, str], Resolved],
                 wall: Callable[[], int] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.resolve = resolve
        self.timing = timing_from(settings)
        if self.timing.native_scan and not scanned.AVAILABLE:
            log.warning("the C fast path (collectors._scan) is not built: every record is decoded by orjson, at about "
                        "40% of the throughput (reinstall with a C compiler: make install)")
        self.topic = settings.topic
        self.stats = Statistics()
        self._wall = wall or (lambda: time.time_ns() // 1_000_000)
        self.partitions: dict[int, PartitionProcessor] = {}
        self._revoked: set[int] = set()  # kept between a revoke and the next assignment, but silent
        self._committed: dict[int, int] = {}
        self._generation = 0  # bumped on every assignment: commits prepared before it are void
        self.counts: Counter[str] = Counter()
        self._consumer = None
        self._producer = None
        self._partials_partitions = 0
        self._checkpointer = _Checkpointer(store, self.topic)
        self._pending_commit = False
        self._last_full_report = 0.0
        self.first_record_ms: int | None = None  # when this stage first got a record (benchmarks read it)
        self.loop_at: float | None = None  # monotonic time the poll loop last went round (a stall watchdog reads it)

    # -- Kafka clients -------------------------------------------------------------------------
    def _clients(self):
        from confluent_kafka import Consumer, Producer

        s = self.settings
        ensure_topics(s, {s.topic: s.topic_partitions, s.partials_topic: s.partials_topic_partitions,
                          s.dead_letter_topic: s.partials_topic_partitions})
        conf = consumer_config(s, s.consumer_group, stats=self.stats, instance_id=s.collector_instance_id)
        conf["on_commit"] = self._on_commit
        consumer = Consumer(conf)
        producer = Producer(producer_config(s, client_id="skewwatch-collector"))
        consumer.subscribe([s.topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
        self._partials_partitions = topic_partitions(producer, s.partials_topic) or s.partials_topic_partitions
        return consumer, producer

    def _on_assign(self, consumer, partitions) -> None:  # noqa: ANN001 - confluent types
        self._generation += 1
        mine = {tp.partition for tp in partitions}
        self._revoked.clear()
        for p in list(self.partitions):
            if p not in mine:
                log.info("partition %d moved to another collector: its open windows are left to the new owner", p)
                del self.partitions[p]
                self._committed.pop(p, None)
        for tp in partitions:
            kept = self.partitions.get(tp.partition)
            if kept is not None and kept.position is not None:
                tp.offset = kept.position  # resume where this collector was, not at the commit
                continue
            checkpoint = None
            try:
                checkpoint = self.store.load_checkpoint(self.topic, tp.partition)
            except StoreError as exc:
                self.counts["checkpoint_load_failures"] += 1
                log.warning("partition %d: no checkpoint (store unavailable: %s); rebuilding from the commit", tp.partition, exc)
            if checkpoint is not None and self._log_reset(consumer, tp.partition, checkpoint[0]):
                log.warning("partition %d: the broker's log ends before the checkpoint (%d): it lost its data; "
                            "starting over without the checkpoint", tp.partition, checkpoint[0])
                checkpoint = None
            self.partitions[tp.partition] = PartitionProcessor(self.topic, tp.partition, self.timing, self.resolve,
                                                               wall=self._wall, checkpoint=checkpoint)
        consumer.assign(partitions)
        self.counts["rebalances"] += 1
        self._last_full_report = 0.0  # tell the merge stage everything about the new assignment at once
        log.info("partitions assigned: %s", sorted(mine))

    def _log_reset(self, consumer, partition: int, position: int) -> bool:  # noqa: ANN001
        from confluent_kafka import TopicPartition

        try:
            _low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, partition), timeout=5)
        except Exception:  # noqa: BLE001 - cannot tell: keep the checkpoint
            return False
        # shorter than the checkpoint by more than one producer batch (Tansu's high watermark can
        # under-report by the size of the last batch, librdkafka's batches hold at most 10,000)
        return 0 <= high and high + 10_000 < position

    def _on_revoke(self, consumer, partitions) -> None:  # noqa: ANN001
        # Eager rebalancing revokes everything; keep the state (we may get the partitions back) but
        # hand over a clean commit, so a new owner starts from a checkpointed position, and tell the
        # merge stage these partitions are not caught up any more: nobody reads them until reassigned.
        revoked = [tp.partition for tp in partitions]
        self._release(revoked)
        self._commit_now(consumer, revoked, timeout_s=3.0)
        self._revoked.update(revoked)  # nothing is published or reported for them until reassigned

    def _release(self, partitions) -> None:  # noqa: ANN001
        now = self._wall()
        for p in partitions:
            proc = self.partitions.get(p)
            position = proc.position if proc is not None and proc.position is not None else -1
            raw = encode_partition(PartitionMessage(self.topic, p, False, position, now))
            for target in range(self._partials_partitions):
                self._produce(self.settings.partials_topic, raw, partition=target)

    def _on_lost(self, consumer, partitions) -> None:  # noqa: ANN001
        for tp in partitions:
            self._revoked.discard(tp.partition)
            self.partitions.pop(tp.partition, None)
            self._committed.pop(tp.partition, None)
        log.warning("partitions lost (session expired): %s", sorted(tp.partition for tp in partitions))

    def _owned(self) -> list[tuple[int, PartitionProcessor]]:
        return [(p, proc) for p, proc in self.partitions.items() if p not in self._revoked]

    # -- producing -----------------------------------------------------------------------------
    def _produce(self, topic: str, value: bytes, *, key: bytes | None = None, partition: int | None = None,
                 headers=None, on_delivery=None) -> None:  # noqa: ANN001
        producer = self._producer
        kwargs = {"key": key, "value": value, "headers": headers, "on_delivery": on_delivery}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                producer.produce(topic, **kwargs)
                return
            except BufferError:  # librdkafka's queue is full (broker slow or away): wait, never drop
                self.counts["produce_backpressure"] += 1
                producer.poll(0.1)

    def _delivery(self, p: int, token: int, what: str):  # noqa: ANN202
        def done(err, _msg) -> None:  # noqa: ANN001
            proc = self.partitions.get(p)
            if err is not None:
                self.counts[f"{what}_delivery_errors"] += 1
                log.error("Kafka refused a %s of partition %d: %s", what, p, err)
                if proc is not None:
                    proc.failed(token)
                return
            self.counts[f"{what}s_sent"] += 1
            if proc is not None:
                proc.delivered(token)

        return done

    def _emit(self, p: int, events) -> None:  # noqa: ANN001
        s = self.settings
        for e in events:
            if isinstance(e, Publish):
                model = e.partial.key.model
                self._produce(s.partials_topic, encode_partial(e.partial), key=model.encode(),
                              partition=partials_partition(model, self._partials_partitions), on_delivery=self._delivery(p, e.token, "partial"))
            elif isinstance(e, DeadLetter):
                headers = [("skewwatch-reason", e.reason.value.encode()), ("skewwatch-source-topic", self.topic.encode()),
                           ("skewwatch-source-partition", str(p).encode()),
                           ("skewwatch-source-offset", str(e.offset).encode()),
                           ("skewwatch-error", e.detail[:1000].encode("utf-8", "replace")),
                           ("skewwatch-model", e.model[:256].encode("utf-8", "replace"))]
                self._produce(s.dead_letter_topic, e.value, key=str(p).encode(), headers=headers,
                              on_delivery=self._delivery(p, e.token, "dead_letter"))

    def _report(self, everything: bool) -> None:
        """Stream reports (keyed by model, after that model's partials) and partition reports (to every
        partition of the partials topic)."""
        s = self.settings
        now = self._wall()
        for p, proc in self._owned():
            for model, closed, idle, open_windows, late in proc.stream_reports(everything=everything):
                msg = StreamMessage(self.topic, p, model, closed, idle, open_windows, late, now)
                self._produce(s.partials_topic, encode_stream(msg), key=model.encode(),
                              partition=partials_partition(model, self._partials_partitions))
            health = self.stats.health(self.topic, p)
            position = max(proc.position if proc.position is not None else -1, health.position)
            raw = encode_partition(PartitionMessage(self.topic, p, health.caught_up, position, now))
            for target in range(self._partials_partitions):
                self._produce(s.partials_topic, raw, partition=target)

    # -- committing ----------------------------------------------------------------------------
    def _prepare(self, partitions) -> tuple[list, dict[int, int]]:  # noqa: ANN001
        states, commits = [], {}
        for p in partitions:
            proc = self.partitions.get(p)
            if proc is None:
                continue
            safe = proc.safe_offset()
            cp = proc.checkpoint()
            if safe is None or cp is None or safe <= self._committed.get(p, -1):
                continue
            states.append((p, cp[0], cp[1]))
            commits[p] = safe
        return states, commits

    def _commit(self, consumer, commits: dict[int, int], *, asynchronous: bool = True) -> None:  # noqa: ANN001
        from confluent_kafka import KafkaException, TopicPartition

        offsets = [TopicPartition(self.topic, p, off) for p, off in commits.items() if p in self.partitions]
        if not offsets:
            return
        try:
            consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as exc:
            self.counts["commit_failures"] += 1
            log.warning("commit failed (retried at the next tick): %s", exc)
            return
        for tp in offsets:
            self._committed[tp.partition] = max(self._committed.get(tp.partition, -1), tp.offset)
        self.counts["commits"] += 1

    def _on_commit(self, err, partitions) -> None:  # noqa: ANN001
        if err is not None:
            self.counts["commit_failures"] += 1
            for tp in partitions:  # let the next tick try again
                self._committed.pop(tp.partition, None)
            log.warning("commit failed (retried at the next tick): %s", err)

    def _commit_now(self, consumer, partitions, *, timeout_s: float) -> None:  # noqa: ANN001
        """Checkpoint and commit synchronously (revocation, shutdown), bounded in time."""
        self._producer.flush(timeout_s)
        for _ in range(3):
            self._producer.poll(0)
        states, commits = self._prepare(partitions)
        if not commits:
            return
        try:
            self.store.save_checkpoints(self.topic, states)
        except StoreError as exc:
            self.counts["checkpoint_failures"] += 1
            log.warning("cannot checkpoint before handing partitions over (the last commit stands): %s", exc)
            return
        self._commit(consumer, commits, asynchronous=False)

    def _tick(self, consumer) -> None:  # noqa: ANN001
        # caught-up state per partition drives idleness; an outage or a backlog is never idle
        for p, proc in self._owned():
            self._emit(p, proc.tick(caught_up=self.stats.health(self.topic, p).caught_up))
        now = time.monotonic()
        everything = now - self._last_full_report >= _FULL_REPORT_S
        if everything:
            self._last_full_report = now
        self._report(everything)
        # commits the checkpointer has made safe
        while True:
            try:
                generation, commits = self._checkpointer.done.get_nowait()
            except queue.Empty:
                break
            self._pending_commit = False
            if commits and generation == self._generation:
                self._commit(consumer, commits)
        if not self._pending_commit:
            states, commits = self._prepare([p for p, _ in self._owned()])
            if commits:
                self._pending_commit = True
                self._checkpointer.requests.put((self._generation, states, commits))

    # -- the loop ------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        consumer, producer = self._clients()
        self._consumer, self._producer = consumer, producer
        self._checkpointer.start()
        last_tick = time.monotonic()
        try:
            while not stop.is_set():
                self.loop_at = time.monotonic()
                messages = consumer.consume(num_messages=2000, timeout=0.1)
                for m in messages:
                    err = m.error()
                    if err is not None:
                        self.counts["consume_errors"] += 1
                        if not err.retriable() and err.fatal():
                            log.error("fatal consumer error: %s", err)
                        continue
                    proc = self.partitions.get(m.partition())
                    if proc is None or m.partition() in self._revoked:  # revoked in between
                        continue
                    kind, ts = m.timestamp()
                    self._emit(m.partition(), proc.add(m.value(), m.offset(), ts if kind != 0 else None))
                if messages and self.first_record_ms is None:
                    self.first_record_ms = self._wall()
                    log.info("first record consumed at %d (epoch ms)", self.first_record_ms)
                self.counts["records"] += len(messages)
                producer.poll(0)
                if time.monotonic() - last_tick >= _TICK_S:
                    last_tick = time.monotonic()
                    self._tick(consumer)
        finally:
            try:
                owned = [p for p, _ in self._owned()]
                self._release(owned)
                self._commit_now(consumer, owned, timeout_s=5.0)
            finally:
                self._checkpointer.requests.put(None)
                consumer.close()  # leaves the group: the partitions move at once
                producer.flush(5.0)

    # -- metrics -------------------------------------------------------------------------------
    def snapshot(self) -> dict:
        out = {"counts": dict(self.counts), "partitions": {}}
        for p, proc in list(self.partitions.items()):
            out["partitions"][p] = {"open_partials": proc.open_partials, "held": proc.held_records,
                                    "counts": dict(proc.counts), "position": proc.position,
                                    "health": self.stats.health(self.topic, p)}
        out["lags"] = self.stats.lags()
        return out
