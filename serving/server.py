"""``skewwatch serve``: registry + prediction logger + app under uvicorn.

The models' latest versions are loaded before the socket opens, so the first request does
not pay for TensorFlow start-up. Uvicorn handles SIGINT/SIGTERM gracefully (in-flight
requests finish); the app's lifespan shutdown then flushes and closes the prediction logger.
"""

from __future__ import annotations

import logging

import uvicorn

from monitor.settings import Settings
from serving.app import create_app
from serving.models import ModelRegistry
from serving.publisher import PredictionLogger

__all__ = ["run", "build_server"]

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 10.0


def build_server(settings: Settings) -> tuple[uvicorn.Server, PredictionLogger]:
    """The uvicorn server for ``settings`` and the (started) logger it feeds; models preloaded."""
    registry = ModelRegistry(settings.models_dir)
    served = registry.preload()
    if not served:
        log.warning("no loadable model bundle under %s; serving 404s until one appears", settings.models_dir)
    for model in served:
        log.info("serving %s version %s", model.name, model.version)
    logger = PredictionLogger(settings).start()
    app = create_app(settings, registry, logger, close_logger_timeout=CLOSE_TIMEOUT_S)
    config = uvicorn.Config(
        app,
        host=settings.serve_host,
        port=settings.serve_port,
        log_level=settings.log_level.lower(),
        lifespan="on",
        access_log=False,
    )
    return uvicorn.Server(config), logger


def run(settings: Settings) -> None:
    """Serve until interrupted; the app's shutdown closes the prediction logger.

    On SIGTERM/SIGINT uvicorn stops accepting, finishes in-flight requests, runs the app's
    lifespan shutdown (which flushes and closes the logger) and then re-raises the signal,
    so the process ends the way the signal asks. The ``finally`` covers every other exit.
    """
    server, logger = build_server(settings)
    try:
        server.run()
    finally:
        logger.close(timeout=CLOSE_TIMEOUT_S)
