"""The prediction service: a TF Serving compatible REST API over a :class:`ModelRegistry`.

Routes (``{name}`` and ``{version}`` as in TF Serving):

- ``POST /v1/models/{name}:predict`` (routed: see :mod:`serving.routing`) and
  ``POST /v1/models/{name}/versions/{version}:predict`` (pinned): body in TF Serving's row
  format ``{"instances": [{...}, ...]}``, answered ``{"predictions": [float, ...],
  "model_version": "..."}``, or its columnar format ``{"inputs": {feature: [...]}}``,
  answered ``{"outputs": [float, ...], "model_version": "..."}``. Optional headers
  ``X-Event-Time`` (RFC 3339, the record's event time; default now, UTC),
  ``X-Request-Id`` (default a uuid4; echoed back in the response header) and the route
  key header (``X-Skewwatch-Route-Key``: requests with one key always reach the same
  version of an A/B split; default the request id). The version that answered is in the
  body's ``model_version``, the ``X-Model-Version`` response header and the logged record.
- ``GET /v1/models/{name}`` and ``GET /v1/models/{name}/versions/{version}``: version status;
  ``GET /v1/models/{name}/metadata``: the features the model takes; ``GET /v1/models``.
- ``GET /healthz`` and ``GET /metrics`` (Prometheus text, per-app registry).

Client mistakes answer 400 ``{"error": ..., "field": ..., "instance": ...}`` (see
:mod:`serving.validation`; an ``X-Event-Time`` out of bounds also names the setting as
``limit``), unknown models or versions 404, a bundle that cannot be loaded 503. Requests
over a limit of :mod:`serving.limits` answer 413/431/408 ``{"error": ..., "limit": ...,
"max": N}`` and close the connection: the body's bytes are counted as they arrive and its
JSON depth and instance count are measured before it is parsed. A request with an instance
too large for one Kafka message answers 413 naming ``log_message_max_bytes`` before any
inference, so every request answered 200 has a record that fits Kafka. A body with a
``Content-Encoding`` (gzip, ...) answers 415 unread: serving never inflates anything, so a
compression bomb costs it nothing. A client that disconnects before its answer is counted as
499 and logs no traceback.

Inference runs in the thread pool, off the event loop. After the predictions are computed
the record (with the request headers named in ``log_attribute_headers`` as attributes) is
handed to the :class:`PredictionLogger` (non-blocking). A record too large for one Kafka
message (a few hundred instances or more) is encoded into its parts here, in the thread
pool; smaller ones are encoded by the logger's thread.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Mapping

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from monitor.errors import BundleError, RecordError, SchemaError
from monitor.record import PredictionRecord
from monitor.schema import FeatureSpec
from monitor.settings import Settings
from serving.limits import LimitExceeded, LimitsMiddleware, RejectionCounts, RequestLimits, check_json
from serving.metrics import CLIENT_CLOSED, CONTENT_TYPE_LATEST, ServingMetrics
from serving.models import ModelNotFoundError, ModelRegistry
from serving.publisher import PredictionLogger, check_rows_fit, fits_one_message
from serving.routing import ROUTE_KEY_HEADER, RouteReason, build_router
from serving.validation import (
    EventTimeBounds,
    ImplausibleEventTime,
    InputFormat,
    PredictRequest,
    attribute_header_names,
    header_attributes,
    parse_event_time,
    parse_predict_request,
    parse_request_id,
)

__all__ = ["MODEL_VERSION_HEADER", "create_app"]

log = logging.getLogger(__name__)

_PREDICT = "predict"
_DISCONNECT_CHECK_S = 0.1  # predicts slower than this check whether their client is still there
MODEL_VERSION_HEADER = "X-Model-Version"


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # orjson writes NaN/inf as null, so a degenerate prediction never turns into a 500.
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _error(status: int, message: str, **fields: Any) -> Response:
    body = {"error": message}
    body.update({k: v for k, v in fields.items() if v is not None})
    return _json(body, status)


class UnsupportedEncoding(Exception):
    """A request body with a ``Content-Encoding`` serving does not read (any but identity): 415."""

    def __init__(self, encoding: str) -> None:
        super().__init__(encoding)
        self.encoding = encoding


def _split_verb(segment: str) -> tuple[str, str | None]:
    head, sep, verb = segment.rpartition(":")
    return (head, verb) if sep else (segment, None)


def create_app(
    settings: Settings,
    registry: ModelRegistry,
    logger: PredictionLogger,
    *,
    max_instances: int | None = None,
    close_logger_timeout: float | None = None,
    ab_weights: Mapping[str, Mapping[str, float]] | None = None,
    route_key_header: str = ROUTE_KEY_HEADER,
    rejections: RejectionCounts | None = None,
) -> FastAPI:
    """Build the serving app; all state lives in the arguments and this closure.

    The request limits, the event-time bounds and the attribute headers come from
    ``settings`` (``max_instances`` overrides the setting of that name); a bad
    ``min_event_time`` or ``log_attribute_headers`` raises :class:`~monitor.errors.ConfigError`.
    ``rejections`` is shared with the server's protocol (:func:`serving.server.build_server`)
    so that requests refused on the wire are counted in ``/metrics`` too.

    ``ab_weights`` (``{model: {version: weight}}``) splits each listed model's traffic
    across its versions; it is checked against ``registry`` here, so a model or version
    that does not exist raises :class:`~monitor.errors.ConfigError` at start-up.

    With ``close_logger_timeout`` set, the app's lifespan shutdown closes ``logger`` (flushing
    for at most that many seconds): the server process uses it, because uvicorn re-raises
    SIGTERM once it has shut down, so code after ``Server.run()`` never runs.
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if close_logger_timeout is not None:
            await run_in_threadpool(logger.close, close_logger_timeout)

    router = build_router(ab_weights, registry.versions)
    key_header = route_key_header.lower()
    limits = RequestLimits.from_settings(settings)
    if max_instances is not None:
        limits = dataclasses.replace(limits, max_instances=max_instances)
    event_times = EventTimeBounds.from_settings(settings)
    attribute_names = attribute_header_names(settings.log_attribute_headers)
    gone: set[tuple[str, str | None]] = set()
    app = FastAPI(title="skewwatch serving", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    metrics = ServingMetrics(logger, rejections)
    app.add_middleware(LimitsMiddleware, limits=limits, counts=metrics.rejections)
    app.state.router = router
    app.state.settings = settings
    app.state.registry = registry
    app.state.logger = logger
    app.state.metrics = metrics
    app.state.limits = limits

    def parse(body: bytes, specs: tuple[FeatureSpec, ...], meta: dict[str, Any]) -> tuple[PredictRequest, bool]:
        """Measure, parse and validate a body (in the thread pool); whether its record surely fits one message."""
        check_json(body, max_depth=limits.max_json_depth, max_instances=limits.max_instances)
        parsed = parse_predict_request(body, specs, max_instances=limits.max_instances)
        budget = logger.max_record_bytes
        small = fits_one_message(len(body), len(parsed.instances), budget)
        if not small:
            check_rows_fit(instances=parsed.instances, max_bytes=budget, **meta)
        return parsed, small

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        # Unrouted paths and wrong methods answer in the same {"error": ...} shape.
        response = _error(exc.status_code, str(exc.detail))
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    async def predict(request: Request, name: str, version: str | None, verb: str | None) -> Response:
        started = time.perf_counter()
        labels = ("", "")
        instances: tuple[dict[str, Any], ...] = ()
        response: Response
        if verb != _PREDICT:
            hint = "use POST /v1/models/{name}:predict or /v1/models/{name}/versions/{version}:predict"
            response = _error(404, f"unsupported verb {verb!r}; {hint}" if verb else hint)
            metrics.observe(model="", version="", code=404, seconds=time.perf_counter() - started, instances=0)
            return response
        try:
            event_time = parse_event_time(request.headers.get("x-event-time"), bounds=event_times)
            request_id = parse_request_id(request.headers.get("x-request-id"))
            attributes = header_attributes(request.headers.items(), attribute_names)
            route = router.route(model=name, pinned=version, key=request.headers.get(key_header) or request_id)
            try:
                served = await run_in_threadpool(registry.get, name, route.version)
            except ModelNotFoundError:
                if route.reason is not RouteReason.SPLIT:
                    raise
                # a weighted version deleted from disk after start-up: answer with the latest
                if (name, route.version) not in gone:  # once, not per request
                    gone.add((name, route.version))
                    log.warning("model %s version %s (A/B split) is gone; routing its share to the latest", name, route.version)
                served = await run_in_threadpool(registry.get, name, None)
            labels = (served.name, served.version)
            encoding = request.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):  # refused unread: a compressed body (or a bomb) is never inflated
                raise UnsupportedEncoding(encoding)
            body = await request.body()  # LimitsMiddleware counts the bytes as they arrive
            meta = {"model_name": served.name, "model_version": served.version, "event_time": event_time,
                    "request_id": request_id, "attributes": attributes}
            # measuring and validating thousands of instances takes milliseconds: off the event loop
            parsed, small = await run_in_threadpool(parse, body, served.specs, meta)
            instances = parsed.instances
            predictions = await run_in_threadpool(served.predict, instances)
            record = PredictionRecord(instances=instances, predictions=tuple(predictions), **meta)
            # a large record is encoded into its parts here, off the loop; a small one by the logger's thread
            parts = None if small or not logger.keeps(request_id) else await run_in_threadpool(logger.encode, record)
            logger.log(record, parts)
            key = "outputs" if parsed.format is InputFormat.COLUMNAR else "predictions"
            response = _json(
                {key: predictions, "model_version": served.version},
                headers={"X-Request-Id": request_id, MODEL_VERSION_HEADER: served.version},
            )
            # a client gone while a slow request was computed (it timed out): the answer has nobody to go to.
            # Asking costs ~35 µs (an anyio cancel scope), so only requests slow enough for a client to give up do.
            if time.perf_counter() - started > _DISCONNECT_CHECK_S and await request.is_disconnected():
                response = Response(status_code=CLIENT_CLOSED)
        except ClientDisconnect:  # the client left while its body was arriving
            response = Response(status_code=CLIENT_CLOSED)
        except UnsupportedEncoding as exc:
            response = _error(415, f"request bodies are read as sent (identity), not {exc.encoding!r}",
                              field="Content-Encoding")
            response.headers["connection"] = "close"  # the body is never read
        except LimitExceeded as exc:
            metrics.rejections.bump(exc.limit)
            unread = exc.limit in ("max_body_bytes", "body_timeout_seconds")  # the rest of the body is never read
            response = Response(exc.body(), status_code=exc.status, media_type="application/json",
                                headers={"connection": "close"} if unread else None)
        except ModelNotFoundError as exc:
            response = _error(404, str(exc))
        except SchemaError as exc:
            response = _error(400, str(exc), field=exc.feature, instance=exc.instance)
        except ImplausibleEventTime as exc:
            response = _error(400, str(exc), field=exc.field, limit=exc.bound)
        except RecordError as exc:
            if exc.reason == "too_large":  # an instance larger than a Kafka message
                response = _error(413, str(exc), field=exc.field, limit="log_message_max_bytes",
                                  max=logger.max_message_bytes)
            else:
                response = _error(400, str(exc), field=exc.field)
        except BundleError as exc:
            log.error("model %s version %s unavailable: %s", name, version, exc)
            response = _error(503, f"model {name!r} is unavailable (the server log says why)")
        except Exception:
            log.exception("predict failed for model %s version %s", name, version)
            response = _error(500, "internal error")
        metrics.observe(
            model=labels[0],
            version=labels[1],
            code=response.status_code,
            seconds=time.perf_counter() - started,
            instances=len(instances) if response.status_code == 200 else 0,
        )
        return response

    @app.post("/v1/models/{name_and_verb}")
    async def predict_latest(name_and_verb: str, request: Request) -> Response:
        name, verb = _split_verb(name_and_verb)
        return await predict(request, name, None, verb)

    @app.post("/v1/models/{name}/versions/{version_and_verb}")
    async def predict_version(name: str, version_and_verb: str, request: Request) -> Response:
        version, verb = _split_verb(version_and_verb)
        return await predict(request, name, version, verb)

    def _status(name: str, version: str | None) -> Response:
        try:
            statuses = registry.status(name)
        except ModelNotFoundError as exc:
            return _error(404, str(exc))
        if version is not None:
            statuses = [s for s in statuses if s.version == version]
            if not statuses:
                return _error(404, f"model {name!r} has no version {version!r}")
        return _json(
            {
                "model_version_status": [
                    {
                        "version": s.version,
                        "state": "END" if s.error else "AVAILABLE",
                        "status": {"error_code": "UNKNOWN" if s.error else "OK", "error_message": s.error or ""},
                        "loaded": s.loaded,
                    }
                    for s in reversed(statuses)
                ]
            }
        )

    @app.get("/v1/models")
    def list_models() -> Response:
        return _json({"models": [{"name": n, "versions": registry.versions(n)} for n in registry.names()]})

    @app.get("/v1/models/{name}")
    def model_status(name: str) -> Response:
        return _status(name, None)

    @app.get("/v1/models/{name}/versions/{version}")
    def version_status(name: str, version: str) -> Response:
        return _status(name, version)

    @app.get("/v1/models/{name}/metadata")
    def model_metadata(name: str) -> Response:
        try:
            bundle = registry.bundle(name)
        except ModelNotFoundError as exc:
            return _error(404, str(exc))
        return _json(
            {
                "model_spec": {"name": bundle.model_name, "version": bundle.model_version},
                "metadata": {
                    "features": [{"name": s.name, "kind": s.kind, "dtype": s.dtype} for s in bundle.specs],
                    "prediction": bundle.metadata.get("prediction"),
                },
            }
        )

    @app.get("/healthz")
    def healthz() -> Response:
        stats = logger.stats()
        return _json(
            {
                "status": "ok",
                "models": registry.names(),
                "prediction_log": {"connected": stats.connected, "queue_depth": stats.queue_depth},
            }
        )

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app

