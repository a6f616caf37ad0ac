"""Notifiers deliver a :class:`~alerts.alert.Notification`; the ``Dispatcher`` fans it out.

Each notifier POSTs one JSON body (see :mod:`alerts.payloads`) through a caller-owned
``httpx.Client`` with bounded retries (:mod:`alerts.retry`) and raises
:class:`~monitor.errors.DeliveryError` when it gives up. The ``Dispatcher`` sends to every
notifier concurrently, so a sink that is down and retrying never delays the others, catches
and logs each failure (it never raises), and counts deliveries and failures per sink.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Callable, Mapping, Protocol, Sequence
from urllib.parse import urlsplit

import httpx

from alerts.alert import Notification
from alerts.payloads import pagerduty_event, slack_payload, webhook_payload
from alerts.retry import RetryPolicy, post_json
from monitor.errors import ConfigError

__all__ = [
    "Notifier",
    "WebhookNotifier",
    "SlackNotifier",
    "PagerDutyNotifier",
    "Dispatcher",
    "build_notifiers",
    "PAGERDUTY_EVENTS_URL",
]

log = logging.getLogger(__name__)

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


class Notifier(Protocol):
    def send(self, notification: Notification) -> None: ...


def _check_url(url: Any, field: str) -> str:
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise ConfigError("must be an http(s) URL", field=field)  # the URL itself may be a secret
    return url


class _HttpNotifier:
    name = "http"

    def __init__(self, client: httpx.Client, retry: RetryPolicy | None, sleep: Callable[[float], None]) -> None:
        self.client = client
        self.retry = retry or RetryPolicy()
        self._sleep = sleep

    def _post(self, url: str, payload: Any) -> httpx.Response:
        return post_json(self.client, url, payload, sink=self.name, policy=self.retry, sleep=self._sleep)


class WebhookNotifier(_HttpNotifier):
    """POSTs the Alertmanager-like JSON of :func:`alerts.payloads.webhook_payload`."""

    def __init__(
        self,
        url: str,
        client: httpx.Client,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(client, retry, sleep)
        self.url = _check_url(url, "webhook_urls")
        self.name = f"webhook:{urlsplit(url).netloc.rsplit('@', 1)[-1]}"

    def send(self, notification: Notification) -> None:
        self._post(self.url, webhook_payload(notification))


class SlackNotifier(_HttpNotifier):
    """Posts text + Block Kit blocks to a Slack incoming webhook."""

    name = "slack"

    def __init__(
        self,
        webhook_url: str,
        client: httpx.Client,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(client, retry, sleep)
        self.webhook_url = _check_url(webhook_url, "slack_webhook_url")

    def send(self, notification: Notification) -> None:
        self._post(self.webhook_url, slack_payload(notification))


class PagerDutyNotifier(_HttpNotifier):
    """Triggers and resolves PagerDuty alerts through the Events API v2 (dedup_key = fingerprint)."""

    name = "pagerduty"

    def __init__(
        self,
        routing_key: str,
        client: httpx.Client,
        url: str = PAGERDUTY_EVENTS_URL,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(client, retry, sleep)
        if not isinstance(routing_key, str) or not routing_key.strip():
            raise ConfigError("must be a non-empty string", field="pagerduty_routing_key")
        self.routing_key = routing_key
        self.url = _check_url(url, "pagerduty_url")

    def send(self, notification: Notification) -> None:
        self._post(self.url, pagerduty_event(notification, self.routing_key))


class Dispatcher:
    """Sends each notification to every notifier; failures are isolated, logged and counted."""

    def __init__(self, notifiers: Sequence[Notifier], *, max_workers: int | None = None) -> None:
        self._notifiers: dict[str, Notifier] = {}
        for n in notifiers:
            base = str(getattr(n, "name", type(n).__name__))
            name, k = base, 2
            while name in self._notifiers:
                name, k = f"{base}#{k}", k + 1
            self._notifiers[name] = n
        self._deliveries: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()
        self._lock = threading.Lock()
        workers = max_workers or max(1, len(self._notifiers))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="skewwatch-notify")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._notifiers)

    @property
    def deliveries(self) -> Mapping[str, int]:
        with self._lock:
            return {name: self._deliveries[name] for name in self._notifiers}

    @property
    def failures(self) -> Mapping[str, int]:
        with self._lock:
            return {name: self._failures[name] for name in self._notifiers}

    def _one(self, name: str, notifier: Notifier, notification: Notification) -> Exception | None:
        try:
            notifier.send(notification)
        except Exception as exc:  # noqa: BLE001 - isolate every sink from the others
            log.error("delivery to %s failed for %s %s: %s", name, notification.status, notification.fingerprint, exc)
            with self._lock:
                self._failures[name] += 1
            return exc
        with self._lock:
            self._deliveries[name] += 1
        return None

    def dispatch(self, notification: Notification) -> dict[str, Exception | None]:
        """Send to all notifiers at once; return each sink's error (``None`` when delivered)."""
        futures = {name: self._pool.submit(self._one, name, n, notification) for name, n in self._notifiers.items()}
        return {name: future.result() for name, future in futures.items()}

    def send(self, notification: Notification) -> None:
        """The :class:`Notifier` interface: dispatch and never raise."""
        self.dispatch(notification)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def build_notifiers(settings: Any, client: httpx.Client, *, retry: RetryPolicy | None = None) -> list[Notifier]:
    """Every notifier the settings configure: webhooks, then Slack, then PagerDuty."""
    notifiers: list[Notifier] = [WebhookNotifier(url, client, retry=retry) for url in settings.webhook_urls]
    if settings.slack_webhook_url:
        notifiers.append(SlackNotifier(settings.slack_webhook_url, client, retry=retry))
    if settings.pagerduty_routing_key:
        notifiers.append(
            PagerDutyNotifier(settings.pagerduty_routing_key, client, settings.pagerduty_url, retry=retry)
        )
    return notifiers
