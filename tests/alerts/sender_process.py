"""A sender in its own process, for the crash test: ``python -m tests.alerts.sender_process URL CONFIG LEASE``.

Builds the store, engine, receivers and sender the way a collector process does and runs until
it is killed."""

from __future__ import annotations

import json
import sys
import threading

from alerts import AlertEngine, build_receivers, build_sender
from monitor.alerting_config import AlertingConfig
from monitor.settings import Settings
from monitor.storage import Store


def main() -> None:
    url, document, lease = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
    cfg = AlertingConfig.model_validate(document)
    settings = Settings(alert_request_timeout_seconds=lease / 2, alert_lease_seconds=lease, alert_poll_seconds=0.05,
                        alert_retry_base_seconds=0.05, alert_retry_max_seconds=0.5)
    store = Store(url)
    engine = AlertEngine(cfg)
    receivers = build_receivers(settings, cfg)
    build_sender(store, settings, engine, receivers).start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
