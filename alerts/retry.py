"""Bounded retries with exponential backoff for JSON POSTs to alert receivers.

Retried: connection errors and timeouts, HTTP 429 and 5xx (as PagerDuty's Events API and
Slack ask). Not retried: other 4xx (the payload or the URL is wrong; retrying cannot help).
A ``Retry-After`` header in seconds is honoured, capped at ``max_delay``. When the attempts
run out, :class:`~monitor.errors.DeliveryError` says which sink failed and with what status.
Sinks are named without their URL (Slack webhook URLs and routing keys are secrets).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

import httpx
import orjson

from monitor.errors import ConfigError, DeliveryError

__all__ = ["RetryPolicy", "post_json", "retryable_status"]

log = logging.getLogger(__name__)


def retryable_status(status: int) -> bool:
    return status == 429 or 500 <= status <= 599


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` tries in all; the wait before try ``k + 1`` is
    ``min(max_delay, base_delay * multiplier ** (k - 1))``, then spread by ``± jitter``."""

    attempts: int = 4
    base_delay: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.1  # fraction of the delay
    timeout: float = 10.0  # seconds per request

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            raise ConfigError(f"must be an integer >= 1, got {self.attempts!r}", field="attempts")
        for name in ("base_delay", "max_delay", "timeout"):
            if getattr(self, name) < 0:
                raise ConfigError(f"must be >= 0, got {getattr(self, name)!r}", field=name)
        if self.multiplier < 1:
            raise ConfigError(f"must be >= 1, got {self.multiplier!r}", field="multiplier")
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"must be within [0, 1], got {self.jitter!r}", field="jitter")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(self.max_delay, max(0.0, retry_after))
        base = min(self.max_delay, self.base_delay * self.multiplier ** (attempt - 1))
        if self.jitter:
            base *= 1 + random.uniform(-self.jitter, self.jitter)
        return max(0.0, base)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None


def post_json(
    client: httpx.Client,
    url: str,
    payload: Any,
    *,
    sink: str,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> httpx.Response:
    """POST ``payload`` as JSON; retry per ``policy``; raise :class:`DeliveryError` when it fails."""
    body = orjson.dumps(payload)
    headers = {"content-type": "application/json"}
    status: int | None = None
    reason = ""
    for attempt in range(1, policy.attempts + 1):
        retry_after = None
        try:
            response = client.post(url, content=body, headers=headers, timeout=policy.timeout)
        except httpx.UnsupportedProtocol as exc:
            raise DeliveryError(f"bad URL scheme ({exc})", sink=sink) from None
        except httpx.TransportError as exc:
            status, reason = None, f"{type(exc).__name__}: {exc}"
        else:
            if response.is_success:
                return response
            status, reason = response.status_code, response.text[:200]
            if not retryable_status(status):
                raise DeliveryError(f"rejected with HTTP {status}: {reason}", sink=sink, status=status)
            retry_after = _retry_after(response)
        if attempt < policy.attempts:
            wait = policy.delay(attempt, retry_after)
            log.warning("%s: try %d/%d failed (%s); retrying in %.2fs", sink, attempt, policy.attempts, status or reason, wait)
            sleep(wait)
    what = f"HTTP {status}" if status is not None else reason
    raise DeliveryError(f"gave up after {policy.attempts} tries: {what}", sink=sink, status=status)
