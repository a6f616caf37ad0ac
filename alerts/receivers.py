"""Receivers and their integrations: Slack, PagerDuty, generic webhooks, Prometheus Alertmanager.

A receiver is a name and a list of integrations (Alertmanager's ``*_configs``). Each integration
does two things:

* ``render(plan, group, ctx)`` (pure): the outbox messages one group flush produces for it, each
  with a dedup key (PagerDuty: the alert's fingerprint; the others: the group and its flush
  number), and without any secret;
* ``send(payload, dedup_key=...)``: the one I/O method (compare prometheus' ``Collector``
  protocol): POST the payload, adding the secret (the routing key) at the last moment, with the
  dedup key in an ``Idempotency-Key`` header so receivers can drop a repeat. It returns on
  success and raises :class:`~monitor.errors.DeliveryError` otherwise:
  :class:`RetryableDeliveryError` (a connection failure, a timeout, 408, 429, any 5xx; with the
  ``Retry-After`` it was given) or a plain ``DeliveryError`` (anything else, e.g. PagerDuty's 400
  for an invalid event): not retried.

Secrets (Slack webhook URLs, routing keys, webhook URLs given by file or environment) are read
once by :func:`build_receivers`, kept in :class:`Secret` (which never prints its value), and
scrubbed from every error message. Integrations are named ``receiver/kind/index`` and identified
to the outbox by a ``target``: the kind and a hash of the destination, which orders and
rate-limits what goes there.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence
from urllib.parse import urlsplit

import httpx
import orjson

from alerts.backoff import retry_after_ms
from alerts.formats.alertmanager import postable_alerts
from alerts.formats.pagerduty import pagerduty_events
from alerts.formats.slack import slack_message
from alerts.formats.webhook import webhook_message
from alerts.grouping import FlushPlan
from monitor.alerting_config import (
    DEFAULT_RECEIVER,
    AlertingConfig,
    PagerDutyConfig,
    ReceiverConfig,
    SlackConfig,
    WebhookConfig,
)
from monitor.errors import ConfigError, DeliveryError
from monitor.storage.alerting import GroupRow, OutboxIn
from monitor.timeutil import now_ms

__all__ = [
    "Secret",
    "RetryableDeliveryError",
    "RenderContext",
    "Integration",
    "WebhookIntegration",
    "SlackIntegration",
    "PagerDutyIntegration",
    "AlertmanagerIntegration",
    "Receiver",
    "Receivers",
    "build_receivers",
]

log = logging.getLogger(__name__)


class Secret:
    """A secret value that never shows in ``repr``, ``str``, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def scrub(self, text: str) -> str:
        return text.replace(self._value, "***") if self._value else text


class RetryableDeliveryError(DeliveryError):
    """A delivery that may work later (connection failure, timeout, 408, 429, 5xx)."""

    def __init__(self, message: str, *, sink: str, status: int | None = None, retry_after_ms: int | None = None) -> None:
        super().__init__(message, sink=sink, status=status)
        self.retry_after_ms = retry_after_ms


@dataclass(frozen=True, slots=True)
class RenderContext:
    receiver: str
    external_url: str
    seq: int  # the group's flush number this render belongs to


class Integration(Protocol):
    name: str
    kind: str
    target: str
    rate_per_second: float

    def render(self, plan: FlushPlan, group: GroupRow, ctx: RenderContext) -> list[OutboxIn]: ...

    def send(self, payload: Any, *, dedup_key: str) -> int: ...


def _target(kind: str, destination: str) -> str:
    return f"{kind}:{hashlib.sha256(destination.encode()).hexdigest()[:16]}"


def _retryable(status: int) -> bool:
    return status in (408, 429) or 500 <= status <= 599


class _Http:
    """POST JSON, classify the answer, scrub secrets from every message."""

    kind = "http"

    def __init__(self, name: str, client: httpx.Client, *, secrets: Sequence[Secret], rate_per_second: float,
                 ok: frozenset[int] | None = None) -> None:
        self.name = name
        self.client = client
        self.rate_per_second = rate_per_second
        self._secrets = tuple(secrets)
        self._ok = ok

    def _scrub(self, text: str) -> str:
        for s in self._secrets:
            text = s.scrub(text)
        return text

    def _post(self, url: str, payload: Any, dedup_key: str) -> int:
        headers = {"content-type": "application/json", "idempotency-key": dedup_key, "user-agent": "skewwatch"}
        try:
            response = self.client.post(url, content=orjson.dumps(payload), headers=headers)
        except httpx.TransportError as exc:
            raise RetryableDeliveryError(self._scrub(f"{type(exc).__name__}: {exc}"), sink=self.name) from None
        except httpx.HTTPError as exc:  # an invalid URL and the like: not going to work later either
            raise DeliveryError(self._scrub(f"{type(exc).__name__}: {exc}"), sink=self.name) from None
        status = response.status_code
        if (status in self._ok) if self._ok is not None else response.is_success:
            return status
        body = self._scrub(response.text[:300])
        if _retryable(status):
            wait = retry_after_ms(response.headers.get("retry-after"), now_ms=now_ms())
            raise RetryableDeliveryError(f"HTTP {status}: {body}", sink=self.name, status=status, retry_after_ms=wait)
        raise DeliveryError(f"refused with HTTP {status}: {body}", sink=self.name, status=status)


def _key(group: GroupRow, ctx: RenderContext) -> str:
    return f"{group.key_hash[:16]}-{ctx.seq}"


class WebhookIntegration(_Http):
    """Alertmanager's webhook JSON (version "4") to any URL."""

    kind = "webhook"

    def __init__(self, name: str, url: Secret, client: httpx.Client, *, send_resolved: bool = True, max_alerts: int = 0,
                 rate_per_second: float = 10.0, url_is_secret: bool = False) -> None:
        super().__init__(name, client, secrets=(url,) if url_is_secret else (), rate_per_second=rate_per_second)
        self._url = url
        self.target = _target(self.kind, url.reveal())
        self.send_resolved = send_resolved
        self.max_alerts = max_alerts

    def render(self, plan: FlushPlan, group: GroupRow, ctx: RenderContext) -> list[OutboxIn]:
        body = webhook_message(plan, group, receiver=ctx.receiver, external_url=ctx.external_url,
                               send_resolved=self.send_resolved, max_alerts=self.max_alerts)
        if body is None:
            return []
        return [OutboxIn(ctx.receiver, self.name, self.target, self.kind, f"{self.name}|{_key(group, ctx)}", body)]

    def send(self, payload: Any, *, dedup_key: str) -> int:
        return self._post(self._url.reveal(), payload, dedup_key)


class SlackIntegration(_Http):
    """A Slack incoming webhook (Block Kit). Slack answers 200 ``ok``; 429 carries ``Retry-After``."""

    kind = "slack"

    def __init__(self, name: str, url: Secret, client: httpx.Client, *, send_resolved: bool = True, max_alerts: int = 15,
                 rate_per_second: float = 1.0) -> None:
        super().__init__(name, client, secrets=(url,), rate_per_second=rate_per_second)
        self._url = url
        self.target = _target(self.kind, url.reveal())
        self.send_resolved = send_resolved
        self.max_alerts = max_alerts

    def render(self, plan: FlushPlan, group: GroupRow, ctx: RenderContext) -> list[OutboxIn]:
        body = slack_message(plan, group, external_url=ctx.external_url, send_resolved=self.send_resolved,
                             max_alerts=self.max_alerts)
        if body is None:
            return []
        return [OutboxIn(ctx.receiver, self.name, self.target, self.kind, f"{self.name}|{_key(group, ctx)}", body)]

    def send(self, payload: Any, *, dedup_key: str) -> int:
        return self._post(self._url.reveal(), payload, dedup_key)


class PagerDutyIntegration(_Http):
    """PagerDuty Events API v2: 202 is success, 400 is an invalid event (not retried), 429 and 5xx are retried."""

    kind = "pagerduty"

    def __init__(self, name: str, routing_key: Secret, client: httpx.Client, *, url: str, send_resolved: bool = True,
                 rate_per_second: float = 2.0) -> None:
        super().__init__(name, client, secrets=(routing_key,), rate_per_second=rate_per_second,
                         ok=frozenset({200, 201, 202}))
        self._key = routing_key
        self.url = url
        self.target = _target(self.kind, f"{url} {routing_key.reveal()}")
        self.send_resolved = send_resolved

    def render(self, plan: FlushPlan, group: GroupRow, ctx: RenderContext) -> list[OutboxIn]:
        out = []
        for event in pagerduty_events(plan, send_resolved=self.send_resolved):
            key = f"{event['dedup_key']}:{event['event_action']}:{group.key_hash[:8]}-{ctx.seq}"
            out.append(OutboxIn(ctx.receiver, self.name, self.target, self.kind, f"{self.name}|{key}", event))
        return out

    def send(self, payload: Any, *, dedup_key: str) -> int:
        return self._post(self.url, {"routing_key": self._key.reveal(), **payload}, dedup_key)


class AlertmanagerIntegration(_Http):
    """Prometheus Alertmanager: postable alerts to ``{url}/api/v2/alerts``, re-posted while active."""

    kind = "alertmanager"

    def __init__(self, name: str, url: str, client: httpx.Client, *, resend_ms: int = 60_000,
                 rate_per_second: float = 10.0) -> None:
        super().__init__(name, client, secrets=(), rate_per_second=rate_per_second)
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.target = _target(self.kind, self.url)
        self.resend_ms = resend_ms

    def render(self, plan: FlushPlan, group: GroupRow, ctx: RenderContext) -> list[OutboxIn]:
        alerts = postable_alerts(plan, resend_ms=self.resend_ms)
        if not alerts:
            return []
        return [OutboxIn(ctx.receiver, self.name, self.target, self.kind, f"{self.name}|{_key(group, ctx)}", alerts)]

    def send(self, payload: Any, *, dedup_key: str) -> int:
        return self._post(self.url, payload, dedup_key)


@dataclass(frozen=True)
class Receiver:
    name: str
    integrations: tuple[Integration, ...] = ()

    @property
    def resend_ms(self) -> int | None:
        """The shortest Alertmanager re-post interval among its integrations (None: none)."""
        values = [i.resend_ms for i in self.integrations if isinstance(i, AlertmanagerIntegration)]
        return min(values) if values else None


class _Scrub(logging.Filter):
    """Removes secrets from log records of the HTTP libraries (httpx logs every request's URL)."""

    def __init__(self, secrets: Sequence[Secret]) -> None:
        super().__init__()
        self.secrets = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = text
        for s in self.secrets:
            clean = s.scrub(clean)
        if clean != text:
            record.msg, record.args = clean, None
        return True


_HTTP_LOGGERS = ("httpx", "httpcore")


@dataclass
class Receivers:
    """Every receiver by name, and the HTTP client they share (closed by :meth:`close`)."""

    by_name: dict[str, Receiver]
    client: httpx.Client | None = field(default=None, repr=False)
    _filter: _Scrub | None = field(default=None, repr=False)

    def get(self, name: str) -> Receiver | None:
        return self.by_name.get(name)

    def integration(self, name: str) -> Integration | None:
        receiver = self.by_name.get(name.split("/", 1)[0])
        if receiver is None:
            return None
        return next((i for i in receiver.integrations if i.name == name), None)

    def __iter__(self):  # noqa: ANN204
        return iter(self.by_name.values())

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self._filter is not None:
            for name in _HTTP_LOGGERS:
                logging.getLogger(name).removeFilter(self._filter)


def _read_secret(*, file: str | None, env: str | None, environ: Mapping[str, str], path: str) -> Secret:
    if file is not None:
        try:
            value = Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the secret file {file}: {exc.strerror or exc}", field=f"{path}_file") from None
        if not value:
            raise ConfigError(f"the secret file {file} is empty", field=f"{path}_file")
        return Secret(value)
    value = (environ.get(env) or "").strip() if env is not None else ""
    if not value:
        raise ConfigError(f"the environment variable {env} is not set or empty", field=f"{path}_env")
    return Secret(value)


def _check_url(secret: Secret, field: str) -> Secret:
    parts = urlsplit(secret.reveal())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError("must be an http(s) URL", field=field)  # the value itself is a secret: not shown
    return secret


def _integrations(rc: ReceiverConfig, client: httpx.Client, environ: Mapping[str, str], path: str) -> tuple[Integration, ...]:
    out: list[Integration] = []
    for i, c in enumerate(rc.webhook_configs):
        where = f"{path}.webhook_configs.{i}"
        if c.url is not None:
            url, secret = Secret(c.url), False
        else:
            url, secret = _read_secret(file=c.url_file, env=c.url_env, environ=environ, path=f"{where}.url"), True
        out.append(WebhookIntegration(f"{rc.name}/webhook/{i}", _check_url(url, f"{where}.url"), client,
                                      send_resolved=c.send_resolved, max_alerts=c.max_alerts,
                                      rate_per_second=c.rate_per_second, url_is_secret=secret))
    for i, s in enumerate(rc.slack_configs):
        where = f"{path}.slack_configs.{i}"
        url = _read_secret(file=s.api_url_file, env=s.api_url_env, environ=environ, path=f"{where}.api_url")
        out.append(SlackIntegration(f"{rc.name}/slack/{i}", _check_url(url, f"{where}.api_url"), client,
                                    send_resolved=s.send_resolved, max_alerts=s.max_alerts,
                                    rate_per_second=s.rate_per_second))
    for i, p in enumerate(rc.pagerduty_configs):
        where = f"{path}.pagerduty_configs.{i}"
        key = _read_secret(file=p.routing_key_file, env=p.routing_key_env, environ=environ, path=f"{where}.routing_key")
        out.append(PagerDutyIntegration(f"{rc.name}/pagerduty/{i}", key, client, url=p.url,
                                        send_resolved=p.send_resolved, rate_per_second=p.rate_per_second))
    for i, a in enumerate(rc.alertmanager_configs):
        out.append(AlertmanagerIntegration(f"{rc.name}/alertmanager/{i}", a.url, client, resend_ms=a.resend_interval,
                                           rate_per_second=a.rate_per_second))
    return tuple(out)


def _default_receiver(settings: Any) -> ReceiverConfig:
    """The ``default`` receiver from the settings: its webhooks, Slack and PagerDuty."""
    webhooks = tuple(WebhookConfig(url=u) for u in getattr(settings, "webhook_urls", ()) or ())
    slack: tuple[SlackConfig, ...] = ()
    pagerduty: tuple[PagerDutyConfig, ...] = ()
    if getattr(settings, "slack_webhook_url", None):
        slack = (SlackConfig(api_url_env="SKEWWATCH_SLACK_WEBHOOK_URL"),)
    if getattr(settings, "pagerduty_routing_key", None):
        url = getattr(settings, "pagerduty_url", None) or PagerDutyConfig.model_fields["url"].default
        pagerduty = (PagerDutyConfig(routing_key_env="SKEWWATCH_PAGERDUTY_ROUTING_KEY", url=url),)
    return ReceiverConfig(name=DEFAULT_RECEIVER, webhook_configs=webhooks, slack_configs=slack,
                          pagerduty_configs=pagerduty)


def _reveal(value: Any) -> str:
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)


def build_receivers(settings: Any, config: AlertingConfig, *, environ: Mapping[str, str] | None = None,
                    client: httpx.Client | None = None) -> Receivers:
    """Every receiver of ``config`` (``alerting.receivers``), plus ``default`` from the settings
    (``webhook_urls``, ``slack_webhook_url``, ``pagerduty_routing_key``) unless the YAML declares it.

    Secrets are read now, from files and ``environ`` (default: the process environment). Errors
    are :class:`ConfigError` naming the key path (``alerting.receivers.1.slack_configs.0.api_url_env``),
    never the secret."""
    environ = dict(os.environ if environ is None else environ)
    if getattr(settings, "slack_webhook_url", None):
        environ["SKEWWATCH_SLACK_WEBHOOK_URL"] = _reveal(settings.slack_webhook_url)
    if getattr(settings, "pagerduty_routing_key", None):
        environ["SKEWWATCH_PAGERDUTY_ROUTING_KEY"] = _reveal(settings.pagerduty_routing_key)
    own = client is None
    if client is None:
        timeout = float(getattr(settings, "alert_request_timeout_seconds", 10.0))
        client = httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False)
    try:
        declared = {r.name: (r, f"alerting.receivers.{i}") for i, r in enumerate(config.receivers)}
        if DEFAULT_RECEIVER not in declared:
            declared[DEFAULT_RECEIVER] = (_default_receiver(settings), "settings")
        receivers = {name: Receiver(name, _integrations(rc, client, environ, path)) for name, (rc, path) in declared.items()}
    except BaseException:
        if own:
            client.close()
        raise
    for r in receivers.values():
        log.info("alert receiver %s: %s", r.name, ", ".join(i.kind for i in r.integrations) or "no integrations")
    secrets = [s for r in receivers.values() for i in r.integrations for s in getattr(i, "_secrets", ())]
    scrub = _Scrub(secrets) if secrets else None
    if scrub is not None:
        for name in _HTTP_LOGGERS:
            logging.getLogger(name).addFilter(scrub)
    return Receivers(receivers, client if own else None, scrub)

