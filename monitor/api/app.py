"""The monitor's read API: windows, findings, alerts, Prometheus metrics.

``create_app(settings, store)`` builds a fresh FastAPI app around one store (no module state;
the caller owns and closes the store). Handlers are thin: filtering and shaping live in
:class:`~monitor.storage.Store`. Query parameters are validated: a value of the wrong type
or out of range gets 422 with FastAPI's usual ``detail`` list naming the parameter; an
unknown parameter (a typo that would silently drop a filter) gets 400 naming it; a
timestamp must carry an offset (``2012-03-01T08:00:00Z``; in a URL write ``+`` as ``%2B``).
Rows are returned as ``{"windows": [...]}``, ``{"findings": [...]}``, ``{"alerts": [...]}``.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Callable, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import AwareDatetime

from monitor.api.metrics import StoreCollector
from monitor.errors import SkewwatchError
from monitor.settings import Settings
from monitor.storage import Store

__all__ = ["create_app"]


def _only(*allowed: str) -> Callable[[Request], None]:
    """A dependency rejecting query parameters other than ``allowed`` with 400."""

    def check(request: Request) -> None:
        unknown = sorted(set(request.query_params) - set(allowed))
        if unknown:
            raise HTTPException(
                status_code=400,
                detail=f"unknown query parameter(s) {', '.join(unknown)}; allowed: {', '.join(allowed) or 'none'}",
            )

    return check


def create_app(settings: Settings, store: Store) -> FastAPI:
    app = FastAPI(
        title="skewwatch monitor",
        description="Training-serving skew and drift findings, windows and alerts.",
        version="0.1.0",
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    app.state.settings = settings
    app.state.store = store
    app.state.registry = registry

    @app.exception_handler(SkewwatchError)
    async def skewwatch_error(request: Request, exc: SkewwatchError) -> JSONResponse:
        status = 503 if store.closed else 400  # a closed store is our problem, not the caller's
        return JSONResponse(status_code=status, content={"detail": str(exc), "field": getattr(exc, "field", None)})

    @app.exception_handler(sqlite3.Error)
    async def database_error(request: Request, exc: sqlite3.Error) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": f"store unavailable: {exc}"})

    @app.get("/healthz", dependencies=[Depends(_only())])
    def healthz() -> Any:
        try:
            version = store.ping()
        except (SkewwatchError, sqlite3.Error) as exc:
            return JSONResponse(status_code=503, content={"status": "unavailable", "detail": str(exc)})
        return {"status": "ok", "schema_version": version}

    @app.get("/windows", dependencies=[Depends(_only("model", "mode", "since", "limit"))])
    def windows(
        model: str | None = Query(None, min_length=1, description="Only this model."),
        mode: Literal["skew", "drift"] | None = Query(None, description="Only skew or only drift windows."),
        since: AwareDatetime | None = Query(None, description="Windows starting at or after this instant."),
        limit: int = Query(100, ge=1, le=10_000, description="At most this many, newest first."),
    ) -> dict[str, Any]:
        rows = store.list_windows(model=model, mode=mode, since=since, limit=limit)
        return {"windows": [r.to_dict() for r in rows]}

    @app.get(
        "/findings",
        dependencies=[Depends(_only("model", "feature", "verdict", "window_id", "mode", "limit"))],
    )
    def findings(
        model: str | None = Query(None, min_length=1),
        feature: str | None = Query(None, min_length=1),
        verdict: Literal["ok", "warning", "critical"] | None = Query(None),
        window_id: int | None = Query(None, ge=1),
        mode: Literal["skew", "drift"] | None = Query(None),
        limit: int = Query(1000, ge=1, le=100_000),
    ) -> dict[str, Any]:
        rows = store.list_findings(
            model=model, feature=feature, verdict=verdict, window_id=window_id, mode=mode, limit=limit
        )
        return {"findings": [r.to_dict() for r in rows]}

    @app.get("/alerts", dependencies=[Depends(_only("state"))])
    def alerts(state: Literal["firing", "resolved"] | None = Query(None)) -> dict[str, Any]:
        return {"alerts": [r.to_dict() for r in store.list_alerts(state=state)]}

    @app.get("/metrics", dependencies=[Depends(_only())])
    def metrics() -> Response:
        return Response(content=generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
