"""Who may do what: a bearer token for every changing endpoint, and for reads when configured.

The token is ``Settings.api_token`` (a ``SecretStr``: never printed, never echoed). A request
proves it with ``Authorization: Bearer <token>``, compared in constant time
(:func:`hmac.compare_digest` over the UTF-8 bytes). Without a configured token every changing
endpoint answers 403: nothing changes a monitor nobody secured. A missing or wrong token answers
401 with ``WWW-Authenticate: Bearer``; the answer never contains what was sent.
"""

from __future__ import annotations

import hmac
from typing import Callable

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from monitor.settings import Settings

__all__ = ["Guards", "make_guards"]

_bearer = HTTPBearer(auto_error=False, description="The monitor's API token (SKEWWATCH_API_TOKEN).")


class Guards:
    """FastAPI dependencies: ``write`` for changing endpoints, ``read`` for the others."""

    def __init__(self, write: Callable[..., None], read: Callable[..., None], reads_closed: bool) -> None:
        self.write = write
        self.read = read
        self.reads_closed = reads_closed


def make_guards(settings: Settings) -> Guards:
    secret = settings.api_token.get_secret_value().encode("utf-8") if settings.api_token is not None else None

    def check(credentials: HTTPAuthorizationCredentials | None) -> None:
        if secret is None:
            raise HTTPException(status_code=403, detail="changing the monitor is disabled: no API token is "
                                                        "configured (set SKEWWATCH_API_TOKEN)")
        given = credentials.credentials.encode("utf-8") if credentials is not None else b""
        if credentials is None or not hmac.compare_digest(given, secret):
            raise HTTPException(status_code=401, detail="a valid bearer token is required",
                                headers={"WWW-Authenticate": "Bearer"})

    def write(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
        check(credentials)

    if settings.api_read_auth:
        def read(credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
            if secret is None:  # reads closed but no token: nobody can read, say so
                raise HTTPException(status_code=403, detail="reads need a token but none is configured "
                                                            "(set SKEWWATCH_API_TOKEN)")
            check(credentials)
    else:
        def read() -> None:
            return None

    return Guards(write=write, read=read, reads_closed=settings.api_read_auth)
