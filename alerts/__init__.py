"""Alerts on-call engineers trust: identity, lifecycle, grouping, routing, receivers, delivery.

The pure parts (no I/O): :mod:`~alerts.identity` (fingerprints, labels), :mod:`~alerts.evidence`
(what a window says about an alert), :mod:`~alerts.lifecycle` (pending, firing, resolved, with
``for_windows``, hysteresis and model-wide inhibition), :mod:`~alerts.routing` (the routing tree),
:mod:`~alerts.grouping` (Alertmanager's group timers and dedup) and :mod:`~alerts.formats` (the
bodies each receiver expects). Around them: :mod:`~alerts.engine` (the ``decide_window`` hook and
group flushes, on the store), :mod:`~alerts.receivers` (HTTP integrations, secrets) and
:mod:`~alerts.sender` (the outbox thread).

Wiring, in a collector process::

    engine = AlertEngine.from_settings(settings, monitor_config.alerting)
    receivers = build_receivers(settings, monitor_config.alerting)
    sender = build_sender(store, settings, engine, receivers).start()
    store.decide_window(decision, react=engine.hook(decision))
    ...
    sender.stop(); receivers.close()
"""

from alerts.backoff import Backoff, RateLimiter
from alerts.engine import AlertEngine, FlushResult
from alerts.grouping import FlushPlan, plan_flush
from alerts.identity import Identity, alertname, fingerprint
from alerts.lifecycle import Evaluation, WindowInfo, evaluate
from alerts.receivers import (
    AlertmanagerIntegration,
    Integration,
    PagerDutyIntegration,
    Receiver,
    Receivers,
    RetryableDeliveryError,
    Secret,
    SlackIntegration,
    WebhookIntegration,
    build_receivers,
)
from alerts.routing import group_of, match_routes
from alerts.sender import Sender, build_sender

__all__ = [
    "AlertEngine",
    "FlushResult",
    "Sender",
    "build_sender",
    "build_receivers",
    "Receivers",
    "Receiver",
    "Integration",
    "WebhookIntegration",
    "SlackIntegration",
    "PagerDutyIntegration",
    "AlertmanagerIntegration",
    "RetryableDeliveryError",
    "Secret",
    "Identity",
    "fingerprint",
    "alertname",
    "WindowInfo",
    "Evaluation",
    "evaluate",
    "FlushPlan",
    "plan_flush",
    "match_routes",
    "group_of",
    "Backoff",
    "RateLimiter",
]
