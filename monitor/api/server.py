"""Run the monitor API with uvicorn on ``settings.monitor_host:settings.monitor_port``."""

from __future__ import annotations

import uvicorn

from monitor.api.app import create_app
from monitor.settings import Settings
from monitor.storage import Store

__all__ = ["build_server", "run"]


def build_server(settings: Settings, store: Store) -> uvicorn.Server:
    """A uvicorn server for the app over ``store`` (not started; the caller owns the store)."""
    config = uvicorn.Config(
        create_app(settings, store),
        host=settings.monitor_host,
        port=settings.monitor_port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )
    return uvicorn.Server(config)


def run(settings: Settings) -> None:
    """Open the store at ``settings.db_path``, serve until interrupted, close the store."""
    store = Store(settings.db_path)
    try:
        build_server(settings, store).run()
    finally:
        store.close()
