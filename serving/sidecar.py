"""``skewwatch sidecar --upstream URL``: prediction logging in front of any model server.

A reverse proxy for a TF Serving-style REST model server (ours, TF Serving, KServe v1):
every request is forwarded unchanged (method, raw path, query, body, headers minus the
hop-by-hop ones and ``Host``) over httpx's connection pool,
:class:`httpx.AsyncHTTPTransport`, the one :class:`httpx.AsyncClient` sends through. The
client layer on top is left out on purpose: a transparent proxy must not keep the
upstream's cookies, follow its redirects or add default headers, and skipping it saves
about a fifth of the proxy's CPU per request. The upstream's
status, headers and body are streamed back unchanged (the sidecar's uvicorn adds no
``server``/``date`` header of its own). A successful (2xx) ``POST .../{model}:predict``
is also teed into a :class:`~monitor.record.PredictionRecord`
(:func:`serving.exchange.record_from_exchange`) and handed to the non-blocking
:class:`~serving.publisher.PredictionLogger` after the last byte of the response has
been sent, so logging never delays the response. Upstream errors (any non-2xx) pass
through untouched and are not logged; an unreachable upstream answers 502 and a timeout
504, both ``{"error": ...}``.

The sidecar's own endpoints live under ``/_skewwatch/`` so they never shadow an upstream
path: ``/_skewwatch/healthz`` and ``/_skewwatch/metrics`` (Prometheus: requests by kind
and status, upstream latency, what happened to each predict exchange, and the logger's
counters). The sidecar imports no TensorFlow.
"""

from __future__ import annotations

import functools
import logging
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Literal

import httpx
import orjson
import uvicorn
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from monitor.errors import ConfigError, RecordError
from monitor.settings import Settings
from serving.exchange import PredictTarget, exchange_request_id, predict_target, record_from_exchange
from serving.metrics import CONTENT_TYPE_LATEST, LoggerCollector
from serving.publisher import PredictionLogger, keep_in_sample

__all__ = ["ADMIN_PREFIX", "TeeOutcome", "SidecarMetrics", "create_sidecar_app", "build_sidecar_server", "run"]

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/_skewwatch"
CLOSE_TIMEOUT_S = 10.0
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
     "transfer-encoding", "upgrade"}
)
_OFFLOAD_BYTES = 256 * 1024  # bodies above this are parsed in the thread pool, off the event loop

TeeOutcome = Literal["queued", "dropped", "sampled_out", "not_loggable", "too_large", "incomplete"]
_REASONS = frozenset(
    {"X-Event-Time", "request_body", "response_body", "instances", "inputs", "predictions", "outputs"}
)


class SidecarMetrics:
    """The sidecar's metrics, in a registry of its own; label values are bounded."""

    def __init__(self, logger: PredictionLogger) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "skewwatch_sidecar_requests", "Proxied requests by kind (predict/other) and status code.",
            ("kind", "code"), registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "skewwatch_sidecar_upstream_seconds", "Time from forwarding a request to the upstream's response headers.",
            ("kind",), buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.records = Counter(
            "skewwatch_sidecar_records", "Successful predict exchanges by what became of their record.",
            ("outcome",), registry=self.registry,
        )
        self.not_loggable = Counter(
            "skewwatch_sidecar_not_loggable", "Successful predict exchanges that could not become a record, by field.",
            ("field",), registry=self.registry,
        )
        self.registry.register(LoggerCollector(logger))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _upstream_url(upstream: str) -> httpx.URL:
    try:
        url = httpx.URL(upstream)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ConfigError(f"not a URL: {upstream!r} ({exc})", field="upstream") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"must be an http(s)://host[:port][/base] URL, got {upstream!r}", field="upstream")
    if url.query or url.fragment:
        raise ConfigError(f"must not carry a query or fragment, got {upstream!r}", field="upstream")
    return url


def _json_error(status: int, message: str) -> Response:
    return Response(orjson.dumps({"error": message}), status_code=status, media_type="application/json")


def _forward_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Drop hop-by-hop headers (and those the Connection header names), Host and Content-Length."""
    drop = set(_HOP_BY_HOP) | {"host", "content-length"}
    for name, value in raw:
        if name.lower() == b"connection":
            drop.update(token.strip().lower() for token in value.decode("latin-1").split(","))
    return [(n, v) for n, v in raw if n.decode("latin-1").lower() not in drop]


def _response_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    drop = set(_HOP_BY_HOP)
    for name, value in raw:
        if name.lower() == b"connection":
            drop.update(token.strip().lower() for token in value.decode("latin-1").split(","))
    return [(n.lower(), v) for n, v in raw if n.decode("latin-1").lower() not in drop]


class _Tee:
    """Collects a predict response as it streams and logs its record once it is complete."""

    def __init__(
        self, *, target: PredictTarget, request: Request, request_body: bytes, response: httpx.Response,
        request_id: str, logger: PredictionLogger, metrics: SidecarMetrics, max_bytes: int,
    ) -> None:
        self.target, self.request_id, self.logger, self.metrics = target, request_id, logger, metrics
        self.request_headers = dict(request.headers)
        self.request_body = request_body
        self.response_headers = dict(response.headers)
        self.max_bytes = max_bytes
        self.chunks: list[bytes] = []
        self.size = 0
        self.overflow = False

    def add(self, chunk: bytes) -> None:
        if self.overflow:
            return
        self.size += len(chunk)
        if self.size + len(self.request_body) > self.max_bytes:
            self.overflow, self.chunks = True, []
        else:
            self.chunks.append(chunk)

    def _record(self) -> Any:
        return record_from_exchange(
            target=self.target,
            request_headers=self.request_headers,
            request_body=self.request_body,
            response_headers=self.response_headers,
            response_body=b"".join(self.chunks),
            request_id=self.request_id,
        )

    async def finish(self, complete: bool) -> None:
        outcome: TeeOutcome
        if not complete:
            outcome = "incomplete"
        elif self.overflow:
            outcome = "too_large"
        else:
            try:
                if self.size + len(self.request_body) > _OFFLOAD_BYTES:
                    record = await run_in_threadpool(self._record)
                else:
                    record = self._record()
            except RecordError as exc:
                field = exc.field if exc.field in _REASONS else "other"
                self.metrics.not_loggable.labels(field).inc()
                log.debug("sidecar: predict exchange for %s not logged: %s", self.target.model, exc)
                outcome = "not_loggable"
            except Exception:  # never let a logging bug reach the proxied response
                log.exception("sidecar: cannot build the record of a predict exchange for %s", self.target.model)
                self.metrics.not_loggable.labels("other").inc()
                outcome = "not_loggable"
            else:
                outcome = "queued" if self.logger.log(record) else "dropped"
        self.metrics.records.labels(outcome).inc()


class _ProxyResponse(Response):
    """Streams an upstream response back unchanged, then lets the tee log it."""

    def __init__(self, upstream: httpx.Response, tee: _Tee | None) -> None:
        self.upstream = upstream
        self.tee = tee
        self.status_code = upstream.status_code
        self.raw_headers = _response_headers(upstream.headers.raw)
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        complete = False
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async for chunk in self.upstream.aiter_raw():
                if self.tee is not None:
                    self.tee.add(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            complete = True
        except httpx.HTTPError as exc:
            # headers are already out: abort the connection rather than end a truncated body cleanly
            log.warning("sidecar: upstream failed mid-response: %s", exc)
            raise
        finally:
            await self.upstream.aclose()
            if self.tee is not None:
                await self.tee.finish(complete)


def create_sidecar_app(
    upstream: str,
    logger: PredictionLogger,
    *,
    timeout_s: float = 60.0,
    connect_timeout_s: float = 5.0,
    max_connections: int = 100,
    max_logged_bytes: int = 16 * 1024 * 1024,
    close_logger_timeout: float | None = None,
) -> Starlette:
    """The proxy app for ``upstream`` (``http(s)://host[:port][/base]``), teeing into ``logger``.

    One connection pool (up to ``max_connections`` kept alive) lives for the app's lifespan.
    Exchanges whose request + response bodies exceed ``max_logged_bytes`` are proxied but
    not logged. With ``close_logger_timeout`` set, the lifespan shutdown closes ``logger``.
    """
    base = _upstream_url(upstream)
    base_path = base.raw_path.split(b"?")[0].rstrip(b"/")
    timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
    metrics = SidecarMetrics(logger)

    @functools.lru_cache(maxsize=1024)  # clients hit a handful of paths: parse each URL once
    def cached_url(raw_path: bytes) -> httpx.URL:
        return base.copy_with(raw_path=raw_path)

    def target_url(raw_path: bytes) -> httpx.URL:
        return cached_url(raw_path) if len(raw_path) <= 512 else base.copy_with(raw_path=raw_path)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        app.state.pool = httpx.AsyncHTTPTransport(limits=limits, retries=0)
        try:
            yield
        finally:
            await app.state.pool.aclose()
            if close_logger_timeout is not None:
                await run_in_threadpool(logger.close, close_logger_timeout)

    async def proxy(request: Request) -> Response:
        pool: httpx.AsyncHTTPTransport = request.app.state.pool
        target = predict_target(request.method, request.scope["path"])
        kind = "predict" if target is not None else "other"
        body = await request.body()
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode("utf-8")
        query = request.scope.get("query_string", b"")
        url = target_url(base_path + raw_path + (b"?" + query if query else b""))
        outgoing = httpx.Request(
            request.method, url, headers=_forward_headers(request.headers.raw), content=body,
            extensions={"timeout": timeout.as_dict()},
        )
        started = time.perf_counter()
        try:
            answer = await pool.handle_async_request(outgoing)  # streams: the body is read below
        except httpx.TimeoutException as exc:
            metrics.requests.labels(kind, "504").inc()
            return _json_error(504, f"upstream {upstream} timed out ({type(exc).__name__})")
        except httpx.HTTPError as exc:
            metrics.requests.labels(kind, "502").inc()
            return _json_error(502, f"upstream {upstream} unreachable ({type(exc).__name__}: {exc})")
        metrics.upstream_latency.labels(kind).observe(time.perf_counter() - started)
        metrics.requests.labels(kind, str(answer.status_code)).inc()
        tee = None
        if target is not None and 200 <= answer.status_code < 300:
            request_id = exchange_request_id(request.headers, answer.headers)
            if keep_in_sample(request_id, logger.sample_rate):
                tee = _Tee(
                    target=target, request=request, request_body=body, response=answer, request_id=request_id,
                    logger=logger, metrics=metrics, max_bytes=max_logged_bytes,
                )
            else:
                metrics.records.labels("sampled_out").inc()
        return _ProxyResponse(answer, tee)

    async def healthz(_request: Request) -> Response:
        stats = logger.stats()
        body = {"status": "ok", "upstream": upstream,
                "prediction_log": {"connected": stats.connected, "queue_depth": stats.queue_depth}}
        return Response(orjson.dumps(body), media_type="application/json")

    async def prometheus(_request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(
        routes=[
            Route(f"{ADMIN_PREFIX}/healthz", healthz, methods=["GET"]),
            Route(f"{ADMIN_PREFIX}/metrics", prometheus, methods=["GET"]),
            Route("/{path:path}", proxy, methods=_METHODS),
        ],
        lifespan=lifespan,
    )
    app.state.logger = logger
    app.state.metrics = metrics
    app.state.upstream = upstream
    return app


def build_sidecar_server(
    settings: Settings, upstream: str, *, host: str | None = None, port: int | None = None
) -> tuple[uvicorn.Server, PredictionLogger]:
    """The uvicorn server of a sidecar for ``upstream`` and its (started) logger.

    It listens where the prediction service would (``serve_host``/``serve_port``) unless
    ``host``/``port`` say otherwise: clients talk to the sidecar instead of the model server.
    """
    logger = PredictionLogger(settings)
    app = create_sidecar_app(upstream, logger, close_logger_timeout=CLOSE_TIMEOUT_S)
    logger.start()
    config = uvicorn.Config(
        app,
        host=host if host is not None else settings.serve_host,
        port=port if port is not None else settings.serve_port,
        log_level=settings.log_level.lower(),
        lifespan="on",
        access_log=False,
        server_header=False,  # the upstream's own server and date headers pass through
        date_header=False,
    )
    return uvicorn.Server(config), logger


def run(settings: Settings, upstream: str, *, host: str | None = None, port: int | None = None) -> None:
    """Proxy until interrupted; the app's shutdown closes the HTTP pool and the logger."""
    server, logger = build_sidecar_server(settings, upstream, host=host, port=port)
    log.info("sidecar: proxying to %s, logging predictions to %s", upstream, settings.topic)
    try:
        server.run()
    finally:
        logger.close(timeout=CLOSE_TIMEOUT_S)
