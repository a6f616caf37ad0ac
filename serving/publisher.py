"""Prediction logging that never blocks a request.

``PredictionLogger.log(record)`` is O(1) on the request path: a deterministic sampling
decision on the request id, then ``put_nowait`` into a bounded queue; when the queue is
full the record is dropped and counted. One background thread owns the Kafka producer:
it creates it (retrying with exponential backoff while the broker is unreachable, at
start-up or later), encodes records with :func:`monitor.record.encode_record` and sends
them keyed by model name, so one model's records keep their order within a partition.

While no producer exists the thread takes nothing from the queue, so records wait in the
queue (bounded) until the broker comes back, and requests never wait for Kafka. Records
handed to Kafka but not yet acknowledged are capped at the queue size too (kafka-python
buffers without limit), so a broker that dies later also ends in counted drops, not in
unbounded memory.

The producer batches for ``linger_ms`` (default 50 ms) and keeps no client metrics: in
pure-Python kafka-python the per-batch and per-metric work dominates, and a 5 ms linger
costs about 2.5 times the CPU per record at a few hundred records a second, CPU taken
from the requests of the same process. Records reach Kafka at most 50 ms later, nothing
next to a monitoring window; ``close`` flushes at once.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from monitor.record import PredictionRecord, encode_record
from monitor.settings import Settings

__all__ = ["LoggerStats", "PredictionLogger", "keep_in_sample"]

log = logging.getLogger(__name__)

_HASH_SPACE = 1 << 64
_ERROR_REPORT_S = 10.0


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
        "lock", "enqueued", "sent", "dropped_queue_full", "dropped_sampling",
        "send_errors", "dropped_on_close", "connect_failures", "in_flight",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.enqueued = self.sent = self.dropped_queue_full = self.dropped_sampling = 0
        self.send_errors = self.dropped_on_close = self.connect_failures = self.in_flight = 0

    def bump(self, name: str, by: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + by)


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
        max_block_s: float = 5.0,
        linger_ms: int = 50,
    ) -> None:
        self._bootstrap = settings.kafka_bootstrap_servers
        self._topic = settings.topic
        self._rate = settings.log_sample_rate
        self._queue: queue.Queue[PredictionRecord] = queue.Queue(maxsize=settings.log_queue_size)
        # kafka-python's accumulator has no memory bound: cap records handed to it and not yet
        # acknowledged, so a broker that dies after start-up fills our queue (and drops) instead.
        self._max_in_flight = settings.log_queue_size
        self._connect_timeout_ms = int(connect_timeout_s * 1000)
        self._backoff_initial = backoff_initial_s
        self._backoff_max = backoff_max_s
        self._max_block_ms = int(max_block_s * 1000)
        self._linger_ms = linger_ms
        self._counters = _Counters()
        self._unreported_errors = 0  # delivery failures not yet logged (guarded by the counters' lock)
        self._last_error_report = float("-inf")
        self._stop = threading.Event()
        self._producer: Any = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._close_deadline = 0.0
        self._closed = False

    # -- request path -------------------------------------------------------------------

    def log(self, record: PredictionRecord) -> bool:
        """Queue ``record`` for Kafka without waiting; return whether it was queued."""
        if not keep_in_sample(record.request_id, self._rate):
            self._counters.bump("dropped_sampling")
            return False
        if self._stop.is_set():
            self._counters.bump("dropped_on_close")
            return False
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._counters.bump("dropped_queue_full")
            return False
        self._counters.bump("enqueued")
        return True

    def stats(self) -> LoggerStats:
        c = self._counters
        with c.lock:
            return LoggerStats(
                enqueued=c.enqueued,
                sent=c.sent,
                dropped_queue_full=c.dropped_queue_full,
                dropped_sampling=c.dropped_sampling,
                send_errors=c.send_errors,
                dropped_on_close=c.dropped_on_close,
                connect_failures=c.connect_failures,
                queue_depth=self._queue.qsize(),
                in_flight=c.in_flight,
                connected=self._producer is not None,
            )

    @property
    def sample_rate(self) -> float:
        return self._rate

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> "PredictionLogger":
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="skewwatch-prediction-logger", daemon=True)
                self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> LoggerStats:
        """Stop taking records, send what is queued within ``timeout`` seconds, close Kafka.

        Records still queued when time runs out (or when no broker was ever reached) are
        counted in ``dropped_on_close``. Returns the final counters (and logs them once).
        Closing again is harmless.
        """
        with self._start_lock:
            already, self._closed = self._closed, True
        if already:
            return self.stats()
        self._close_deadline = time.monotonic() + max(timeout, 0.0)
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
            if self._producer is None:
                if not self._connect():
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2.0, self._backoff_max)
                    continue
                backoff = self._backoff_initial
            if self._counters.in_flight >= self._max_in_flight:
                self._stop.wait(0.01)
                continue
            try:
                record = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if not self._send(record):
                self._stop.wait(backoff)
                backoff = min(backoff * 2.0, self._backoff_max)
            else:
                backoff = self._backoff_initial
        self._shutdown()

    def _connect(self) -> bool:
        from kafka import KafkaProducer  # only the logger thread touches Kafka

        try:
            self._producer = KafkaProducer(
                bootstrap_servers=self._bootstrap.split(","),
                acks=1,
                enable_idempotence=False,
                linger_ms=self._linger_ms,
                metrics_enabled=False,
                compression_type=None,
                bootstrap_timeout_ms=self._connect_timeout_ms,
                max_block_ms=self._max_block_ms,
            )
        except Exception as exc:  # unreachable broker, bad address: retry with backoff
            self._counters.bump("connect_failures")
            log.warning("prediction log: cannot reach Kafka at %s (%s); retrying", self._bootstrap, exc)
            return False
        log.info("prediction log: connected to Kafka at %s, topic %s", self._bootstrap, self._topic)
        return True

    def _send(self, record: PredictionRecord) -> bool:
        self._counters.bump("in_flight")
        try:
            value = encode_record(record)
            future = self._producer.send(self._topic, key=record.model_name.encode("utf-8"), value=value)
        except Exception as exc:  # metadata timeout (broker gone), oversized record, ...
            self._counters.bump("in_flight", -1)
            self._counters.bump("send_errors")
            log.warning("prediction log: send failed for request %s: %s", record.request_id, exc)
            return False
        future.add_callback(self._on_sent)
        future.add_errback(self._on_error)
        return True

    def _on_sent(self, _metadata: Any) -> None:
        with self._counters.lock:
            self._counters.sent += 1
            self._counters.in_flight -= 1

    def _on_error(self, exc: BaseException) -> None:
        # A lost broker fails every pending record at once (thousands of callbacks): one
        # warning per record would hold the GIL and stall requests, so report at most once
        # every _ERROR_REPORT_S with the count since the last report.
        now = time.monotonic()
        with self._counters.lock:
            self._counters.send_errors += 1
            self._counters.in_flight -= 1
            self._unreported_errors += 1
            if now - self._last_error_report < _ERROR_REPORT_S:
                return
            count, self._unreported_errors, self._last_error_report = self._unreported_errors, 0, now
        log.warning("prediction log: %d record(s) failed delivery since the last report: %s", count, exc)

    def _shutdown(self) -> None:
        producer = self._producer
        if producer is not None:
            while time.monotonic() < self._close_deadline:
                try:
                    record = self._queue.get_nowait()
                except queue.Empty:
                    break
                self._send(record)
            self._close_producer(producer)
            self._producer = None
        self._drop_remaining()

    def _close_producer(self, producer: Any) -> None:
        from kafka.errors import KafkaTimeoutError

        try:
            producer.flush(timeout=max(self._close_deadline - time.monotonic(), 0.0))
        except KafkaTimeoutError:
            # kafka-python 3.0's close() flushes first and raises when that flush times out,
            # so it never reaches its own force-close. Abort the pending batches ourselves:
            # their futures fail (counted in send_errors) and close() can then finish.
            log.warning("prediction log: %d records unacknowledged at close; aborting them", self.stats().in_flight)
            sender = getattr(producer, "_sender", None)
            if sender is not None:
                sender.force_close()
                sender.join(timeout=2.0)
        try:
            producer.close(timeout=max(self._close_deadline - time.monotonic(), 0.0))
        except Exception as exc:
            log.warning("prediction log: producer close failed: %s", exc)

    def _drop_remaining(self) -> None:
        dropped = 0
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            dropped += 1
        if dropped:
            self._counters.bump("dropped_on_close", dropped)
            log.warning("prediction log: %d records not sent at close", dropped)
