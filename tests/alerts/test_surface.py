"""The public surface of ``alerts``: what the collector wiring and the API may rely on."""

import alerts

EXPECTED = {
    "AlertEngine", "FlushResult", "Sender", "build_sender", "build_receivers", "Receivers", "Receiver", "Integration",
    "WebhookIntegration", "SlackIntegration", "PagerDutyIntegration", "AlertmanagerIntegration",
    "RetryableDeliveryError", "Secret", "Identity", "fingerprint", "alertname", "WindowInfo", "Evaluation", "evaluate",
    "FlushPlan", "plan_flush", "match_routes", "group_of", "Backoff", "RateLimiter",
}


def test_the_public_surface_is_pinned():
    assert set(alerts.__all__) == EXPECTED
    assert all(getattr(alerts, name) is not None for name in EXPECTED)


def test_the_store_exposes_the_methods_the_api_calls():
    from monitor.storage import Store

    for name in ("list_alerts", "get_alert", "acknowledge_alert", "resolve_alert", "create_silence", "list_silences",
                 "expire_silence", "get_silence", "claim_outbox", "complete_outbox", "retry_outbox", "fail_outbox",
                 "list_outbox", "outbox_counts", "prune_outbox", "list_groups"):
        assert callable(getattr(Store, name)), name
