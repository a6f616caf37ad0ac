"""The merge stage: partials of every source partition merged, each window decided once.

A consumer group of its own reads the partials topic (keyed by model, so one member owns each
model) and the dead-letter topic. The poll thread only polls, hands messages to a worker thread
through a bounded queue, pauses its partitions while the worker is behind (a store locked for a
minute) and commits what the worker has stored: the member never leaves its group because
something was slow.

The worker stores each partial (identified by source partition and offsets: a partial sent twice
is merged once), keeps what every source partition has closed, decides every window that no
partition holds back any more (:func:`collectors.readiness.waiting_for`), in window order per
model version, and counts dead letters by reason, exactly once (its position in the dead-letter
topic is stored with the counts). Everything it needs after a restart is in the store.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, defaultdict
from typing import Callable

from collectors.kafka import consumer_config, ensure_topics, partials_partition, topic_partitions
from collectors.messages import PartitionMessage, StreamMessage, decode
from collectors.partials import ClosedPartial
from collectors.pipeline import WindowDecider
from collectors.readiness import waiting_for
from monitor.errors import RecordError, StoreError
from monitor.keys import ALL_TRAFFIC, WindowKey
from monitor.settings import Settings
from monitor.storage import DeadLetterExample, PartialIn, PartialOutcome, PartitionState, Store, StreamState

__all__ = ["MergeStage"]

log = logging.getLogger(__name__)

_QUEUE = 20_000
_BATCH = 500


def _header(headers, name: str) -> str:  # noqa: ANN001
    for k, v in headers or ():
        if k == name:
            return (v or b"").decode("utf-8", "replace")
    return ""


class MergeStage:
    def __init__(self, settings: Settings, *, store: Store, decider: WindowDecider,
                 wall: Callable[[], int] | None = None, fresh_ms: int = 3000,
                 on_decided: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.decider = decider
        self.group = settings.merge_consumer_group or f"{settings.consumer_group}-merge"
        self._wall = wall or (lambda: time.time_ns() // 1_000_000)
        self.fresh_ms = fresh_ms  # partitions report every second (collectors.consumer)
        self._on_decided = on_decided  # e.g. the alert sender's wake-up
        self.counts: Counter[str] = Counter()
        self._queue: queue.Queue = queue.Queue(maxsize=_QUEUE)
        self._processed: dict[tuple[str, int], int] = {}
        self._processed_lock = threading.Lock()
        self._partitions_state: dict[int, PartitionState] = {}
        self._streams: dict[tuple[int, str], StreamState] = {}
        self._late_pending: Counter[WindowKey] = Counter()
        self._input_partitions = 0
        self._high_watermarks: dict[int, int] = {}  # input topic, queried by this stage itself
        self._hw_at = 0.0  # monotonic time of that query
        self._claim_ready: dict[WindowKey, float] = {}
        self.claim_delay_s = 1.0
        self._waiting: dict[str, str] = {}
        self._waiting_logged = 0.0
        self.decided = 0
        self.failed = 0
        # the partials partitions this member is assigned, and how many the topic has: it decides only
        # the windows of models carried by its partitions (None: not in a group, decide every window).
        # A model is where its messages last arrived (a collector that has not seen the topic grow yet
        # still writes to the old partition), else where partials_partition puts it.
        self._owned: tuple[frozenset[int], int] | None = None
        self._model_partition: dict[str, int] = {}  # where each model's messages last arrived
        self._partials_count = 0  # partitions of the partials topic, read in the poll loop

    # -- the poll thread -----------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        from confluent_kafka import Consumer, TopicPartition

        s = self.settings
        ensure_topics(s, {s.partials_topic: s.partials_topic_partitions, s.dead_letter_topic: s.partials_topic_partitions,
                          s.topic: s.topic_partitions})
        self._load_progress()
        conf = consumer_config(s, self.group, instance_id=f"{s.collector_instance_id}-merge" if s.collector_instance_id else None)
        consumer = Consumer(conf)

        consumer.subscribe([s.partials_topic, s.dead_letter_topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        worker = threading.Thread(target=self._work, args=(stop,), name="skewwatch-merge", daemon=True)
        worker.start()
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap_servers, "log_level": 0})
        paused = False
        last_commit = last_meta = last_hw = 0.0
        try:
            while not stop.is_set():
                if time.monotonic() - last_meta > 30 or not self._input_partitions:
                    last_meta = time.monotonic()
                    self._input_partitions = topic_partitions(consumer, s.topic) or self._input_partitions
                    self._partials_count = topic_partitions(consumer, s.partials_topic) or self._partials_count
                    owned = self._owned
                    if owned is not None and self._partials_count and owned[1] != self._partials_count:
                        self._owned = (owned[0], self._partials_count)
                if time.monotonic() - last_hw >= 0.5:
                    last_hw = time.monotonic()
                    self._query_high_watermarks(admin)
                for m in consumer.consume(num_messages=500, timeout=0.1):
                    if m.error() is not None:
                        self.counts["consume_errors"] += 1
                        continue
                    self._queue.put((m.topic(), m.partition(), m.offset(), m.value(), m.headers()))
                depth = self._queue.qsize()
                if not paused and depth > _QUEUE * 3 // 4:
                    consumer.pause(consumer.assignment())
                    paused = True
                    self.counts["paused"] += 1
                    log.warning("merge stage is behind (%d messages queued): consumption paused", depth)
                elif paused and depth < _QUEUE // 4:
                    consumer.resume(consumer.assignment())
                    paused = False
                if time.monotonic() - last_commit >= 1.0:
                    last_commit = time.monotonic()
                    self._commit(consumer, TopicPartition)
        finally:
            self._queue.put(None)
            worker.join(timeout=30)
            self._commit(consumer, TopicPartition)
            consumer.close()

    # Rebalance callbacks make no client call but assign(): confluent-kafka's list_topics inside one
    # clears the thread's call state, and the next callback of the same consume() aborts the process
    # (CallState_get: Assertion `cs != NULL' failed). The partition count is read in the poll loop.
    def _on_assign(self, consumer, partitions) -> None:  # noqa: ANN001
        s = self.settings
        self._owned = (frozenset(tp.partition for tp in partitions if tp.topic == s.partials_topic),
                       self._partials_count or s.partials_topic_partitions)
        for tp in partitions:
            if tp.topic == s.dead_letter_topic:
                try:
                    cp = self.store.load_checkpoint(s.dead_letter_topic, tp.partition)
                except StoreError:
                    cp = None
                if cp is not None:
                    tp.offset = cp[0]
        consumer.assign(partitions)
        log.info("merge stage assigned %s", sorted((tp.topic, tp.partition) for tp in partitions))

    def _on_revoke(self, consumer, partitions) -> None:  # noqa: ANN001
        self._owned = (frozenset(), 1)  # until the next assignment, decide nothing

    def _query_high_watermarks(self, admin) -> None:  # noqa: ANN001
        """The input topic's high watermarks, from the broker: what verifies a collector's "caught up"."""
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import OffsetSpec

        n = self._input_partitions
        if n <= 0:
            return
        asked = time.monotonic()
        try:
            futures = admin.list_offsets({TopicPartition(self.settings.topic, p): OffsetSpec.latest() for p in range(n)},
                                         request_timeout=2)
            found = {tp.partition: f.result().offset for tp, f in futures.items()}
        except Exception as exc:  # noqa: BLE001 - broker away: no fresh evidence, so claims stop counting
            self.counts["high_watermark_failures"] += 1
            self._high_watermarks = {}
            log.debug("cannot read the input topic's high watermarks: %s", exc)
            return
        self._high_watermarks = found
        self._hw_at = asked

    def _commit(self, consumer, TopicPartition) -> None:  # noqa: ANN001, N803
        with self._processed_lock:
            done, self._processed = self._processed, {}
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in done.items() if t == self.settings.partials_topic]
        if not offsets:
            return
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as exc:  # noqa: BLE001 - KafkaException: a rebalance or broker restart; re-read is idempotent
            self.counts["commit_failures"] += 1
            log.warning("merge stage commit failed (its partials will be re-read and recognised): %s", exc)

    # -- the worker ----------------------------------------------------------------------------
    def _load_progress(self) -> None:
        try:
            partitions, streams = self.store.progress(self.settings.topic)
        except StoreError as exc:
            log.warning("cannot read collection progress yet (%s); waiting for reports", exc)
            return
        self._partitions_state.update(partitions)
        self._streams.update({(st.source_partition, st.model): st for st in streams})

    def _work(self, stop: threading.Event) -> None:
        while True:
            batch = []
            try:
                item = self._queue.get(timeout=0.25)
            except queue.Empty:
                item = ()
            if item is None:
                return
            if item:
                batch.append(item)
                while len(batch) < _BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        self._handle(batch)
                        return
                    batch.append(item)
            try:
                if batch:
                    self._handle(batch)
                self._decide_ready()
            except StoreError as exc:
                self.counts["store_errors"] += 1
                log.warning("store unavailable in the merge stage (retrying): %s", exc)
                self._retry(batch, stop)

    def _retry(self, batch, stop: threading.Event) -> None:  # noqa: ANN001
        delay = 0.2
        while not stop.is_set():
            time.sleep(delay)
            try:
                self._handle(batch)
                self._decide_ready()
                return
            except StoreError as exc:
                self.counts["store_errors"] += 1
                delay = min(5.0, delay * 2)
                log.debug("store still unavailable: %s", exc)

    def _handle(self, batch) -> None:  # noqa: ANN001
        s = self.settings
        progress: dict[int, tuple[PartitionState | None, dict[str, StreamState]]] = {}
        dlq: dict[int, list] = defaultdict(list)
        for topic, partition, offset, value, headers in batch:
            if topic == s.dead_letter_topic:
                dlq[partition].append((offset, value, headers))
                continue
            try:
                msg = decode(value)
            except RecordError as exc:
                self.counts["bad_partials_messages"] += 1
                log.error("skipping a message of %s[%d]@%d that is not a partials message: %s", topic, partition, offset, exc)
                continue
            if isinstance(msg, ClosedPartial):
                self._model_partition[msg.key.model] = partition
                self._store_partial(msg)
            elif isinstance(msg, StreamMessage):
                self._model_partition[msg.model] = partition
                st = StreamState(msg.source_partition, msg.model, msg.closed_through_ms, msg.idle, msg.open_windows,
                                 msg.sent_ms)
                prev = self._streams.get((msg.source_partition, msg.model))
                if prev is None or prev.sent_ms <= st.sent_ms:
                    if prev is not None and prev.closed_through_ms > st.closed_through_ms:
                        st = StreamState(st.source_partition, st.model, prev.closed_through_ms, st.idle,
                                         st.open_windows, st.sent_ms)
                    self._streams[(msg.source_partition, msg.model)] = st
                    progress.setdefault(msg.source_partition, (None, {}))[1][msg.model] = st
                for (version, start), n in msg.late.items():
                    self._late(WindowKey(msg.model, version, ALL_TRAFFIC, start), n)
            elif isinstance(msg, PartitionMessage):
                st = PartitionState(msg.source_partition, msg.caught_up, msg.position, msg.sent_ms)
                prev = self._partitions_state.get(msg.source_partition)
                if prev is None or prev.sent_ms <= st.sent_ms:
                    self._partitions_state[msg.source_partition] = st
                    entry = progress.setdefault(msg.source_partition, (None, {}))
                    progress[msg.source_partition] = (st, entry[1])
        for p, (part, streams) in progress.items():
            state = part or self._partitions_state.get(p)
            if state is not None:
                self.store.save_progress(s.topic, state, streams.values())
        for partition, items in dlq.items():
            self._count_dead_letters(partition, items)
        with self._processed_lock:
            for topic, partition, offset, _v, _h in batch:
                key = (topic, partition)
                if offset > self._processed.get(key, -1):
                    self._processed[key] = offset

    def _store_partial(self, p: ClosedPartial) -> None:
        stored = PartialIn(key=p.key, end_ms=p.end_ms, source_topic=p.source_topic,
                           source_partition=p.source_partition, first_offset=p.first_offset,
                           last_offset=p.last_offset, counts=p.counts, features=p.features,
                           outputs=p.outputs, sample=p.sample)
        outcome = self.store.add_partial(stored)
        self.counts[f"partials_{outcome.value}"] += 1
        if outcome is PartialOutcome.ADDED:
            self.decider.fold(stored)
        elif outcome is PartialOutcome.DECIDED:
            # its window was decided without it: the records are counted as late there
            self.store.add_late_records(p.key, p.counts.records)
            log.warning("a partial of %s (partition %d, %d records) arrived after its window was decided",
                        p.key, p.source_partition, p.counts.records)
        elif outcome is PartialOutcome.OVERLAP:
            log.info("a partial of %s overlapping one already stored was recognised and dropped (partition %d, "
                     "offsets %d..%d)", p.key, p.source_partition, p.first_offset, p.last_offset)

    def _late(self, key: WindowKey, n: int) -> None:
        if not self.store.add_late_records(key, n):
            self._late_pending[key] += n

    def _count_dead_letters(self, partition: int, items) -> None:  # noqa: ANN001
        """Count dead letters exactly once: by their identity in the source topic, with this consumer's
        position saved in the same transaction."""
        now = self._wall()
        letters = []
        for _offset, _value, headers in items:
            try:
                source_partition = int(_header(headers, "skewwatch-source-partition"))
                source_offset = int(_header(headers, "skewwatch-source-offset"))
            except ValueError:
                source_partition = source_offset = -1
            letters.append(DeadLetterExample(_header(headers, "skewwatch-reason") or "unknown",
                                             _header(headers, "skewwatch-model"),
                                             _header(headers, "skewwatch-source-topic"), source_partition,
                                             source_offset, _header(headers, "skewwatch-error"), now))
        last = max(o for o, _v, _h in items)
        fresh = self.store.count_dead_letters(letters, cursor=(self.settings.dead_letter_topic, partition, last + 1, "{}"))
        self.counts["dead_letters_counted"] += fresh
        self.counts["dead_letters_seen_again"] += len(letters) - fresh

    def _decide_ready(self) -> None:
        now = self._wall()
        blocked: set[tuple[str, str, str]] = set()
        waiting: dict[str, str] = {}
        owned = self._owned
        for key, end_ms in self.store.pending_windows():
            series = (key.model, key.model_version, key.segment)
            if series in blocked:
                continue
            if owned is not None:
                at = self._model_partition.get(key.model)
                if (partials_partition(key.model, owned[1]) if at is None else at) not in owned[0]:
                    continue  # another member of the merge group decides this model
            ask = dict(partitions=self._input_partitions, partition_states=self._partitions_state,
                       streams=self._streams, high_watermarks=self._high_watermarks, now_ms=now, fresh_ms=self.fresh_ms)
            why = waiting_for(key.model, key.start_ms, end_ms, claims=False, **ask)
            if why is not None:
                why = waiting_for(key.model, key.start_ms, end_ms, **ask)
                if why is None:  # ready on claims: confirm with a high watermark read after this moment
                    since = self._claim_ready.setdefault(key, time.monotonic())
                    if self._hw_at - since < self.claim_delay_s:
                        why = "confirming partitions' caught-up claims with the broker"
            if why is not None:
                blocked.add(series)
                waiting[key.model] = why
                continue
            self._claim_ready.pop(key, None)
            outcome = self.decider.decide(key, extra_late=self._late_pending.pop(key, 0))
            if outcome.status == "decided":
                self.decided += 1
                if self._on_decided is not None:
                    self._on_decided()
            elif outcome.status == "failed":
                self.failed += 1
        if waiting and time.monotonic() - self._waiting_logged > 30:
            for model, why in sorted(waiting.items()):
                log.info("windows of %s wait: %s", model, why)
            self._waiting_logged = time.monotonic()
        self._waiting = waiting

    @property
    def waiting(self) -> dict[str, str]:
        """Per model, why its oldest pending window is not decided yet."""
        return dict(self._waiting)
