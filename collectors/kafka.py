"""librdkafka (confluent-kafka) clients for the collectors: configuration, topics, partition health.

One place for the settings every collector client shares, and for reading librdkafka's
statistics: per partition, whether the consumer has read everything the broker holds (and the
broker answers), and the lag. On the embedded broker (Tansu) the high watermark can under-report
by the size of the last batch, so the lag there is a lower bound; "caught up" stays exact (an
unread last batch still leaves the fetch position below the reported high watermark).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from monitor.settings import Settings

__all__ = ["FETCH", "PartitionHealth", "Statistics", "consumer_config", "producer_config", "ensure_topics",
           "topic_partitions", "partials_partition", "murmur2"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PartitionHealth:
    caught_up: bool
    lag: int  # records the broker holds beyond the fetch position (a lower bound on Tansu)
    position: int  # the consumer's fetch position (-1 unknown)


class Statistics:
    """Holds the latest librdkafka statistics (``stats_cb``); read from any thread."""

    def __init__(self, *, fresh_ms: int = 3000) -> None:
        self._lock = threading.Lock()
        self._partitions: dict[tuple[str, int], PartitionHealth] = {}
        self._at = 0.0
        self._fresh_s = fresh_ms / 1000

    def __call__(self, raw: str) -> None:
        try:
            data = json.loads(raw)
        except ValueError:
            return
        up = {int(b["nodeid"]) for b in data.get("brokers", {}).values()
              if b.get("state") == "UP" and isinstance(b.get("nodeid"), int) and b["nodeid"] >= 0}
        found: dict[tuple[str, int], PartitionHealth] = {}
        for topic, t in data.get("topics", {}).items():
            for pid, p in t.get("partitions", {}).items():
                partition = int(pid)
                if partition < 0:
                    continue
                hi, nxt = int(p.get("hi_offset", -1)), int(p.get("next_offset", -1001))
                app = int(p.get("app_offset", -1001))
                position = max(nxt, app)
                active = p.get("fetch_state") == "active" and int(p.get("leader", -1)) in up
                caught = active and hi >= 0 and position >= 0 and position >= hi and int(p.get("fetchq_cnt", 0)) == 0
                found[(topic, partition)] = PartitionHealth(caught, max(0, hi - max(position, 0)) if hi >= 0 else 0,
                                                            position)
        with self._lock:
            self._partitions = found
            self._at = time.monotonic()

    def health(self, topic: str, partition: int) -> PartitionHealth:
        with self._lock:
            stale = time.monotonic() - self._at > self._fresh_s
            h = self._partitions.get((topic, partition))
        if h is None or stale:
            return PartitionHealth(False, 0, -1)
        return h

    def lags(self) -> dict[tuple[str, int], int]:
        with self._lock:
            return {k: v.lag for k, v in self._partitions.items()}


class _ErrorLog:
    """librdkafka's errors (its own log is off): one line per ``every_s`` with a count of the others,
    so a broker outage is visible without flooding the log."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self._last = -1e18
        self._quiet = 0
        self._lock = threading.Lock()

    def __call__(self, err: Any) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.every_s:
                self._quiet += 1
                return
            quiet, self._quiet, self._last = self._quiet, 0, now
        more = f" ({quiet} more since the last report)" if quiet else ""
        log.warning("kafka: %s%s", err, more)


_error_cb = _ErrorLog()


#: How every collector consumer fetches (also bench/bench_collect.py's bare librdkafka loop). Records
#: up to the 32 MB record limit must fit a partition's fetch. librdkafka stops fetching a partition
#: for fetch.queue.backoff.ms whenever its local queue is over queued.max.messages.kbytes; at the
#: default 1000 ms (with the default 64 MB queue: ~7,000 records of 100 instances, under a second of
#: work) the consumer sat idle for part of every second and read 8k records/s where it reads 11-14k
#: with 20 ms, and as fast with a 16 MB queue, which keeps the collector's memory flat
#: (bench/results/collect.md).
FETCH: dict[str, int] = {
    "fetch.max.bytes": 64 << 20,
    "max.partition.fetch.bytes": 16 << 20,
    "fetch.queue.backoff.ms": 20,
    "queued.max.messages.kbytes": 16 << 10,
}


def consumer_config(settings: Settings, group: str, *, stats: Statistics | None = None,
                    instance_id: str | None = None) -> dict[str, Any]:
    poll_ms = settings.max_poll_interval_ms
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # eager assignment: on the embedded broker cooperative-sticky left partitions unowned
        "partition.assignment.strategy": "roundrobin",
        "max.poll.interval.ms": poll_ms,
        "session.timeout.ms": min(poll_ms, 10_000),
        "heartbeat.interval.ms": max(100, min(1000, min(poll_ms, 10_000) // 3)),
        **FETCH,
        "fetch.wait.max.ms": 100,
        "error_cb": _error_cb,
        "log_level": 0,
    }
    if stats is not None:
        conf["statistics.interval.ms"] = 1000
        conf["stats_cb"] = stats
    if instance_id:
        conf["group.instance.id"] = instance_id
    return conf


def producer_config(settings: Settings, *, client_id: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "client.id": client_id,
        "acks": "all",
        "enable.idempotence": False,  # see serving.publisher: a restarted Tansu loses producer state
        "max.in.flight.requests.per.connection": 1,  # a retried batch never overtakes a later one
        "linger.ms": 5,
        "message.timeout.ms": 0,  # retry until the broker takes it: offsets are not committed before
        "message.max.bytes": 32 << 20,
        "queue.buffering.max.kbytes": 256 << 10,
        "partitioner": "murmur2_random",
        "error_cb": _error_cb,
        "log_level": 0,
    }


def ensure_topics(settings: Settings, topics: dict[str, int]) -> None:
    """Create the topics (name -> partitions) that do not exist; idempotent, never raises for existing ones."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers, "log_level": 0, "error_cb": _error_cb})
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [NewTopic(name, num_partitions=n, replication_factor=1) for name, n in topics.items() if name not in existing]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, request_timeout=10).items():
        try:
            future.result()
        except Exception as exc:  # noqa: BLE001 - TOPIC_ALREADY_EXISTS from a racing process is fine
            if "already exists" not in str(exc).lower() and "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise


def topic_partitions(client: Any, topic: str) -> int:
    """How many partitions ``topic`` has (0 when unknown); ``client`` is a Consumer or Producer."""
    try:
        meta = client.list_topics(topic, timeout=5)
    except Exception:  # noqa: BLE001 - broker away: unknown for now
        return 0
    t = meta.topics.get(topic)
    if t is None or t.error is not None:
        return 0
    return len(t.partitions)


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (the Java client's ``Utils.murmur2``, librdkafka's ``murmur2_random``
    partitioner), as an unsigned 32-bit value."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    length = len(data)
    h = 0x9747B28C ^ length
    end = length - length % 4
    for i in range(0, end, 4):
        k = (int.from_bytes(data[i:i + 4], "little") * m) & mask
        k ^= k >> 24
        h = ((h * m) & mask) ^ ((k * m) & mask)
    rest = length % 4
    if rest == 3:
        h ^= data[end + 2] << 16
    if rest >= 2:
        h ^= data[end + 1] << 8
    if rest >= 1:
        h = ((h ^ data[end]) * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    return h ^ (h >> 15)


def partials_partition(model: str, partitions: int) -> int:
    """The partition of the partials topic that carries ``model``'s partials and stream reports: the
    collectors produce to it explicitly and the merge stage decides the models of the partitions it is
    assigned, so one member of the merge group decides each model's windows. The same partition the
    collectors' producer (``partitioner: murmur2_random``, as Java clients) picks for the key ``model``."""
    return (murmur2(model.encode("utf-8", "surrogatepass")) & 0x7FFFFFFF) % partitions
