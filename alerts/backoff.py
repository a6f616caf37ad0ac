"""Retry timing for deliveries: exponential backoff with jitter, ``Retry-After``, per-target rate limits."""

from __future__ import annotations

import email.utils
import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Callable

from monitor.errors import ConfigError

__all__ = ["Backoff", "retry_after_ms", "RateLimiter", "MAX_RETRY_AFTER_MS"]

#: A ``Retry-After`` longer than this is capped (a misconfigured server must not park a message for days).
MAX_RETRY_AFTER_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class Backoff:
    """Wait ``min(max_ms, base_ms * factor ** (failures - 1))``, shortened by up to ``jitter`` of it
    at random, so retries from many senders spread out instead of arriving together."""

    base_ms: int = 1000
    max_ms: int = 300_000
    factor: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.base_ms < 0 or self.max_ms < self.base_ms:
            raise ConfigError(f"need 0 <= base_ms <= max_ms, got {self.base_ms}, {self.max_ms}", field="backoff")
        if self.factor < 1 or not 0 <= self.jitter <= 1:
            raise ConfigError("need factor >= 1 and jitter in [0, 1]", field="backoff")

    def delay_ms(self, failures: int, rng: random.Random | None = None) -> int:
        exponent = min(max(failures, 1) - 1, 64)
        delay = min(float(self.max_ms), self.base_ms * self.factor ** exponent)
        r = (rng or random).random()
        return int(delay * (1 - self.jitter * r))


def retry_after_ms(value: str | None, *, now_ms: int) -> int | None:
    """Milliseconds to wait from a ``Retry-After`` header (seconds, or an HTTP date); ``None`` if absent
    or unreadable; capped at :data:`MAX_RETRY_AFTER_MS`."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = when.timestamp() - now_ms / 1000
    if not math.isfinite(seconds):
        return None
    return int(min(MAX_RETRY_AFTER_MS, max(0.0, seconds * 1000)))


class RateLimiter:
    """A token bucket per target (``rate`` messages a second, bursts of ``burst``), in this process.

    Several sender processes each keep their own buckets; the destination's 429 with
    ``Retry-After`` covers what they add up to."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, float]] = {}  # target -> (tokens, at)

    def _refill(self, target: str, rate: float, burst: float) -> tuple[float, float]:
        now = self._clock()
        tokens, at = self._state.get(target, (burst, now))
        return min(burst, tokens + (now - at) * rate), now

    def wait_s(self, target: str, rate: float, burst: float = 1.0) -> float:
        """Seconds until ``target`` may send (0: now)."""
        with self._lock:
            tokens, _ = self._refill(target, rate, burst)
            return 0.0 if tokens >= 1 else (1 - tokens) / rate

    def take(self, target: str, rate: float, burst: float = 1.0) -> None:
        """Spend one token (the caller checked :meth:`wait_s`)."""
        with self._lock:
            tokens, now = self._refill(target, rate, burst)
            self._state[target] = (tokens - 1, now)
