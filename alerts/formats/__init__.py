"""The bodies each kind of receiver expects, built from a flush plan. Pure: no I/O, no secrets.

* :mod:`~alerts.formats.webhook`: Alertmanager's webhook JSON, version "4";
* :mod:`~alerts.formats.slack`: a Slack incoming-webhook message in Block Kit, within Slack's limits;
* :mod:`~alerts.formats.pagerduty`: PagerDuty Events API v2 events (``routing_key`` is added at send);
* :mod:`~alerts.formats.alertmanager`: postable alerts for Alertmanager's ``/api/v2/alerts``.
"""

from alerts.formats.alertmanager import postable_alerts
from alerts.formats.common import FIRING_ENDS_AT, alert_json, rfc3339
from alerts.formats.pagerduty import PD_SUMMARY_MAX, pagerduty_events
from alerts.formats.slack import SLACK_BLOCKS_MAX, SLACK_HEADER_MAX, SLACK_SECTION_MAX, slack_message
from alerts.formats.webhook import WEBHOOK_VERSION, webhook_message

__all__ = [
    "postable_alerts",
    "alert_json",
    "rfc3339",
    "FIRING_ENDS_AT",
    "pagerduty_events",
    "PD_SUMMARY_MAX",
    "slack_message",
    "SLACK_BLOCKS_MAX",
    "SLACK_HEADER_MAX",
    "SLACK_SECTION_MAX",
    "webhook_message",
    "WEBHOOK_VERSION",
]
