"""Alert lifecycle (fire, repeat, escalate, resolve, silence, inhibit) and delivery."""

from alerts.alert import Alert, Notification, fingerprint
from alerts.lifecycle import AlertManager
from alerts.notifiers import Dispatcher, Notifier, PagerDutyNotifier, SlackNotifier, WebhookNotifier, build_notifiers
from alerts.retry import RetryPolicy

__all__ = [
    "Alert",
    "Notification",
    "fingerprint",
    "AlertManager",
    "Notifier",
    "WebhookNotifier",
    "SlackNotifier",
    "PagerDutyNotifier",
    "Dispatcher",
    "build_notifiers",
    "RetryPolicy",
]
