"""Assemble a collector process from the settings: the one place its parts are wired."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

import httpx

from alerts.lifecycle import AlertManager
from alerts.notifiers import Dispatcher, build_notifiers
from collectors.baselines import BaselineCache
from collectors.consumer import Collector
from collectors.metrics import serve_metrics
from collectors.pipeline import WindowProcessor
from collectors.windows import Windower
from monitor.config import load_monitor_config
from monitor.settings import Settings
from monitor.storage.sqlite import Store

__all__ = ["build_collector"]


def build_collector(settings: Settings) -> tuple[Collector, Callable[[], None]]:
    """Build a collector and a function that releases what it holds (store, HTTP client)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    config = load_monitor_config(settings.monitor_config)
    store = Store(settings.db_path)
    client = httpx.Client(timeout=10.0)
    dispatcher = Dispatcher(build_notifiers(settings, client))
    alert_manager = AlertManager(store=store)
    baselines = BaselineCache(settings.models_dir)
    windower = Windower(
        window_seconds=settings.window_seconds,
        allowed_lateness_seconds=settings.allowed_lateness_seconds,
        specs_for=baselines.specs_for,
        is_closed=lambda key: store.has_window(
            key.model_name, key.model_version, datetime.fromtimestamp(key.start_ms / 1000, tz=timezone.utc)
        ),
    )
    tfdv_checks = None
    if settings.tfdv_checks:
        from collectors.tfdv_checks import TfdvChecks  # TensorFlow is loaded only on this path

        tfdv_checks = TfdvChecks(baselines)
    processor = WindowProcessor(
        baselines=baselines, config=config, store=store, alert_manager=alert_manager, dispatcher=dispatcher,
        tfdv_checks=tfdv_checks,
    )

    def close() -> None:
        dispatcher.close()
        client.close()
        store.close()

    collector = Collector(settings, windower=windower, processor=processor)
    if settings.collector_metrics_port:
        serve_metrics(collector, settings.monitor_host, settings.collector_metrics_port)
    return collector, close
