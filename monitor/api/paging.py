"""Opaque cursors for list routes.

A cursor is the keyset position where the next page starts (the store's ``Page.next``) plus a
digest of the query it belongs to, base64url-encoded: clients pass it back as it is and never
build one. A cursor that does not decode, belongs to another query (other filters, another
route) or carries numbers outside the store's range is refused with 422, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any, Mapping

from fastapi.exceptions import RequestValidationError

__all__ = ["encode_cursor", "decode_cursor", "CURSOR_PATTERN", "CURSOR_MAX", "MAX_INT"]

CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
CURSOR_MAX = 200
MAX_INT = 2**63 - 1  # the store's BIGINT range
MIN_INT = -(2**63)


def _digest(route: str, query: Mapping[str, Any]) -> str:
    text = json.dumps([route, sorted((k, v) for k, v in query.items() if v is not None and k != "cursor")],
                      default=str, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def encode_cursor(position: tuple[int, ...] | None, *, route: str, query: Mapping[str, Any]) -> str | None:
    """The cursor of the next page (``None`` when there is none)."""
    if position is None:
        return None
    raw = json.dumps([_digest(route, query), *position], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _refuse(message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", "cursor"), "msg": message, "type": "value_error"}])


def decode_cursor(cursor: str | None, *, route: str, query: Mapping[str, Any], size: int) -> tuple[int, ...] | None:
    """The keyset position of ``cursor`` (``size`` integers), or 422 naming the ``cursor`` parameter."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        raise _refuse("not a cursor this API gave out") from None
    if not isinstance(value, list) or len(value) != size + 1 or not isinstance(value[0], str):
        raise _refuse("not a cursor this API gave out")
    if value[0] != _digest(route, query):
        raise _refuse("this cursor belongs to another query: repeat the filters of the page it came from")
    position = value[1:]
    if not all(type(v) is int and MIN_INT <= v <= MAX_INT for v in position):
        raise _refuse("not a cursor this API gave out")
    return tuple(position)
