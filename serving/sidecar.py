"""``skewwatch sidecar --upstream URL``: prediction logging in front of any model server.

A reverse proxy for a TF Serving-style REST model server (ours, TF Serving, KServe v1):
every request is forwarded unchanged (method, raw path, query, body, headers minus the
hop-by-hop ones and ``Host``) over httpcore's connection pool,
:class:`httpcore.AsyncConnectionPool`, the one :class:`httpx.AsyncHTTPTransport` wraps,
with the request httpx would build. The client layers on top are left out on purpose: a
transparent proxy must not keep the upstream's cookies, follow its redirects or add
default headers. Per request the proxy also skips Starlette's routing (a plain ASGI path;
Starlette keeps the lifespan, the admin endpoints and the 405s), httpx's request and
response objects, and anyio's streams: the pool reads and writes through a small asyncio
network backend (:class:`serving.netbackend.AsyncioBackend`) without a cancel scope per
read and write (its own locks still use anyio). Together that cuts the CPU of the hop by
27 % (paced) to 44 % (saturated) (``bench/bench_sidecar_cpu.py``). The upstream's status, headers and body are streamed
back unchanged (the sidecar's uvicorn adds no ``server``/``date`` header of its own). A
successful (2xx) ``POST .../{model}:predict`` is also teed into a
:class:`~monitor.record.PredictionRecord`
(:func:`serving.exchange.record_from_exchange`) and handed to the non-blocking
:class:`~serving.publisher.PredictionLogger` after the last byte of the response has
been sent, so logging never delays the response. Upstream errors (any non-2xx) pass
through untouched and are not logged; an unreachable upstream answers 502 and a timeout
504, both ``{"error": ...}``.

Hostile input (:mod:`serving.limits`). The sidecar holds requests to the same limits as
serving, before it forwards anything: headers on the wire (431, :mod:`serving.protocol`),
the body's bytes as they arrive (413) and, for a predict request, its JSON depth and
instance count, after inflating a gzip/deflate body within ``max_body_bytes`` and
``max_decompression_ratio`` (413: a compression bomb never reaches the upstream). The
upstream's answer is streamed back unchanged whatever it holds; its record is built within
bounds (the response inflated within ``max_logged_bytes``, its depth measured before
parsing, each part within the Kafka message limit) and an exchange over a bound is proxied
but not logged, counted in ``skewwatch_sidecar_records_total{outcome="too_large"}`` and
``skewwatch_sidecar_over_limit_total{limit}``. The record is encoded into its Kafka parts
here, after the response went out, so whatever cannot be sent is counted by the sidecar.
A client that disconnects before its answer is counted as 499 and logs nothing at ERROR.

The sidecar's own endpoints live under ``/_skewwatch/`` so they never shadow an upstream
path: ``/_skewwatch/healthz`` and ``/_skewwatch/metrics`` (Prometheus: requests by kind
and status, upstream latency, what happened to each predict exchange, requests refused by
a limit, and the logger's counters). The sidecar imports no TensorFlow.
"""

from __future__ import annotations

import functools
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Literal

import httpcore
import httpx
import orjson
import uvicorn
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from monitor.errors import ConfigError, RecordError
from monitor.settings import Settings
from serving.exchange import (
    RATIO_PROBE_BYTES,
    PredictTarget,
    decode_body,
    exchange_request_id,
    predict_target,
    record_from_exchange,
)
from serving.limits import LimitExceeded, LimitsMiddleware, RejectionCounts, RequestLimits, answer_limit, check_json
from serving.metrics import CLIENT_CLOSED, CONTENT_TYPE_LATEST, LoggerCollector, RejectionCollector
from serving.netbackend import AsyncioBackend
from serving.protocol import bounded_protocol
from serving.publisher import PredictionLogger, keep_in_sample
from serving.validation import EventTimeBounds, attribute_header_names

__all__ = ["ADMIN_PREFIX", "TeeOutcome", "SidecarMetrics", "create_sidecar_app", "build_sidecar_server", "run"]

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/_skewwatch"
CLOSE_TIMEOUT_S = 10.0
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_PROXIED_METHODS = frozenset(_METHODS)
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
     "transfer-encoding", "upgrade"}
)
_DROP_REQUEST = frozenset(name.encode() for name in _HOP_BY_HOP | {"host", "content-length"})
_DROP_RESPONSE = frozenset(name.encode() for name in _HOP_BY_HOP)
_ADMIN_METHODS = frozenset({"GET", "HEAD"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # httpx sends Content-Length: 0 when they have no body
_OFFLOAD_BYTES = 256 * 1024  # bodies above this are parsed in the thread pool, off the event loop
_ONE_SHOT_BYTES = 64 * 1024  # a response with a Content-Length up to this is read whole, then sent in one message

TeeOutcome = Literal["queued", "dropped", "sampled_out", "not_loggable", "too_large", "incomplete"]
_REASONS = frozenset(
    {"X-Event-Time", "request_body", "response_body", "instances", "inputs", "predictions", "outputs"}
)


class SidecarMetrics:
    """The sidecar's metrics, in a registry of its own; label values are bounded."""

    def __init__(self, logger: PredictionLogger, rejections: RejectionCounts | None = None) -> None:
        self.rejections = rejections if rejections is not None else RejectionCounts()
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "skewwatch_sidecar_requests",
            "Requests by kind (predict/other) and status code: the upstream's, or the sidecar's own 413/431/408/502/504, "
            "and 499 for a client gone before its answer.",
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
        self.over_limit = Counter(
            "skewwatch_sidecar_over_limit",
            "Predict exchanges proxied unchanged but not logged because a body broke this limit.",
            ("limit",), registry=self.registry,
        )
        self.registry.register(LoggerCollector(logger))
        self.registry.register(RejectionCollector("skewwatch_sidecar", self.rejections))
        # the children the request path uses, looked up once per label values instead of per request
        self._requests: dict[tuple[str, int], Any] = {}
        self._latency = {kind: self.upstream_latency.labels(kind) for kind in ("predict", "other")}
        self._sampled_out = self.records.labels("sampled_out")

    def count_request(self, kind: str, code: int) -> None:
        child = self._requests.get((kind, code))
        if child is None:  # status codes are three digits: at most a few hundred children
            child = self._requests[kind, code] = self.requests.labels(kind, str(code))
        child.inc()

    def observe_latency(self, kind: str, seconds: float) -> None:
        self._latency[kind].observe(seconds)

    def count_sampled_out(self) -> None:
        self._sampled_out.inc()

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


def _drop_set(raw: list[tuple[bytes, bytes]], always: frozenset[bytes]) -> frozenset[bytes] | set[str]:
    """``always`` plus the names a Connection header lists (hop-by-hop too).

    Bytes to compare with ``name.lower()`` while every name is ASCII (a latin-1 name lowers to
    an ASCII one only if it is ASCII, so this decides as ``str.lower()`` would); else strings.
    """
    tokens: set[str] = set()
    for name, value in raw:
        if name.lower() == b"connection":
            tokens.update(token.strip().lower() for token in value.decode("latin-1").split(","))
    if not tokens:
        return always
    if all(token.isascii() for token in tokens):
        return always | {token.encode("ascii") for token in tokens}
    return {name.decode("ascii") for name in always} | tokens


def _forward_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Drop hop-by-hop headers (and those the Connection header names), Host and Content-Length."""
    drop = _drop_set(raw, _DROP_REQUEST)
    if isinstance(drop, frozenset):
        return [(n, v) for n, v in raw if n.lower() not in drop]
    return [(n, v) for n, v in raw if n.decode("latin-1").lower() not in drop]


def _response_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    drop = _drop_set(raw, _DROP_RESPONSE)
    if isinstance(drop, frozenset):
        return [(n.lower(), v) for n, v in raw if n.lower() not in drop]
    return [(n.lower(), v) for n, v in raw if n.decode("latin-1").lower() not in drop]


@dataclass(frozen=True, slots=True)
class _TeeConfig:
    """What the tee needs besides the exchange: where records go and the bounds on building them."""

    logger: PredictionLogger
    metrics: SidecarMetrics
    max_bytes: int
    limits: RequestLimits
    event_times: EventTimeBounds
    attribute_headers: tuple[str, ...]


class _Tee:
    """Collects a predict response as it streams and logs its record once it is complete.

    ``request_body`` is the body as the upstream read it, inflated already when it came
    compressed (``request_headers`` then have no ``content-encoding``).
    """

    def __init__(
        self, *, target: PredictTarget, request_headers: dict[str, str], request_body: bytes,
        response: httpx.Response, request_id: str, config: _TeeConfig,
    ) -> None:
        self.target, self.request_id, self.config = target, request_id, config
        self.request_headers = request_headers
        self.request_body = request_body
        self.response_headers = dict(response.headers)
        self.max_bytes = config.max_bytes
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

    def _encode(self) -> tuple[Any, list[bytes]]:
        record = record_from_exchange(
            target=self.target,
            request_headers=self.request_headers,
            request_body=self.request_body,
            response_headers=self.response_headers,
            response_body=b"".join(self.chunks),
            request_id=self.request_id,
            limits=self.config.limits,
            max_response_bytes=max(self.max_bytes - len(self.request_body), 0),
            event_times=self.config.event_times,
            attribute_headers=self.config.attribute_headers,
        )
        return record, self.config.logger.encode(record)

    async def finish(self, complete: bool) -> None:
        metrics = self.config.metrics
        outcome: TeeOutcome
        if not complete:
            outcome = "incomplete"
        elif self.overflow or len(self.request_body) > self.max_bytes:  # add() never ran: no response bytes
            outcome = "too_large"
            metrics.over_limit.labels("max_logged_bytes").inc()
        else:
            try:
                if self.size + len(self.request_body) > _OFFLOAD_BYTES:
                    record, parts = await run_in_threadpool(self._encode)
                else:
                    record, parts = self._encode()
            except LimitExceeded as exc:  # a response bomb, a body too deep or with too many instances
                metrics.over_limit.labels(exc.limit).inc()
                log.debug("sidecar: predict exchange for %s not logged: %s", self.target.model, exc)
                outcome = "too_large"
            except RecordError as exc:
                if exc.reason == "too_large":
                    metrics.over_limit.labels("log_message_max_bytes").inc()  # one row over a Kafka message
                    outcome = "too_large"
                else:
                    field = exc.field if exc.field in _REASONS else "other"
                    metrics.not_loggable.labels(field).inc()
                    outcome = "not_loggable"
                log.debug("sidecar: predict exchange for %s not logged: %s", self.target.model, exc)
            except Exception:  # never let a logging bug reach the proxied response
                log.exception("sidecar: cannot build the record of a predict exchange for %s", self.target.model)
                metrics.not_loggable.labels("other").inc()
                outcome = "not_loggable"
            else:
                outcome = "queued" if self.config.logger.log(record, parts) else "dropped"
        metrics.records.labels(outcome).inc()


# what httpx maps to its HTTPError: the upstream failed (the same class names as httpx's)
_UPSTREAM_ERRORS = (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError, httpcore.ProxyError,
                    httpcore.UnsupportedProtocol)


async def _read_body(receive: Receive) -> bytes:
    """The whole request body (as :meth:`starlette.requests.Request.body` reads it)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


def _returning(fn: Any, *args: Any) -> Any:
    """``fn(*args)``, or the :class:`LimitExceeded` it raised returned without its traceback.

    Raised across the thread pool, a refusal's traceback kept the frames holding a bomb's
    input and inflated prefix alive: 60 bombs left the sidecar 29 MB larger, against 14 MB
    (the worker thread's allocator cache, which stays flat) when the error is returned.
    """
    try:
        return fn(*args)
    except LimitExceeded as exc:
        return exc.with_traceback(None)


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The one Content-Length of lower-cased ``headers``, else None (absent, repeated or malformed)."""
    found = [v for n, v in headers if n == b"content-length"]
    return int(found[0]) if len(found) == 1 and found[0].isdigit() else None


class _Proxy:
    """The proxy path as a plain ASGI app: forwards over httpcore's pool, streams the answer back.

    Calls :class:`httpcore.AsyncConnectionPool` (what :class:`httpx.AsyncHTTPTransport` wraps)
    with the request httpx would have built: ``Host`` first, ``Content-Length`` after the
    forwarded headers (or ``Content-Length: 0`` before them for a POST/PUT/PATCH without body).
    """

    def __init__(
        self, upstream: str, base: httpx.URL, config: _TeeConfig, *, timeout: httpx.Timeout,
    ) -> None:
        self.upstream, self.config = upstream, config
        self.logger, self.metrics, self.limits = config.logger, config.metrics, config.limits
        self.pool: httpcore.AsyncConnectionPool | None = None  # opened by the app's lifespan
        self.base = base
        self.base_path = base.raw_path.split(b"?")[0].rstrip(b"/")
        self.host_header = (b"Host", base.netloc)
        self.scheme, self.host, self.port = base.raw_scheme, base.raw_host, base.port
        self.extensions = {"timeout": timeout.as_dict()}
        self.cached_target = functools.lru_cache(maxsize=1024)(self._target)  # clients hit a handful of paths

    def _target(self, raw_path: bytes) -> bytes:
        return self.base.copy_with(raw_path=raw_path).raw_path  # normalised as httpx would send it

    def _request(
        self, method: str, raw_target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> httpcore.Request:
        target = self.cached_target(raw_target) if len(raw_target) <= 512 else self._target(raw_target)
        if body:
            headers = [self.host_header, *headers, (b"Content-Length", str(len(body)).encode("ascii"))]
        elif method in _BODY_METHODS:
            headers = [self.host_header, (b"Content-Length", b"0"), *headers]
        else:
            headers = [self.host_header, *headers]
        url = httpcore.URL(scheme=self.scheme, host=self.host, port=self.port, target=target)
        return httpcore.Request(method, url, headers=headers, content=body, extensions=self.extensions)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"].upper()
        path = scope["path"]
        target = predict_target(method, path)
        kind = "predict" if target is not None else "other"
        try:
            body = await _read_body(receive)
            request_headers, logged_body = (None, body) if target is None else await self._inspect(scope, body)
        except ClientDisconnect:  # the client left before its body arrived: nothing to forward
            self.metrics.count_request(kind, CLIENT_CLOSED)
            return
        except LimitExceeded as exc:
            self.metrics.count_request(kind, exc.status)
            self.metrics.rejections.bump(exc.limit)
            await answer_limit(send, exc)
            return
        raw_path = scope.get("raw_path") or path.encode("utf-8")
        query = scope.get("query_string", b"")
        outgoing = self._request(method, self.base_path + raw_path + (b"?" + query if query else b""),
                                 _forward_headers(scope["headers"]), body)
        started = time.perf_counter()
        try:
            answer = await self.pool.handle_async_request(outgoing)  # streams: the body is read below
        except httpcore.TimeoutException as exc:
            self.metrics.count_request(kind, 504)
            await _json_error(504, f"upstream {self.upstream} timed out ({type(exc).__name__})")(scope, receive, send)
            return
        except _UPSTREAM_ERRORS as exc:
            self.metrics.count_request(kind, 502)
            message = f"upstream {self.upstream} unreachable ({type(exc).__name__}: {exc})"
            await _json_error(502, message)(scope, receive, send)
            return
        self.metrics.observe_latency(kind, time.perf_counter() - started)
        self.metrics.count_request(kind, answer.status)
        tee = None
        if target is not None and 200 <= answer.status < 300:
            tee = self._tee(scope, target, request_headers, logged_body, answer)
        await self._respond(answer, tee, send)

    async def _inspect(self, scope: Scope, body: bytes) -> tuple[dict[str, str], bytes]:
        """A predict request's headers and body as the record reads them; :class:`LimitExceeded` over a limit.

        A gzip/deflate body is inflated within ``max_body_bytes`` and ``max_decompression_ratio``
        (the inflated body is what gets logged; the upstream still gets the bytes as sent), then
        its JSON depth and instance count are measured. A body that cannot be inflated (an
        unknown encoding, corrupt data) is forwarded anyway: the upstream answers it, and the
        record builder counts it as not loggable.
        """
        headers = dict(Request(scope).headers)
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if len(body) > _OFFLOAD_BYTES:
            if encoding not in ("", "identity"):  # a bomb shows itself in its first MiB: refused here, in ~1 ms
                self._probe(body, encoding)
            decoded = await run_in_threadpool(_returning, self._inspect_body, body, encoding)
            if isinstance(decoded, LimitExceeded):
                raise decoded
        else:
            decoded = self._inspect_body(body, encoding)
        if decoded is None:
            return headers, body
        headers.pop("content-encoding", None)
        return headers, decoded

    def _probe(self, body: bytes, encoding: str) -> None:
        try:
            decode_body(body, encoding, field="request_body", max_bytes=self.limits.max_body_bytes,
                        max_ratio=self.limits.max_decompression_ratio, stop_after=RATIO_PROBE_BYTES)
        except RecordError:
            pass  # not decodable: forwarded as is, see _inspect_body

    def _inspect_body(self, body: bytes, encoding: str) -> bytes | None:
        limits = self.limits
        if encoding not in ("", "identity"):
            try:
                body = decode_body(body, encoding, field="request_body", max_bytes=limits.max_body_bytes,
                                   max_ratio=limits.max_decompression_ratio)
            except RecordError:
                return None
        check_json(body, max_depth=limits.max_json_depth, max_instances=limits.max_instances)
        return body

    def _tee(
        self, scope: Scope, target: PredictTarget, request_headers: dict[str, str] | None, body: bytes,
        answer: httpcore.Response,
    ) -> _Tee | None:
        if self.logger.sample_rate <= 0.0:  # keeps no request id: skip finding one
            self.metrics.count_sampled_out()
            return None
        headers = request_headers if request_headers is not None else dict(Request(scope).headers)
        response = httpx.Response(answer.status, headers=answer.headers)
        request_id = exchange_request_id(headers, response.headers)
        if not keep_in_sample(request_id, self.logger.sample_rate):
            self.metrics.count_sampled_out()
            return None
        return _Tee(target=target, request_headers=headers, request_body=body, response=response,
                    request_id=request_id, config=self.config)

    async def _respond(self, answer: httpcore.Response, tee: _Tee | None, send: Send) -> None:
        """Streams the upstream's answer back unchanged, then lets the tee log it.

        A body with a small Content-Length is read whole first and sent in one message (one
        send fewer); a big or chunked one is streamed chunk by chunk.
        """
        headers = _response_headers(answer.headers)
        start = {"type": "http.response.start", "status": answer.status, "headers": headers}
        stream: Any = answer.stream
        complete = False
        try:
            length = _content_length(headers)
            if length is not None and length <= _ONE_SHOT_BYTES:
                try:
                    chunks = [chunk async for chunk in stream]
                except _UPSTREAM_ERRORS:
                    await send(start)  # as when streaming: headers out, then the connection aborted
                    raise
                content = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                if tee is not None:
                    tee.add(content)
                await send(start)
                await send({"type": "http.response.body", "body": content, "more_body": False})
            else:
                await send(start)
                async for chunk in stream:
                    if tee is not None:
                        tee.add(chunk)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            complete = True
        except _UPSTREAM_ERRORS as exc:
            # headers are already out: abort the connection rather than end a truncated body cleanly
            log.warning("sidecar: upstream failed mid-response: %s", exc)
            raise
        finally:
            await stream.aclose()
            if tee is not None:
                await tee.finish(complete)


class _SidecarApp(Starlette):
    """Starlette for the lifespan and the admin endpoints; the proxy path skips its routing.

    A request takes the fast path when the routes would send it to the proxy anyway (a
    proxied method, a path not one of the admin GET/HEAD endpoints); anything else (other
    methods: 405, the admin endpoints) goes through Starlette as before.
    """

    def __init__(self, proxy: _Proxy, limits: RequestLimits, rejections: RejectionCounts, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.proxy = proxy
        self._admin_paths = frozenset({f"{ADMIN_PREFIX}/healthz", f"{ADMIN_PREFIX}/metrics"})
        self._limited = LimitsMiddleware(self._dispatch, limits, rejections)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._limited(scope, receive, send)  # every HTTP request, proxied or not
        else:
            await super().__call__(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["method"] in _PROXIED_METHODS and scope["path"].startswith("/")
            and not scope.get("root_path")
            and not (scope["method"] in _ADMIN_METHODS and scope["path"] in self._admin_paths)
        ):
            await self.proxy(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_sidecar_app(
    upstream: str,
    logger: PredictionLogger,
    *,
    timeout_s: float = 60.0,
    connect_timeout_s: float = 5.0,
    max_connections: int = 100,
    max_logged_bytes: int = 16 * 1024 * 1024,
    close_logger_timeout: float | None = None,
    settings: Settings | None = None,
    rejections: RejectionCounts | None = None,
) -> Starlette:
    """The proxy app for ``upstream`` (``http(s)://host[:port][/base]``), teeing into ``logger``.

    One connection pool (up to ``max_connections`` kept alive) lives for the app's lifespan.
    Exchanges whose request + response bodies exceed ``max_logged_bytes`` (after inflating)
    are proxied but not logged. With ``close_logger_timeout`` set, the lifespan shutdown
    closes ``logger``. ``settings`` give the request limits, the event-time bounds and the
    attribute headers (their defaults without); ``rejections`` is shared with the server's
    protocol (:func:`build_sidecar_server`) so refusals on the wire are counted too.
    """
    base = _upstream_url(upstream)
    limits = RequestLimits() if settings is None else RequestLimits.from_settings(settings)
    event_times = EventTimeBounds() if settings is None else EventTimeBounds.from_settings(settings)
    attributes = () if settings is None else attribute_header_names(settings.log_attribute_headers)
    metrics = SidecarMetrics(logger, rejections)
    config = _TeeConfig(logger=logger, metrics=metrics, max_bytes=max_logged_bytes, limits=limits,
                        event_times=event_times, attribute_headers=attributes)
    proxy = _Proxy(upstream, base, config, timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        # what httpx.AsyncHTTPTransport(limits=limits, retries=0) builds, without its wrapping per request
        proxy.pool = app.state.pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(), max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            http1=True, http2=False, retries=0, network_backend=AsyncioBackend(),
        )
        try:
            yield
        finally:
            await proxy.pool.aclose()
            if close_logger_timeout is not None:
                await run_in_threadpool(logger.close, close_logger_timeout)

    async def healthz(_request: Request) -> Response:
        stats = logger.stats()
        body = {"status": "ok", "upstream": upstream,
                "prediction_log": {"connected": stats.connected, "queue_depth": stats.queue_depth}}
        return Response(orjson.dumps(body), media_type="application/json")

    async def prometheus(_request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app = _SidecarApp(
        proxy,
        limits,
        metrics.rejections,
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
    rejections = RejectionCounts()
    app = create_sidecar_app(upstream, logger, close_logger_timeout=CLOSE_TIMEOUT_S, settings=settings,
                             rejections=rejections)
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
        http=bounded_protocol(RequestLimits.from_settings(settings), rejections),
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
