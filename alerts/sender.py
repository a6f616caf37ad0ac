"""The sender: drains the outbox on its own thread, so a receiver that is down never stalls anything else.

Each pass it

0. (hourly) deletes delivered and refused messages older than ``keep_days``;
1. flushes the notification groups that are due (``AlertEngine.flush_due``: group_wait,
   group_interval, repeat_interval, silences and acknowledgements running out), which writes
   messages to the outbox;
2. claims due messages with a lease (``Store.claim_outbox``: only a destination's oldest pending
   message, so each destination receives its messages in order; never one another sender holds)
   for destinations whose rate limit allows a message now and that it is not already sending to;
3. sends them on a small pool of threads, one in flight per destination, and records the result:
   delivered; refused for good (a 400: ``failed``, kept, never retried); or retried later with
   exponential backoff and jitter, or after the ``Retry-After`` the destination asked for.

Delivery is at least once: a sender killed mid-request leaves the message leased, and whoever
claims it after the lease runs out (this process restarted, or another one) sends it again with
the same ``Idempotency-Key`` / PagerDuty ``dedup_key``, so the destination can drop the repeat.
Pending messages and group timers live in the store and survive restarts. Several senders (one
per collector process) can run against one store at once.

Nothing here raises out of the thread: a store failure is logged, counted and retried next pass.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from alerts.backoff import Backoff, RateLimiter
from alerts.engine import AlertEngine
from alerts.receivers import Receivers, RetryableDeliveryError
from monitor.errors import ConfigError, DeliveryError, SkewwatchError
from monitor.storage.alerting import OutboxRow

__all__ = ["Sender", "build_sender"]

log = logging.getLogger(__name__)


class Sender:
    """``Sender(store, receivers, engine=...).start()`` ... ``.stop()``; ``run_once()`` for a single pass."""

    def __init__(self, store: Any, receivers: Receivers, *, engine: AlertEngine, owner: str | None = None,
                 lease_s: float = 60.0, poll_s: float = 1.0, backoff: Backoff | None = None,
                 max_in_flight: int = 4, request_timeout_s: float | None = None,
                 clock: Callable[[], int] | None = None, limiter: RateLimiter | None = None,
                 rng: random.Random | None = None, keep_days: float = 7.0) -> None:
        if lease_s <= 0 or poll_s <= 0 or max_in_flight < 1:
            raise ConfigError("lease_s and poll_s must be > 0 and max_in_flight >= 1", field="sender")
        if request_timeout_s is not None and lease_s <= request_timeout_s:
            raise ConfigError(f"the lease ({lease_s}s) must outlast a request ({request_timeout_s}s), or a slow "
                              "request would be sent twice at once", field="alert_lease_seconds")
        self.store = store
        self.receivers = receivers
        self.engine = engine
        self.owner = owner or f"{socket.gethostname()[:40]}:{os.getpid()}:{random.getrandbits(32):08x}"
        self.lease_ms = int(lease_s * 1000)
        self.poll_s = poll_s
        self.backoff = backoff or Backoff()
        self.max_in_flight = max_in_flight
        self.keep_ms = int(keep_days * 86_400_000)
        self._pruned_at: int | None = None
        self._clock = clock or store.now
        self._limiter = limiter or RateLimiter(clock=lambda: self._clock() / 1000)
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._in_flight: dict[str, Future[None]] = {}
        #: counts by (integration, outcome): delivered | retried | failed, and ("*", "store_errors")
        self.counts: Counter[tuple[str, str]] = Counter()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "Sender":
        if self._thread is not None:
            raise RuntimeError("the sender is already running")
        self._stop.clear()
        self._pool = ThreadPoolExecutor(max_workers=self.max_in_flight, thread_name_prefix="skewwatch-send")
        self._thread = threading.Thread(target=self._run, name="skewwatch-sender", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop claiming; wait for the requests in flight (each bounded by the request timeout)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def wake(self) -> None:
        """Look for work now (for instance right after a window was decided)."""
        self._wake.set()

    def __enter__(self) -> "Sender":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one pass -----------------------------------------------------------------------------

    def run_once(self) -> int:
        """Flush due groups, then claim and send every due message in this thread, each at most once;
        how many were sent."""
        self._flush()
        seen: set[int] = set()
        while True:
            rows = self._claim(limit=self.max_in_flight, busy=())
            fresh = [r for r in rows if r.id not in seen]
            for row in rows:
                if row.id in seen:  # due again at once (it failed): give it back for the next pass
                    self._record(self.store.retry_outbox, row.id, self.owner, next_attempt_ms=row.next_attempt_ms,
                                 error=row.last_error or "", status_code=row.last_status)
            if not fresh:
                return len(seen)
            for row in fresh:
                seen.add(row.id)
                self._deliver(row)

    def _prune(self) -> None:
        now = self._clock()
        if self._pruned_at is not None and now - self._pruned_at < 3_600_000:
            return
        self._pruned_at = now
        try:
            gone = self.store.prune_outbox(before_ms=now - self.keep_ms)
        except SkewwatchError as exc:
            self.counts["*", "store_errors"] += 1
            log.warning("alert sender: pruning the outbox failed: %s", exc)
            return
        if gone:
            log.info("alert sender: pruned %d delivered or failed message(s) older than %.0f day(s)", gone,
                     self.keep_ms / 86_400_000)

    def _flush(self) -> None:
        try:
            self.engine.flush_due(self.store, self.receivers, now_ms=self._clock())
        except SkewwatchError as exc:
            self.counts["*", "store_errors"] += 1
            log.warning("alert sender: flushing groups failed: %s", exc)

    def _claim(self, *, limit: int, busy: tuple[str, ...] | list[str]) -> list[OutboxRow]:
        limited = [i.target for r in self.receivers for i in r.integrations
                   if self._limiter.wait_s(i.target, i.rate_per_second) > 0]
        try:
            rows = self.store.claim_outbox(self.owner, lease_ms=self.lease_ms, limit=limit, now_ms=self._clock(),
                                           exclude_targets=[*busy, *limited])
        except SkewwatchError as exc:
            self.counts["*", "store_errors"] += 1
            log.warning("alert sender: claiming messages failed: %s", exc)
            return []
        for row in rows:
            integration = self.receivers.integration(row.integration)
            if integration is not None:
                self._limiter.take(row.target, integration.rate_per_second)
        return rows

    def _deliver(self, row: OutboxRow) -> None:
        integration = self.receivers.integration(row.integration)
        key = row.dedup_key.split("|", 1)[-1]
        try:
            if integration is None:
                raise DeliveryError("no such integration in the configuration (it was removed?)", sink=row.integration)
            status = integration.send(row.payload, dedup_key=key)
        except RetryableDeliveryError as exc:
            wait = exc.retry_after_ms if exc.retry_after_ms else self.backoff.delay_ms(row.attempts, self._rng)
            self.counts[row.integration, "retried"] += 1
            log.warning("alert delivery %s %s: try %d failed (%s); next in %.1fs", row.integration, key, row.attempts,
                        exc, wait / 1000)
            self._record(self.store.retry_outbox, row.id, self.owner, next_attempt_ms=self._clock() + wait,
                         error=str(exc), status_code=exc.status)
        except DeliveryError as exc:
            self.counts[row.integration, "failed"] += 1
            log.error("alert delivery %s %s refused, not retried: %s", row.integration, key, exc)
            self._record(self.store.fail_outbox, row.id, self.owner, error=str(exc), status_code=exc.status)
        except Exception as exc:  # noqa: BLE001 - a bug in one integration must not stop the others
            self.counts[row.integration, "retried"] += 1
            log.exception("alert delivery %s %s: unexpected error", row.integration, key)
            self._record(self.store.retry_outbox, row.id, self.owner,
                         next_attempt_ms=self._clock() + self.backoff.delay_ms(row.attempts, self._rng),
                         error=f"{type(exc).__name__}", status_code=None)
        else:
            self.counts[row.integration, "delivered"] += 1
            log.info("alert delivered %s %s (HTTP %s, try %d)", row.integration, key, status, row.attempts)
            self._record(self.store.complete_outbox, row.id, now_ms=self._clock(), status_code=status)

    def _record(self, fn: Callable[..., bool], *args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except SkewwatchError as exc:  # the lease runs out and the message is tried again: at least once
            self.counts["*", "store_errors"] += 1
            log.warning("alert sender: recording a delivery failed: %s", exc)

    # -- the thread ---------------------------------------------------------------------------

    def _done(self, target: str) -> None:
        with self._lock:
            self._in_flight.pop(target, None)
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self._prune()
                self._flush()
                with self._lock:
                    busy = list(self._in_flight)
                free = self.max_in_flight - len(busy)
                rows = self._claim(limit=free, busy=busy) if free > 0 else []
                for row in rows:
                    pool = self._pool
                    if pool is None:
                        break
                    with self._lock:
                        future = pool.submit(self._deliver, row)
                        self._in_flight[row.target] = future
                    future.add_done_callback(lambda _f, target=row.target: self._done(target))
                if rows and len(rows) == free:
                    continue  # more may be due: look again once a slot frees
            except Exception:  # noqa: BLE001 - the thread must survive anything
                self.counts["*", "errors"] += 1
                log.exception("alert sender: unexpected error")
            self._wake.wait(self.poll_s)


def build_sender(store: Any, settings: Any, engine: AlertEngine, receivers: Receivers) -> Sender:
    """A :class:`Sender` with the timing the settings give (``alert_*`` fields)."""
    return Sender(
        store, receivers, engine=engine, lease_s=settings.alert_lease_seconds, poll_s=settings.alert_poll_seconds,
        request_timeout_s=settings.alert_request_timeout_seconds,
        backoff=Backoff(base_ms=int(settings.alert_retry_base_seconds * 1000),
                        max_ms=int(max(settings.alert_retry_max_seconds, settings.alert_retry_base_seconds) * 1000)),
    )
