"""The Kafka side of a collector: a consumer-group member feeding the windower.

Offsets are committed by hand, and only up to the first record of any still-open window
(:meth:`Windower.safe_offsets`), so a crash never loses a record of an unsaved window.
Scale-out is Kafka's own: run more collectors in the same group and the partitions are
shared. Records are keyed by model name, so one model's records stay in one partition and
a window's statistics are complete in a single collector.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from collectors.pipeline import WindowOutcome, WindowProcessor
from collectors.windows import Windower
from monitor.errors import RecordError
from monitor.record import decode_record
from monitor.settings import Settings

__all__ = ["Collector"]

log = logging.getLogger(__name__)


class Collector:
    def __init__(self, settings: Settings, *, windower: Windower, processor: WindowProcessor) -> None:
        self.settings = settings
        self.windower = windower
        self.processor = processor
        self.counts: Counter[str] = Counter()
        self.outcomes: list[WindowOutcome] = []
        self._consumer = None

    def _make_consumer(self):
        from kafka import ConsumerRebalanceListener, KafkaConsumer

        collector = self

        class _Rebalance(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                if revoked:
                    dropped = collector.windower.discard_open()
                    log.info("partitions revoked %s: %d open windows left to their new owner", revoked, dropped)

            def on_partitions_assigned(self, assigned):
                log.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))

        consumer = KafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=self.settings.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_interval_ms=self.settings.max_poll_interval_ms,
            session_timeout_ms=min(10_000, self.settings.max_poll_interval_ms),
            heartbeat_interval_ms=1000,
        )
        consumer.subscribe([self.settings.topic], listener=_Rebalance())
        return consumer

    def _ingest(self, batch) -> int:
        n = 0
        for tp, messages in batch.items():
            for msg in messages:
                n += 1
                try:
                    record = decode_record(msg.value)
                except RecordError as exc:
                    self.counts["invalid_records"] += 1
                    if self.counts["invalid_records"] <= 10:
                        log.warning("skipping invalid record at %s[%d]@%d: %s", tp.topic, tp.partition, msg.offset, exc)
                    continue
                self.counts[self.windower.add(record, partition=tp.partition, offset=msg.offset).value] += 1
        return n

    def _commit(self, consumer) -> None:
        from kafka import OffsetAndMetadata

        safe = self.windower.safe_offsets()
        offsets = {}
        for tp in consumer.assignment():
            position = consumer.position(tp)
            offset = min(safe.get(tp.partition, position), position)
            offsets[tp] = OffsetAndMetadata(offset, "", -1)
        if offsets:
            consumer.commit(offsets)

    def _close(self, windows) -> None:
        for outcome in self.processor.process_all(windows):
            self.outcomes.append(outcome)
            self.counts["windows_closed"] += 1

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set, then commit and leave.

        Open windows are *not* closed on the way out: their records stay uncommitted, so the
        next owner of the partitions (this collector restarted, or another group member)
        re-reads them and builds each window whole. Saving a half window here would make the
        rest of its records arrive "late" at the next owner.
        """
        consumer = self._make_consumer()
        idle = self.settings.idle_close_seconds
        last_data = time.monotonic()
        try:
            while not stop.is_set():
                batch = consumer.poll(timeout_ms=250, max_records=5000)
                if self._ingest(batch):
                    last_data = time.monotonic()
                ready = self.windower.pop_ready()
                if not ready and self.windower.open_windows and time.monotonic() - last_data > idle:
                    ready = self.windower.pop_all()
                if ready:
                    self._close(ready)
                if batch or ready:
                    self._commit(consumer)
            self._commit(consumer)
        finally:
            consumer.close()
