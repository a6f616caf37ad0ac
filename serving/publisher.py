"""Prediction logging that never blocks a request.

``PredictionLogger.log(record)`` is O(1) on the request path: a deterministic sampling
decision on the request id, then an append to a bounded in-memory queue; when the queue
is full the record is dropped and counted. Nothing else happens on the request's thread:
no Kafka call, no thread wake-up, and no encoding unless the caller already encoded a large
record's parts off its event loop (``PredictionLogger.encode``, as serving does for requests of a
few hundred instances or more).

One background thread drains the queue at least every ``drain_interval_ms`` (default
50 ms; sooner while deliveries are being reported, so under load about every linger): it
encodes each record not yet encoded with :func:`monitor.record.encode_record_parts` and hands the parts to
a librdkafka producer (``confluent_kafka.Producer``) with Java's murmur2 partitioner. The
key is the request id (``log_partition_key="request_id"``, the default: one model's
records spread over every partition) or the model name (``"model"``: a model's records
keep their order within one partition; one request in flight per broker, so a retried
batch cannot overtake a later one). Every part of one request has the same key, so the
parts of a request land in one partition, in order. librdkafka batches for ``linger_ms``
(default 20 ms) and does the network I/O in its own C threads, outside the GIL: handing a
record over costs about 5 µs of CPU, against 30-130 µs for kafka-python's pure-Python
producer, which is what the serving benchmark measured as lost throughput.

Records reach Kafka at most about ``drain_interval_ms + linger_ms`` after the request,
nothing next to a monitoring window; ``close`` flushes at once.

Message sizes. librdkafka's ``message.max.bytes`` (and ``batch.size``) are set to
``log_message_max_bytes`` (default 1,000,000, librdkafka's own default and below Kafka's
1,048,588). When the producer is created the thread asks Kafka (DescribeConfigs) for the
topic's ``max.message.bytes``, else the broker's ``message.max.bytes``, and lowers the limit
to it when it is smaller (logged). Tansu, the embedded broker, answers DescribeConfigs with
no entries at all, so against it the configured limit stands. A record is split by rows into
parts of at most :attr:`PredictionLogger.max_record_bytes` (the limit less room for the key
and Kafka's framing), all with the same request id. Serving checks before answering that
every row of a request fits one part (:func:`check_rows_fit`; a request of a few hundred
instances is known to fit from its body size alone, :func:`fits_one_message`), so a record
that serving accepted is never refused by Kafka for its size.

Broker outages. The thread first checks that Kafka answers (a metadata request within
``connect_timeout_s``) and retries with exponential backoff while it does not, at
start-up or after librdkafka reports every broker down. While Kafka is unreachable the
thread takes nothing from the queue, so records wait there (bounded) until the broker
comes back, and requests never wait for Kafka. Records already handed to librdkafka are
capped at the queue size too, so a broker that dies later also ends in counted drops,
not in unbounded memory; librdkafka retries them until ``message_timeout_s`` and then
fails them (counted in ``send_errors``).
"""

from __future__ import annotations

import collections
import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping, Sequence

import orjson

from monitor.errors import RecordError
from monitor.record import PredictionRecord, encode_record_parts
from monitor.settings import Settings

__all__ = ["FRAMING_BYTES", "LoggerStats", "PredictionLogger", "check_rows_fit", "fits_one_message", "keep_in_sample"]

log = logging.getLogger(__name__)

_HASH_SPACE = 1 << 64
_ERROR_REPORT_S = 10.0
#: Room left in each Kafka message for the key (a request id or model name, at most 256 bytes)
#: and the record and batch framing (about 80 bytes).
FRAMING_BYTES = 1024
# What a record carries besides its rows: names, ids, time, part numbers, 32 attributes of 256
# characters (up to 2 bytes each in UTF-8 from a latin-1 header) and their names.
_RECORD_OVERHEAD = 64 * 1024
_WIDEST_FLOAT = -1.7976931348623157e308  # the longest a float prediction encodes to
_PART_DIGITS = 16  # "part"/"parts" of a split record take up to 8 more digits than 0 and 1


def fits_one_message(body_bytes: int, instances: int, max_bytes: int) -> bool:
    """Whether the record of a predict body of ``body_bytes`` with ``instances`` surely fits ``max_bytes``.

    Re-encoding cannot grow a JSON body more than 4 times (``1e15`` becomes
    ``1000000000000000.0``; strings and names only shrink or stay), and each row adds one
    float prediction.
    """
    return 4 * body_bytes + 32 * instances + _RECORD_OVERHEAD <= max_bytes


def check_rows_fit(
    *, model_name: str, model_version: str, event_time: datetime, request_id: str,
    instances: Sequence[Mapping[str, Any]], attributes: Mapping[str, str], max_bytes: int,
) -> None:
    """Raise :class:`RecordError` (reason ``too_large``) unless the widest row fits one message alone.

    A record splits by rows, so it fits in parts exactly when its widest row, with the widest
    possible prediction, does. Costs one ``orjson.dumps`` per instance: for large requests only.
    """
    widest = max(instances, key=lambda inst: len(orjson.dumps(inst)))
    probe = PredictionRecord(model_name=model_name, model_version=model_version, event_time=event_time,
                             request_id=request_id, instances=(widest,), predictions=(_WIDEST_FLOAT,),
                             attributes=attributes)
    encode_record_parts(probe, max_bytes=max_bytes - _PART_DIGITS)


def keep_in_sample(request_id: str, rate: float) -> bool:
    """Deterministic sampling: the same request id always gets the same answer for a rate.

    The id is hashed (BLAKE2b, 64 bits) to a point in [0, 1); the record is kept when the
    point is below ``rate``.
    """
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.blake2b(request_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * _HASH_SPACE


@dataclass(frozen=True, slots=True)
class LoggerStats:
    """A consistent snapshot of the logger's counters."""

    enqueued: int
    sent: int
    split: int
    dropped_queue_full: int
    dropped_sampling: int
    send_errors: int
    dropped_on_close: int
    connect_failures: int
    queue_depth: int
    in_flight: int
    connected: bool


class _Counters:
    """Counters bumped from request threads, the logger thread and Kafka's I/O thread."""

    __slots__ = (
        "lock", "enqueued", "sent", "split", "dropped_queue_full", "dropped_sampling",
        "send_errors", "dropped_on_close", "connect_failures", "in_flight",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.enqueued = self.sent = self.split = self.dropped_queue_full = self.dropped_sampling = 0
        self.send_errors = self.dropped_on_close = self.connect_failures = self.in_flight = 0

    def bump(self, name: str, by: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + by)


class _Entry:
    """A queued record, its encoded parts once known, and (when split) what tracks their delivery."""

    __slots__ = ("record", "parts", "tracker")

    def __init__(self, record: PredictionRecord, parts: list[bytes] | None) -> None:
        self.record, self.parts, self.tracker = record, parts, None


class _Parts:
    """Delivery of the parts of one split record: it is sent once every part is acknowledged."""

    __slots__ = ("logger", "pending", "failed")

    def __init__(self, logger: "PredictionLogger", parts: int) -> None:
        self.logger, self.pending, self.failed = logger, parts, False

    def delivered(self, err: Any, _message: Any) -> None:
        c = self.logger._counters
        with c.lock:
            c.in_flight -= 1
        self._settle(1, err)

    def abandon(self, parts: int, err: Any) -> None:
        """``parts`` that will never be handed over (the record failed part-way)."""
        self._settle(parts, err)

    def _settle(self, parts: int, err: Any) -> None:
        c = self.logger._counters
        with c.lock:
            self.pending -= parts
            self.failed = self.failed or err is not None
            done = self.pending == 0
            if done:
                if self.failed:
                    c.send_errors += 1
                else:
                    c.sent += 1
        if err is not None and hasattr(err, "str"):
            self.logger._report("delivery", f"record part(s) failed delivery: {err.str()}")


class PredictionLogger:
    """Logs :class:`PredictionRecord` objects to Kafka from one background thread.

    ``start()`` launches the thread (idempotent); ``close(timeout)`` stops it after sending
    what it can within ``timeout`` seconds. Usable as a context manager. ``log`` works
    before ``start`` (records wait in the queue).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        connect_timeout_s: float = 5.0,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 10.0,
        linger_ms: int = 20,
        drain_interval_ms: int = 50,
        message_timeout_s: float = 120.0,
    ) -> None:
        if linger_ms < 0 or drain_interval_ms <= 0 or message_timeout_s * 1000 <= linger_ms:
            raise ValueError(
                f"need linger_ms >= 0 (got {linger_ms}), drain_interval_ms > 0 (got {drain_interval_ms}) and "
                f"message_timeout_s longer than the linger (got {message_timeout_s})"
            )
        self._bootstrap = settings.kafka_bootstrap_servers
        self._topic = settings.topic
        self._rate = settings.log_sample_rate
        self._capacity = settings.log_queue_size
        self._key_by_model = settings.log_partition_key == "model"
        self._configured_max = settings.log_message_max_bytes
        self._message_max = settings.log_message_max_bytes  # lowered to Kafka's limit when it reports one
        self._described = False
        # the queue's bound; messages handed to librdkafka and not yet acknowledged are capped at it too
        self._queue: collections.deque[_Entry] = collections.deque()
        self._connect_timeout_s = connect_timeout_s
        self._backoff_initial = backoff_initial_s
        self._backoff_max = backoff_max_s
        self._drain_interval_s = drain_interval_ms / 1000.0
        self._producer_config: dict[str, Any] = {
            "bootstrap.servers": self._bootstrap,
            "client.id": "skewwatch-prediction-log",
            # One request in flight per broker: a retried batch cannot overtake a later one, so a
            # model's records keep their order. Not idempotent: an idempotent producer stalls
            # silently against a broker that lost its producer state (Tansu's memory storage
            # after a restart); a retry after a lost acknowledgement may duplicate a record.
            "enable.idempotence": False,
            "max.in.flight.requests.per.connection": 1,
            # the Java client's partitioner: a key lands on the partition any Kafka client picks
            "partitioner": "murmur2_random",
            # set, not left to defaults: records are split into parts that fit (see the module docstring)
            "message.max.bytes": self._message_max,
            "batch.size": self._message_max,
            "linger.ms": linger_ms,
            "message.timeout.ms": int(message_timeout_s * 1000),
            # never the binding limit (we cap in-flight records ourselves), but bounded
            "queue.buffering.max.messages": 2 * settings.log_queue_size + 1000,
            "socket.connection.setup.timeout.ms": max(int(connect_timeout_s * 1000), 1000),
            "reconnect.backoff.ms": max(int(backoff_initial_s * 1000), 1),
            "reconnect.backoff.max.ms": max(int(backoff_max_s * 1000), 1),
            "log_level": 0,  # librdkafka's own log lines off: errors arrive through error_cb, rate-limited
            "error_cb": self._on_client_error,
            "on_delivery": self._on_delivery,
        }
        self._counters = _Counters()
        self._reports: dict[str, tuple[float, int]] = {}  # rate-limited warnings: kind -> (last, unreported)
        self._stop = threading.Event()
        self._producer: Any = None
        self._connected = False
        self._fatal = False  # set by a fatal client error: the producer must be replaced
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._close_deadline = 0.0
        self._closed = False

    # -- request path -------------------------------------------------------------------

    def log(self, record: PredictionRecord, parts: list[bytes] | None = None) -> bool:
        """Queue ``record`` for Kafka without waiting; return whether it was queued.

        ``parts`` are the record already encoded by :meth:`encode` (the sidecar and large
        serving requests encode off the event loop); otherwise this thread encodes it.
        """
        c = self._counters
        if not keep_in_sample(record.request_id, self._rate):
            c.bump("dropped_sampling")
            return False
        entry = _Entry(record, parts)
        with c.lock:
            if self._stop.is_set():
                c.dropped_on_close += 1
                return False
            if len(self._queue) >= self._capacity:
                c.dropped_queue_full += 1
                return False
            self._queue.append(entry)
            c.enqueued += 1
        return True

    def keeps(self, request_id: str) -> bool:
        """Whether the sample keeps the record of ``request_id``."""
        return keep_in_sample(request_id, self._rate)

    @property
    def max_message_bytes(self) -> int:
        """The Kafka message limit in force (``log_message_max_bytes``, or Kafka's when lower)."""
        return self._message_max

    @property
    def max_record_bytes(self) -> int:
        """The most bytes one encoded record part may take."""
        return self._message_max - FRAMING_BYTES

    def encode(self, record: PredictionRecord) -> list[bytes]:
        """``record`` as the parts this logger would send; :class:`RecordError` (``too_large``) if a row cannot fit."""
        return encode_record_parts(record, max_bytes=self.max_record_bytes)

    def stats(self) -> LoggerStats:
        c = self._counters
        with c.lock:
            return LoggerStats(
                enqueued=c.enqueued,
                sent=c.sent,
                split=c.split,
                dropped_queue_full=c.dropped_queue_full,
                dropped_sampling=c.dropped_sampling,
                send_errors=c.send_errors,
                dropped_on_close=c.dropped_on_close,
                connect_failures=c.connect_failures,
                queue_depth=len(self._queue),
                in_flight=c.in_flight,
                connected=self._connected,
            )

    @property
    def sample_rate(self) -> float:
        return self._rate

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> "PredictionLogger":
        with self._start_lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="skewwatch-prediction-logger", daemon=True)
                self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> LoggerStats:
        """Stop taking records, send what is queued within ``timeout`` seconds, close Kafka.

        Records still queued when time runs out (or when no broker was ever reached) are
        counted in ``dropped_on_close``; records Kafka had not acknowledged by then are
        aborted and counted in ``send_errors``. Returns the final counters (and logs them
        once). Closing again is harmless.
        """
        with self._start_lock:
            already, self._closed = self._closed, True
        if already:
            return self.stats()
        self._close_deadline = time.monotonic() + max(timeout, 0.0)
        with self._counters.lock:  # log() checks the flag under this lock: nothing slips in after
            self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=max(timeout, 0.0) + 3.0)  # + the abort step of _close_producer
            if thread.is_alive():
                log.warning("prediction logger thread did not stop within %.1fs", timeout)
        else:
            self._drop_remaining()
        stats = self.stats()
        log.info(
            "prediction log closed: %d sent, %d send errors, %d dropped (queue full), %d unsent at close",
            stats.sent, stats.send_errors, stats.dropped_queue_full, stats.dropped_on_close,
        )
        return stats

    def __enter__(self) -> "PredictionLogger":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the producer thread ------------------------------------------------------------

    def _run(self) -> None:
        backoff = self._backoff_initial
        while not self._stop.is_set():
            if self._fatal:
                self._abandon_producer()
            if not self._connected:
                if not self._connect():
                    if self._producer is not None:
                        self._producer.poll(0)  # fail what librdkafka gave up on, report errors
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2.0, self._backoff_max)
                    continue
                backoff = self._backoff_initial
            self._drain()
            self._producer.poll(self._drain_interval_s)  # delivery reports; returns early on events
        self._shutdown()

    def _connect(self) -> bool:
        """Create the producer if needed and check that Kafka answers a metadata request.

        The check waits up to ``connect_timeout_s`` in short slices, so ``close`` never
        waits for it.
        """
        from confluent_kafka import KafkaError, KafkaException, Producer  # only this thread touches Kafka

        deadline = time.monotonic() + self._connect_timeout_s
        try:
            if self._producer is None:
                self._producer = Producer(self._producer_config)
            while True:
                try:
                    self._producer.list_topics(self._topic, timeout=min(max(deadline - time.monotonic(), 0.01), 0.25))
                    break
                except KafkaException as exc:
                    timed_out = exc.args[0].code() == KafkaError._TIMED_OUT
                    if not timed_out or self._stop.is_set() or time.monotonic() >= deadline:
                        raise
        except (KafkaException, ValueError, TypeError) as exc:  # unreachable broker, bad address: retry
            self._counters.bump("connect_failures")
            self._report("connect", f"cannot reach Kafka at {self._bootstrap} ({exc}); retrying")
            return False
        if not self._described:
            self._described = True
            self._adopt_kafka_limit(deadline)
        self._connected = True
        log.info("prediction log: connected to Kafka at %s, topic %s (messages up to %d bytes)",
                 self._bootstrap, self._topic, self._message_max)
        return True

    def _kafka_limit(self, deadline: float) -> tuple[int | None, str]:
        """The topic's ``max.message.bytes``, else the broker's ``message.max.bytes``, as Kafka reports them."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

        timeout = max(deadline - time.monotonic(), 1.0)
        admin = AdminClient({"bootstrap.servers": self._bootstrap, "log_level": 0,
                             "socket.connection.setup.timeout.ms": max(int(timeout * 1000), 1000)})
        try:
            brokers = sorted(admin.list_topics(timeout=timeout).brokers)
            wanted = [(ConfigResource(ResourceType.TOPIC, self._topic), "max.message.bytes", f"topic {self._topic}")]
            if brokers:
                wanted.append((ConfigResource(ResourceType.BROKER, str(brokers[0])), "message.max.bytes",
                               f"broker {brokers[0]}"))
            futures = admin.describe_configs([r for r, _, _ in wanted], request_timeout=timeout)
            for resource, name, where in wanted:  # the topic's own limit wins: it is what the broker applies
                try:
                    entries = next(f for r, f in futures.items() if r == resource).result(timeout=timeout)
                except (KafkaException, StopIteration, TimeoutError) as exc:  # no topic yet, not allowed, not supported
                    log.debug("prediction log: DescribeConfigs for %s failed: %s", where, exc)
                    continue
                entry = entries.get(name)
                if entry is not None and entry.value is not None and str(entry.value).isdigit():
                    return int(entry.value), f"{where} {name}"
        except KafkaException as exc:
            log.debug("prediction log: DescribeConfigs failed: %s", exc)
        return None, ""

    def _adopt_kafka_limit(self, deadline: float) -> None:
        """Lower the message limit to Kafka's when it reports a smaller one (a fresh, empty producer is rebuilt)."""
        limit, where = self._kafka_limit(deadline)
        if limit is None:
            log.info("prediction log: Kafka reports no max.message.bytes for topic %s (Tansu answers DescribeConfigs "
                     "with no entries); messages stay within log_message_max_bytes=%d", self._topic, self._message_max)
            return
        if limit >= self._configured_max:
            log.info("prediction log: %s is %d; messages stay within log_message_max_bytes=%d",
                     where, limit, self._configured_max)
            return
        if limit < 2 * FRAMING_BYTES:
            log.error("prediction log: %s is %d bytes, too small for any record; keeping %d", where, limit,
                      self._message_max)
            return
        log.warning("prediction log: %s is %d, below log_message_max_bytes=%d: records are split to fit it",
                    where, limit, self._configured_max)
        from confluent_kafka import Producer

        self._message_max = limit
        self._producer_config["message.max.bytes"] = self._producer_config["batch.size"] = limit
        self._producer.flush(0)  # nothing was produced yet: this only drops the connection's state
        self._producer = Producer(self._producer_config)

    def _drain(self, *, limit: int | None = None) -> None:
        """Hand queued records' parts to librdkafka, up to the in-flight cap (or ``limit``) in messages."""
        room = self._capacity - self._counters.in_flight if limit is None else limit
        queue, producer, topic, budget = self._queue, self._producer, self._topic, self.max_record_bytes
        while room > 0:
            try:
                entry = queue.popleft()
            except IndexError:
                return
            record, parts = entry.record, entry.parts
            if parts is None or (entry.tracker is None and max(map(len, parts)) > budget):
                try:  # encoded here, or encoded before Kafka reported a smaller limit
                    parts = entry.parts = encode_record_parts(record, max_bytes=budget)
                except Exception as exc:  # a row over the limit (serving checks first), an unencodable value
                    self._counters.bump("send_errors")
                    self._report("send", f"cannot encode the record of request {record.request_id}: {exc}")
                    continue
            key = (record.model_name if self._key_by_model else record.request_id).encode("utf-8")
            if len(parts) > 1 and entry.tracker is None:
                entry.tracker = _Parts(self, len(parts))
                self._counters.bump("split")
            tracker = entry.tracker
            for i, part in enumerate(parts):
                try:
                    if tracker is None:
                        producer.produce(topic, part, key)
                    else:
                        producer.produce(topic, part, key, on_delivery=tracker.delivered)
                except BufferError:  # librdkafka's own buffer is full: keep the rest, try next tick
                    entry.parts = parts[i:]
                    queue.appendleft(entry)
                    return
                except Exception as exc:  # librdkafka refused the message
                    self._report("send", f"cannot send the record of request {record.request_id}: {exc}")
                    if tracker is None:
                        self._counters.bump("send_errors")
                    else:
                        tracker.abandon(len(parts) - i, exc)
                    break
                self._counters.bump("in_flight")
                room -= 1

    def _on_delivery(self, err: Any, _message: Any) -> None:
        # runs on this thread, inside poll()/flush()
        c = self._counters
        with c.lock:
            c.in_flight -= 1
            if err is None:
                c.sent += 1
                return
            c.send_errors += 1
        # A lost broker fails every pending record at once (thousands of reports): one warning
        # per record would hold the GIL and stall requests, so report at most once every
        # _ERROR_REPORT_S with the count since the last report.
        self._report("delivery", f"record(s) failed delivery: {err.str()}")

    def _on_client_error(self, err: Any) -> None:
        from confluent_kafka import KafkaError

        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            if self._connected:
                log.warning("prediction log: every Kafka broker at %s is down; records wait in the queue", self._bootstrap)
            self._connected = False
        elif err.fatal():  # e.g. the idempotent producer's state is lost: the loop starts a new one
            log.error("prediction log: fatal Kafka producer error, starting a new producer: %s", err.str())
            self._fatal, self._connected = True, False
        else:
            self._report("client", f"Kafka client error: {err.str()}")

    def _report(self, kind: str, message: str) -> None:
        """Log ``message`` at most once every _ERROR_REPORT_S per kind, with the count since."""
        now = time.monotonic()
        last, unreported = self._reports.get(kind, (float("-inf"), 0))
        unreported += 1
        if now - last < _ERROR_REPORT_S:
            self._reports[kind] = (last, unreported)
            return
        self._reports[kind] = (now, 0)
        repeats = f" ({unreported} times since the last report)" if unreported > 1 else ""
        log.warning("prediction log: %s%s", message, repeats)

    def _abandon_producer(self) -> None:
        producer, self._producer, self._connected, self._fatal = self._producer, None, False, False
        if producer is not None:
            producer.purge()
            producer.flush(1.0)  # the purged records' reports: counted in send_errors

    def _shutdown(self) -> None:
        producer = self._producer
        if producer is not None:
            if self._connected:
                while self._queue and time.monotonic() < self._close_deadline:
                    self._drain(limit=1000)
                    producer.poll(0.01)  # a full librdkafka buffer leaves records queued: no busy loop
            remaining = producer.flush(max(self._close_deadline - time.monotonic(), 0.0))
            if remaining:
                # Kafka is gone or slow: abort what it has not acknowledged (the reports
                # count them in send_errors) rather than wait past the caller's deadline
                log.warning("prediction log: %d records unacknowledged at close; aborting them", remaining)
                self._abandon_producer()
            self._producer = None
            self._connected = False
        self._drop_remaining()

    def _drop_remaining(self) -> None:
        with self._counters.lock:
            dropped = len(self._queue)
            self._queue.clear()
            self._counters.dropped_on_close += dropped
        if dropped:
            log.warning("prediction log: %d records not sent at close", dropped)
