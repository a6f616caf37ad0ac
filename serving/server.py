"""``skewwatch serve``: registry + prediction logger + app under uvicorn.

The models' latest versions are loaded before the socket opens, so the first request does
not pay for TensorFlow start-up. Uvicorn runs the httptools protocol of
:mod:`serving.protocol`, which holds request lines and headers to ``max_header_bytes``,
``max_headers`` and ``header_timeout_seconds`` as they arrive. Uvicorn handles SIGINT/SIGTERM gracefully (in-flight
requests finish); the app's lifespan shutdown then flushes and closes the prediction logger.

Once the models are loaded the heap is frozen (:func:`gc.freeze`): TensorFlow and Keras
leave millions of long-lived objects behind, and every full collection would walk them
all, a pause of about 200 ms on the request path (measured with bench/bench_serving.py:
p99 of 55-80 ms instead of 5 ms whenever one struck). Frozen objects are never scanned,
so full collections only see what serving allocated since.
"""

from __future__ import annotations

import gc
import logging
from typing import Mapping

import uvicorn

from monitor.errors import BundleError, ConfigError
from monitor.settings import Settings
from serving.app import create_app
from serving.limits import RejectionCounts, RequestLimits
from serving.models import ModelRegistry
from serving.protocol import bounded_protocol
from serving.publisher import PredictionLogger

__all__ = ["run", "build_server"]

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 10.0


def build_server(
    settings: Settings,
    *,
    ab_weights: Mapping[str, Mapping[str, float]] | None = None,
    route_key_header: str | None = None,
) -> tuple[uvicorn.Server, PredictionLogger]:
    """The uvicorn server for ``settings`` and the (started) logger it feeds; models preloaded.

    ``ab_weights`` and ``route_key_header`` default to the settings fields of those names
    (see :mod:`serving.routing`); a weight for a model or version not on disk raises
    :class:`~monitor.errors.ConfigError` here, before the socket opens. Every version with
    split traffic is preloaded along with each model's latest.
    """
    registry = ModelRegistry(settings.models_dir)
    served = registry.preload()
    if not served:
        log.warning("no loadable model bundle under %s; serving 404s until one appears", settings.models_dir)
    logger = PredictionLogger(settings)
    rejections = RejectionCounts()  # the protocol's refusals and the app's, in one /metrics family
    app = create_app(
        settings,
        registry,
        logger,
        rejections=rejections,
        close_logger_timeout=CLOSE_TIMEOUT_S,
        ab_weights=settings.ab_weights if ab_weights is None else ab_weights,
        route_key_header=settings.route_key_header if route_key_header is None else route_key_header,
    )
    for split in app.state.router.splits.values():
        for version, weight in split.weights.items():
            if weight > 0:
                try:
                    served.append(registry.get(split.model, version))
                except BundleError as exc:
                    raise ConfigError(f"cannot load this version: {exc}", field=f"ab_weights.{split.model}.{version}") from None
                log.info("A/B split: %s version %s gets %.1f%% of traffic", split.model, version, 100 * weight)
    for model in {(m.name, m.version): m for m in served}.values():
        log.info("serving %s version %s", model.name, model.version)
    gc.collect()
    gc.freeze()  # start-up objects (TensorFlow, the models) stay out of every later collection
    logger.start()
    config = uvicorn.Config(
        app,
        host=settings.serve_host,
        port=settings.serve_port,
        log_level=settings.log_level.lower(),
        lifespan="on",
        access_log=False,
        http=bounded_protocol(RequestLimits.from_settings(settings), rejections),  # header limits on the wire
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
