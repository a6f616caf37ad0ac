"""Request size limits, as plain ASGI middleware (before FastAPI reads a byte of the body).

A body announced (``Content-Length``) or streamed beyond the limit of its route answers 413 and
is not read further. Baseline uploads get their own, larger limit.
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from starlette.exceptions import HTTPException

__all__ = ["BodyLimit"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class _TooLarge(HTTPException):
    """Raised from ``receive``: FastAPI passes HTTP exceptions on as they are (413), where any
    other error while reading a body would become its 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body over {limit} bytes")


class BodyLimit:
    """Refuse bodies over ``default`` bytes, or over ``large`` on paths ``large_path(path)`` accepts."""

    def __init__(self, app: Callable[..., Awaitable[None]], *, default: int, large: int,
                 large_path: Callable[[str], bool]) -> None:
        self.app = app
        self.default = default
        self.large = large
        self.large_path = large_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.large if self.large_path(scope.get("path", "")) else self.default
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    announced = int(value)
                except ValueError:
                    await self._refuse(send, 400, "Content-Length is not a number")
                    return
                if announced > limit:
                    await self._refuse(send, 413, f"request body over {limit} bytes")
                    return
        seen = 0
        started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send, 413, f"request body over {limit} bytes")

    @staticmethod
    async def _refuse(send: Send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
