"""httpcore's network backend on the running asyncio (uvloop) loop, without anyio.

The sidecar forwards every request through :class:`httpcore.AsyncConnectionPool`. Its
default backend goes through anyio, which opens a cancel scope for every read and write
(about eleven per proxied request) and looks up the running library each time: most of the
proxy's CPU per request. :class:`AsyncioBackend` implements httpcore's documented
``AsyncNetworkBackend`` interface on a plain :class:`asyncio.Protocol`, with one timer per
wait instead. It keeps what the anyio stream promises: the same httpcore errors
(``ConnectError``/``ConnectTimeout``, ``ReadError``/``ReadTimeout``,
``WriteError``/``WriteTimeout``), ``b""`` at the end of the stream, TLS through
:meth:`asyncio.loop.start_tls`, and ``is_readable`` (how the pool notices an idle
keep-alive connection the server closed). It adds read back-pressure: past
``READ_HIGH_WATER`` buffered bytes it stops reading from the socket until the reader
catches up, so a slow client pushes back on the upstream through TCP.
"""

from __future__ import annotations

import asyncio
import collections
import select
import ssl
from typing import Any, Iterable

import httpcore

__all__ = ["READ_HIGH_WATER", "AsyncioBackend", "AsyncioStream"]

READ_HIGH_WATER = 256 * 1024  # bytes buffered before reading from the socket pauses


class _StreamProtocol(asyncio.Protocol):
    """Buffers what the upstream sends until :class:`AsyncioStream` reads it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.eof = False
        self.error: Exception | None = None
        self.waiter: asyncio.Future[None] | None = None  # a read waiting for data
        self.writable: asyncio.Future[None] | None = None  # a write waiting for the transport to drain
        self.paused_writing = False
        self.paused_reading = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > READ_HIGH_WATER and not self.paused_reading and self.transport is not None:
            self.paused_reading = True  # a slow client: let TCP push back on the upstream
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof, self.error = True, exc
        self._wake()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def pause_writing(self) -> None:
        self.paused_writing = True

    def resume_writing(self) -> None:
        self.paused_writing = False
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


def _socket_readable(sock: Any) -> bool:
    """Whether recv() would return at once (data or the end): httpcore's check, poll with no wait."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _expire(waiter: asyncio.Future[None], error: type[Exception]) -> None:
    if not waiter.done():
        waiter.set_exception(error())


async def _wait(waiter: asyncio.Future[None], timeout: float | None, error: type[Exception]) -> None:
    """Await ``waiter``; after ``timeout`` seconds it fails with ``error`` instead (one timer, no scope)."""
    timer = None if timeout is None else waiter.get_loop().call_later(timeout, _expire, waiter, error)
    try:
        await waiter
    finally:
        if timer is not None:
            timer.cancel()


class AsyncioStream(httpcore.AsyncNetworkStream):
    """httpcore's network stream on a plain asyncio transport.

    What httpcore's anyio stream does (same errors: ``ReadTimeout``/``ReadError``,
    ``WriteTimeout``/``WriteError``, ``b""`` at the end of the stream), with a timer handle
    per wait instead of anyio's cancel scopes per read and write.
    """

    def __init__(self, transport: asyncio.Transport, protocol: _StreamProtocol) -> None:
        self.transport, self.protocol = transport, protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self.protocol
        if not protocol.chunks and not protocol.eof:
            waiter = protocol.waiter = asyncio.get_running_loop().create_future()
            try:
                await _wait(waiter, timeout, httpcore.ReadTimeout)
            finally:
                protocol.waiter = None
        if protocol.chunks:
            data = protocol.chunks.popleft()
            if len(data) > max_bytes:
                data, rest = data[:max_bytes], data[max_bytes:]
                protocol.chunks.appendleft(rest)
            protocol.buffered -= len(data)
            if protocol.paused_reading and protocol.buffered <= READ_HIGH_WATER // 4:
                protocol.paused_reading = False
                self.transport.resume_reading()
            return data
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error) or type(protocol.error).__name__)
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        protocol = self.protocol
        if protocol.error is not None or self.transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self.transport.write(buffer)
        if protocol.paused_writing:
            waiter = protocol.writable = asyncio.get_running_loop().create_future()
            try:
                await _wait(waiter, timeout, httpcore.WriteTimeout)
            finally:
                protocol.writable = None
            if protocol.error is not None:
                raise httpcore.WriteError(str(protocol.error))

    async def aclose(self) -> None:
        self.transport.close()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self.transport, self.protocol, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError as exc:
            self.transport.close()
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except (OSError, ssl.SSLError) as exc:
            self.transport.close()
            raise httpcore.ConnectError(str(exc)) from exc
        if transport is None:
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        # start_tls does not call connection_made again: point the protocol at the TLS transport, so
        # back-pressure pauses and resumes the same transport (pausing the raw socket under the TLS
        # layer and resuming the TLS one never resumed anything: reads past READ_HIGH_WATER hung).
        self.protocol.transport = transport  # type: ignore[assignment]
        return AsyncioStream(transport, self.protocol)  # type: ignore[arg-type]

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # an idle keep-alive connection the upstream has closed
            protocol = self.protocol
            return bool(protocol.chunks) or protocol.eof or _socket_readable(self.transport.get_extra_info("socket"))
        name = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername", "socket": "socket"}
        return self.transport.get_extra_info(name[info]) if info in name else None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on the running asyncio (uvloop) loop, without anyio."""

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    _StreamProtocol, host, port, local_addr=None if local_address is None else (local_address, 0)
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(transport, protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
