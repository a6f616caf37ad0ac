"""What a client may send, and the checks that hold it to that while reading, before parsing.

Each limit is enforced where the bytes first arrive, so nothing over a limit is ever held in
memory beyond the limit itself:

=========================  ==========================================  =====================
limit (setting)            where it is enforced                        answer
=========================  ==========================================  =====================
``max_header_bytes``       the HTTP parser's callbacks, per request    431
                           line and header (:mod:`serving.protocol`)
``max_headers``            same                                        431
``header_timeout_seconds`` same: the request line and headers must     408 (or a plain close
                           arrive within it                            when nothing came)
``max_body_bytes``         :class:`LimitsMiddleware`: a declared       413
                           ``Content-Length`` before any byte is read,
                           then the bytes as they stream in
``body_timeout_seconds``   :class:`LimitsMiddleware`, per body         408
``max_json_depth``         :func:`check_json`, on the raw bytes        413
``max_instances``          :func:`check_json`, on the raw bytes        413
``max_decompression_ratio``  :func:`serving.exchange.decode_body`      413 (sidecar request)
=========================  ==========================================  =====================

Every refusal is a :class:`LimitExceeded` whose answer is JSON
``{"error": ..., "limit": "<setting>", "max": N}`` and closes the connection (the rest of an
oversized body is never read). Rejections are counted by limit in a :class:`RejectionCounts`,
which the apps export as ``skewwatch_*_rejected_total{limit=...}``.

:func:`check_json` answers two questions about a JSON body without building it: how deep it
nests, and how many elements the arrays a TF Serving body keeps its instances in hold (the
body itself if it is an array, an array under a top-level key such as ``instances`` or
``inputs``, or a column array one object further down, as in ``{"inputs": {name: [...]}}``).
It works on the bytes with numpy (about as fast as ``orjson.loads``), so a body of a million tiny objects
is refused before orjson would turn it into a million Python dicts.
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson

from monitor.errors import SkewwatchError

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "LimitName",
    "LimitExceeded",
    "RequestLimits",
    "RejectionCounts",
    "LimitsMiddleware",
    "answer_limit",
    "check_json",
    "declared_length",
    "rejection_response",
]

#: 8 MiB: a 10,000-instance request of the bike model is 1.8 MB as compact JSON and 2.7 MB
#: indented; this leaves about 800 bytes per instance at the instance limit.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024

LimitName = Literal[
    "max_body_bytes",
    "max_header_bytes",
    "max_headers",
    "max_json_depth",
    "max_instances",
    "max_decompression_ratio",
    "header_timeout_seconds",
    "body_timeout_seconds",
    "max_logged_bytes",  # the sidecar's logging limit (request + response), an argument of its app
    "log_message_max_bytes",
]


class LimitExceeded(SkewwatchError):
    """A request over one of the :class:`RequestLimits`: ``limit`` names the setting, ``maximum`` its value.

    ``status`` is the HTTP answer: 413 (body, depth, instances, decompression), 431 (headers)
    or 408 (a timeout).
    """

    def __init__(self, message: str, *, limit: LimitName, maximum: float, status: int = 413) -> None:
        super().__init__(message)
        self.limit = limit
        self.maximum = maximum
        self.status = status

    def body(self) -> bytes:
        maximum = int(self.maximum) if float(self.maximum).is_integer() else self.maximum
        return orjson.dumps({"error": str(self), "limit": self.limit, "max": maximum})


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """The limits one serving or sidecar process enforces (see the module docstring)."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    max_json_depth: int = 32
    max_instances: int = 10_000
    max_decompression_ratio: float = 200.0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_header_bytes", "max_headers", "max_json_depth", "max_instances"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_decompression_ratio < 1 or self.header_timeout_s <= 0 or self.body_timeout_s <= 0:
            raise ValueError("max_decompression_ratio must be >= 1 and the timeouts > 0")

    @classmethod
    def from_settings(cls, settings: Any) -> "RequestLimits":
        return cls(
            max_body_bytes=settings.max_body_bytes,
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            max_json_depth=settings.max_json_depth,
            max_instances=settings.max_instances,
            max_decompression_ratio=settings.max_decompression_ratio,
            header_timeout_s=settings.header_timeout_seconds,
            body_timeout_s=settings.body_timeout_seconds,
        )

    def body_too_large(self, size: int | None = None) -> LimitExceeded:
        got = "" if size is None else f" ({size} bytes)"
        return LimitExceeded(f"request body{got} is larger than the limit of {self.max_body_bytes} bytes",
                             limit="max_body_bytes", maximum=self.max_body_bytes)


class RejectionCounts:
    """Requests refused, by limit; bumped from the event loop, read at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def bump(self, limit: str) -> None:
        with self._lock:
            self._counts[limit] = self._counts.get(limit, 0) + 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def rejection_response(exc: LimitExceeded) -> bytes:
    """The whole HTTP/1.1 answer to a request refused before any app saw it (the protocol layer)."""
    from http import HTTPStatus

    body = exc.body()
    head = (
        f"HTTP/1.1 {exc.status} {HTTPStatus(exc.status).phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The request's Content-Length when it declares exactly one valid value, else None."""
    found = None
    for name, value in headers:
        if name == b"content-length":
            if found is not None or not value.strip().isdigit():
                return None  # repeated or malformed: the server's parser decides, the byte count still holds
            found = int(value)
    return found


# -- JSON shape, from the bytes --------------------------------------------------------------------

# each byte's part in the structure: 1 opens, 2 closes, 3 separates, 4 quotes, 0 anything else
_CLASS = bytearray(256)
_CLASS[ord("[")] = _CLASS[ord("{")] = 1
_CLASS[ord("]")] = _CLASS[ord("}")] = 2
_CLASS[ord(",")] = 3
_CLASS[ord('"')] = 4
_CLASSES = bytes(_CLASS)
_ESCAPE = re.compile(rb"\\.", re.S)
_ARRAY, _OBJECT = ord("["), ord("{")


def check_json(body: bytes, *, max_depth: int, max_instances: int) -> None:
    """Raise :class:`LimitExceeded` if ``body`` nests deeper than ``max_depth`` or keeps more than
    ``max_instances`` elements in an instance array (see the module docstring); never parses it.

    Brackets, braces and commas inside strings do not count. Bytes that are not JSON pass (the
    parser refuses them next); a malformed body is measured as far as its brackets go. About as
    fast as ``orjson.loads`` on the same bytes, with no Python object per value.
    """
    if body.count(b"[") + body.count(b"{") <= max_depth and body.count(b",") < max_instances:
        return  # a body cannot nest deeper than its brackets, nor hold more elements than commas + 1
    if b"\\" in body:  # escape pairs, left to right as JSON reads them, become two inert bytes
        body = _ESCAPE.sub(b"__", body)
    classes = np.frombuffer(body.translate(_CLASSES), np.uint8)
    pos = np.flatnonzero((classes - np.uint8(1)) < 3)  # brackets, braces, commas (0 wraps to 255)
    quotes = np.flatnonzero(classes == 4)
    if quotes.size:
        pos = pos[(np.searchsorted(quotes, pos) & 1) == 0]  # an even number of quotes before: outside strings
    if not pos.size:
        return
    k = classes[pos].astype(np.int8)
    step = np.where(k == 1, 1, np.where(k == 2, -1, 0)).astype(np.int8)
    depth = np.cumsum(step, dtype=np.int64)  # an opener's own depth; a comma's, its container's
    deepest = int(depth.max())
    if deepest > max_depth:
        raise LimitExceeded(f"JSON body nests {deepest} levels deep, more than the limit of {max_depth}",
                            limit="max_json_depth", maximum=max_depth)
    chars = np.frombuffer(body, np.uint8)[pos]
    openers = np.flatnonzero(k == 1)
    commas = np.flatnonzero(k == 3)
    by_depth = {d: openers[depth[openers] == d] for d in (1, 2, 3)}
    parent_is_object: dict[int, np.ndarray] = {}
    largest = 0
    for d in (1, 2, 3):
        mine = by_depth[d]
        if not mine.size:
            break
        if d == 1:
            parent_is_object[d] = np.ones(mine.size, bool)  # the body itself: any container counts
        else:  # the container one level up is the last opener at depth d-1 before this one
            up = by_depth[d - 1]
            parent = np.maximum(np.searchsorted(up, mine) - 1, 0)
            parent_is_object[d] = (chars[up[parent]] == _OBJECT) & (parent_is_object[d - 1][parent] | (d == 2))
        counted = (chars[mine] == _ARRAY) & parent_is_object[d]
        if not counted.any():
            continue
        own = commas[depth[commas] == d]
        owner = np.searchsorted(mine, own) - 1  # a comma belongs to the last opener at its depth
        elements = np.bincount(owner[owner >= 0], minlength=mine.size) + 1
        largest = max(largest, int(elements[counted].max()))
    if largest > max_instances:
        raise LimitExceeded(f"JSON body holds {largest} instances, more than the limit of {max_instances}",
                            limit="max_instances", maximum=max_instances)


# -- the ASGI layer ---------------------------------------------------------------------------------


class LimitsMiddleware:
    """Holds every HTTP request to the :class:`RequestLimits` before and while the app reads it.

    Before the app runs: the header count and bytes (the protocol layer already cut them on
    the wire; this covers any other ASGI server) and a declared ``Content-Length``. While the
    app reads: the body's bytes as they arrive, and the time the body takes. A breach raises
    :class:`LimitExceeded` out of the app's ``receive``; an app may answer it itself (serving
    counts it per model), otherwise this middleware answers 413/431/408 if no response has
    started. Every answer it sends carries ``connection: close``, so the rest of an oversized
    body is never read.
    """

    def __init__(self, app: Any, limits: RequestLimits, counts: RejectionCounts) -> None:
        self.app, self.limits, self.counts = app, limits, counts

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits = self.limits
        headers = scope["headers"]
        try:
            if len(headers) > limits.max_headers:
                raise LimitExceeded(f"request has {len(headers)} headers, more than the limit of {limits.max_headers}",
                                    limit="max_headers", maximum=limits.max_headers, status=431)
            size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
            for name, value in headers:
                size += len(name) + len(value) + 4
            if size > limits.max_header_bytes:
                raise LimitExceeded(f"request line and headers take {size} bytes, more than the limit of "
                                    f"{limits.max_header_bytes}", limit="max_header_bytes",
                                    maximum=limits.max_header_bytes, status=431)
            declared = declared_length(headers)
            if declared is not None and declared > limits.max_body_bytes:
                raise limits.body_too_large(declared)
        except LimitExceeded as exc:
            self.counts.bump(exc.limit)
            await answer_limit(send, exc)
            return

        received = 0
        reading = True
        started = False
        deadline = asyncio.get_running_loop().time() + limits.body_timeout_s

        async def limited_receive() -> Any:
            nonlocal received, reading
            if not reading:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                reading = False
                raise LimitExceeded(f"request body did not arrive within {limits.body_timeout_s:g} s",
                                    limit="body_timeout_seconds", maximum=limits.body_timeout_s, status=408) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limits.max_body_bytes:
                    reading = False
                    raise limits.body_too_large()
                reading = message.get("more_body", False)
            else:
                reading = False
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except LimitExceeded as exc:
            self.counts.bump(exc.limit)
            if started:
                raise
            await answer_limit(send, exc)


async def answer_limit(send: Any, exc: LimitExceeded) -> None:
    """Send the JSON answer to ``exc`` (413/431/408), closing the connection after it."""
    body = exc.body()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
