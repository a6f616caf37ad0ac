"""Uvicorn's httptools protocol with the header limits enforced on the wire.

Uvicorn's own httptools protocol keeps every byte of a request line and its headers until
they end: a 50 MB header was read whole and answered 200, and a client that sends its
headers one byte at a time (slow loris) holds its connection forever, since uvicorn's
keep-alive timer stops at the first byte. (Its h11 protocol has a byte limit,
``h11_max_incomplete_event_size``, but answers a bare 400, and h11 costs more CPU per request
than httptools.) :func:`bounded_protocol` builds the same protocol with three limits
(:class:`~serving.limits.RequestLimits`):

- ``max_header_bytes``: the bytes of the request line and headers, counted as they arrive.
  Past it the parser is not fed another byte: the answer is 431 and the connection closes.
  Memory per connection stays within the limit plus one socket read.
- ``max_headers``: the number of headers, counted in the parser's ``on_header`` callback: 431.
- ``header_timeout_seconds``: from the connection's start, and from the end of each response,
  the next request line and headers must be complete within it. A request cut off half-way
  gets 408 (counted); a connection that sent nothing is closed without a word, as uvicorn's
  keep-alive expiry (``timeout_keep_alive``, 5 s, usually first) would. Each timer runs up
  to a quarter longer, at random: 200 slow-loris connections opened at once expired in one
  event-loop pass and stalled it (the normal traffic's p99 went from 18 to 97 ms through the
  sidecar, ``bench/bench_hostile.py --kinds loris``); spread over 2.5 s, 14 ms against 12 ms
  without the attack.

Refusals are JSON (:meth:`~serving.limits.LimitExceeded.body`) and counted in the
:class:`~serving.limits.RejectionCounts`. Everything else is uvicorn's (``uvicorn==0.54.0``
is pinned; ``tests/serving/test_limits.py`` exercises each path over real sockets).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving.limits import LimitExceeded, RejectionCounts, RequestLimits, rejection_response

__all__ = ["BoundedHttpToolsProtocol", "bounded_protocol"]

_JITTER = 0.25  # a header timer runs between header_timeout_seconds and 1.25 times it


class _Refused(Exception):
    """Raised in a parser callback; httptools re-raises it as the context of its callback error."""

    def __init__(self, exc: LimitExceeded) -> None:
        super().__init__(str(exc))
        self.exc = exc


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` with header limits; build subclasses with :func:`bounded_protocol`."""

    limits: RequestLimits = RequestLimits()
    counts: RejectionCounts = RejectionCounts()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_headers = True  # the next bytes belong to a request line or headers
        self._header_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._refused = False

    # -- connection ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_headers:
            room = self.limits.max_header_bytes - self._header_bytes
            if len(data) > room:
                head, rest = data[:max(room, 0)], data[max(room, 0):]
                self._header_bytes += len(head)
                if head:
                    self._feed(head)
                if self._refused:
                    return
                if self._in_headers:  # the headers did not end within the limit
                    limit = self.limits.max_header_bytes
                    self._refuse(LimitExceeded(f"request line and headers are longer than the limit of {limit} bytes",
                                               limit="max_header_bytes", maximum=limit, status=431))
                    return
                self.data_received(rest)
                return
            self._header_bytes += len(data)
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        """uvicorn's ``data_received``, plus a refusal raised in a parser callback."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Refused):
                self._refuse(exc.__context__.exc)
                return
            self._bad_request()
        except httptools.HttpParserError:
            self._bad_request()
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def _bad_request(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self.send_400_response(msg)

    def _refuse(self, exc: LimitExceeded) -> None:
        self._refused = True
        self._cancel_header_timer()
        self.counts.bump(exc.limit)
        if not self.transport.is_closing():
            self.transport.write(rejection_response(exc))
            self.transport.close()

    # -- parser callbacks ---------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= self.limits.max_headers:
            limit = self.limits.max_headers
            raise _Refused(LimitExceeded(f"request has more than the limit of {limit} headers",
                                         limit="max_headers", maximum=limit, status=431))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_headers, self._header_bytes = True, 0  # what follows is the next request

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()  # the client's time to send its next request line and headers

    # -- the header timer ---------------------------------------------------------------------

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        # spread over a quarter more: connections opened together expire over seconds, not in one loop pass
        timeout = self.limits.header_timeout_s * (1.0 + _JITTER * random.random())
        self._header_timer = self.loop.call_later(timeout, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self._in_headers or self._refused:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is still being answered: the timer restarts after its response
        if self._header_bytes:
            timeout = self.limits.header_timeout_s
            self._refuse(LimitExceeded(f"request line and headers did not arrive within {timeout:g} s",
                                       limit="header_timeout_seconds", maximum=timeout, status=408))
        else:  # nothing of a next request: an idle connection, closed (not counted) as keep-alive expiry would
            self._refused = True
            self.transport.close()


def bounded_protocol(limits: RequestLimits, counts: RejectionCounts) -> type[BoundedHttpToolsProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` holding requests to ``limits``."""
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), {"limits": limits, "counts": counts})
