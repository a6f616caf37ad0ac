"""Run the monitor API with uvicorn on ``settings.monitor_host:settings.monitor_port``."""

from __future__ import annotations

import uvicorn

from monitor.api.app import create_app
from monitor.api.retention import RetentionThread
from monitor.settings import Settings
from monitor.storage import open_store

__all__ = ["build_server", "run", "dashboard_url"]


def build_server(settings: Settings, store) -> uvicorn.Server:  # noqa: ANN001 - monitor.storage.Store
    """A uvicorn server for the app over ``store`` (not started; the caller owns the store)."""
    config = uvicorn.Config(
        create_app(settings, store),
        host=settings.monitor_host,
        port=settings.monitor_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        h11_max_incomplete_event_size=16_384,  # request line and headers
    )
    return uvicorn.Server(config)


def dashboard_url(settings: Settings, port: int | None = None) -> str:
    """Where the dashboard is: ``monitor_public_url`` if set, else the listening address."""
    if settings.monitor_public_url:
        return settings.monitor_public_url.rstrip("/") + "/ui/"
    return f"http://{settings.monitor_host}:{port or settings.monitor_port}/ui/"


def run(settings: Settings) -> None:
    """Open the store the settings point at, enforce retention on a timer, serve until interrupted."""
    store = open_store(settings)
    retention = RetentionThread(store, settings).start()
    try:
        build_server(settings, store).run()
    finally:
        retention.stop()
        store.close()
