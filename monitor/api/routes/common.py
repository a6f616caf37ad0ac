"""What the route modules share: validated query types, the unknown-parameter check, error docs."""

from __future__ import annotations

from typing import Annotated, Any, Callable

from fastapi import HTTPException, Path, Query, Request
from pydantic import AfterValidator, StringConstraints

from monitor.api.paging import CURSOR_MAX, CURSOR_PATTERN, MAX_INT
from monitor.api.schemas import Problem
from monitor.timeutil import parse_instant

__all__ = ["only", "Instant", "since_q", "until_q", "cursor_q", "WindowId", "NAME_MAX", "READ", "WRITE",
           "name_q", "not_found", "as_json"]

NAME_MAX = 256  # the store's NAME columns
_RFC3339 = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"


def only(*allowed: str) -> Callable[[Request], None]:
    """A dependency refusing query parameters other than ``allowed`` with 400 (a typo would drop a filter)."""

    def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - set(allowed))
        if unknown:
            shown = ", ".join(u[:40] for u in unknown[:5])
            raise HTTPException(status_code=400, detail=f"unknown query parameter(s) {shown}; "
                                                        f"allowed: {', '.join(allowed) or 'none'}")

    return check


def _instant(text: str) -> int:
    return parse_instant(text, what="instant")  # TimeError is a ValueError: 422 naming the parameter


#: An RFC 3339 instant with an offset, read as epoch milliseconds (422 outside 0001..9999 in UTC).
Instant = Annotated[Annotated[str, StringConstraints(max_length=40, pattern=_RFC3339)], AfterValidator(_instant)]


def since_q() -> Any:
    return Query(None, description="Only windows starting at or after this instant (RFC 3339 with an offset, "
                                   "0001..9999 in UTC; write + as %2B in a URL).")


def until_q() -> Any:
    return Query(None, description="Only windows starting before this instant.")


def cursor_q() -> Any:
    return Query(None, max_length=CURSOR_MAX, pattern=CURSOR_PATTERN,
                 description="The `next` cursor of the previous page.")


def name_q(what: str) -> Any:
    return Query(None, min_length=1, max_length=NAME_MAX, description=what)


WindowId = Annotated[int, Path(ge=1, le=MAX_INT, description="A window id (as /windows gives them).")]

_PROBLEM = {"model": Problem}
READ: dict[int | str, dict[str, Any]] = {
    400: {**_PROBLEM, "description": "An unknown query parameter."},
    401: {**_PROBLEM, "description": "Reads need the bearer token (api_read_auth) and it is missing or wrong."},
    403: {**_PROBLEM, "description": "Reads need a token but none is configured."},
    422: {**_PROBLEM, "description": "A parameter is invalid."},
    503: {**_PROBLEM, "description": "The store is unavailable; retry later."},
}
WRITE: dict[int | str, dict[str, Any]] = {
    **READ,
    401: {**_PROBLEM, "description": "The bearer token is missing or wrong."},
    403: {**_PROBLEM, "description": "No API token is configured: changing endpoints are disabled."},
    413: {**_PROBLEM, "description": "The request body is too large."},
}


def as_json(responses: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """Error responses stated as JSON explicitly, for routes whose own answer is HTML or text
    (FastAPI would otherwise document them in the route's media type)."""
    out: dict[int | str, dict[str, Any]] = {}
    for code, spec in responses.items():
        spec = dict(spec)
        if spec.pop("model", None) is not None:
            spec["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        out[code] = spec
    return out


def not_found(what: str) -> HTTPException:
    return HTTPException(status_code=404, detail=what)
