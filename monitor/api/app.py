"""The monitor's HTTP API and dashboard: ``create_app(settings, store)``.

A fresh FastAPI app around one store (no module state; the caller owns and closes the store).
Handlers are thin: reading and paging live in :class:`~monitor.storage.Store`, numbers in the
core. The OpenAPI spec is served at ``/openapi.json`` and browsable at ``/docs``.

* Reads are open unless ``api_read_auth``; every changing endpoint needs the bearer token
  (:mod:`monitor.api.security`). ``/healthz``, ``/readyz`` and the dashboard's static files are
  always open (the dashboard asks for the token when it needs one).
* Bodies are limited (``api_max_body_bytes``; baseline uploads ``api_max_upload_bytes``): 413.
* CORS is off unless ``api_cors_origins`` names origins.
* Errors: an invalid parameter or body is 422 naming it (FastAPI's ``detail`` list, the
  offending input never echoed); an unknown query parameter is 400 (a typo would silently drop
  a filter); a store failure is 503 with ``Retry-After``, never 4xx. Instants are RFC 3339 with
  an offset inside 0001..9999 in UTC (write ``+`` as ``%2B`` in a URL); ids fit in 63 bits.
* Answers are bounded: list routes page with an opaque ``cursor`` and examine a bounded stretch
  of the history per page; text values are cut to ``api_max_value_chars`` with a marker.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, RedirectResponse

from monitor.api.bounded import clip
from monitor.api.context import Context
from monitor.api.limits import BodyLimit
from monitor.api.routes.admin import add_admin_routes
from monitor.api.routes.alerts import add_alert_routes
from monitor.api.routes.deadletters import add_dead_letter_routes
from monitor.api.routes.health import add_health_routes
from monitor.api.routes.models import add_model_routes
from monitor.api.routes.reports import add_report_routes
from monitor.api.routes.ui import add_ui_routes
from monitor.api.routes.windows import add_window_routes
from monitor.api.security import make_guards
from monitor.errors import BundleError, NotFoundError, SkewwatchError, StoreError, TimeError
from monitor.settings import Settings

__all__ = ["create_app"]

log = logging.getLogger(__name__)

API_VERSION = "1.0.0"


def _located(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """FastAPI's error list without the offending input (it may be huge, or a secret)."""
    out = []
    for e in errors[:20]:
        loc = [clip(str(p), 64) if isinstance(p, str) else p for p in e.get("loc", ())]
        out.append({"loc": loc, "msg": clip(str(e.get("msg", "")), 500), "type": str(e.get("type", "value_error"))})
    return out


def create_app(settings: Settings, store: Any) -> FastAPI:
    app = FastAPI(
        title="skewwatch monitor",
        description="Training-serving skew and drift: models, baselines, monitor configs, windows, findings, "
                    "score histories, dead letters, alerts and silences, reports, and the dashboard at /ui.",
        version=API_VERSION,
    )
    ctx = Context.build(settings, store)
    guards = make_guards(settings)
    app.state.settings = settings
    app.state.store = store
    app.state.context = ctx

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        log.warning("store error on %s: %s", request.url.path, exc)
        return JSONResponse(status_code=503, content={"detail": f"store unavailable: {clip(str(exc), 500)}"},
                            headers={"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": _located(list(exc.errors()))})

    @app.exception_handler(TimeError)
    async def bad_time(request: Request, exc: TimeError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": clip(str(exc), 500)})

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": clip(str(exc), 300)})

    @app.exception_handler(BundleError)
    async def bundle_error(request: Request, exc: BundleError) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": f"a model bundle is unreadable: {clip(str(exc), 500)}"})

    @app.exception_handler(SkewwatchError)
    async def ours(request: Request, exc: SkewwatchError) -> JSONResponse:
        log.error("error on %s: %s", request.url.path, exc)
        return JSONResponse(status_code=500, content={"detail": clip(str(exc), 500)})

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    add_health_routes(app, ctx, guards)
    add_model_routes(app, ctx, guards)
    add_window_routes(app, ctx, guards)
    add_dead_letter_routes(app, ctx, guards)
    add_alert_routes(app, ctx, guards)
    add_report_routes(app, ctx, guards)
    add_admin_routes(app, ctx, guards)
    add_ui_routes(app, ctx, guards)

    if settings.api_cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.api_cors_origins), allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(BodyLimit, default=settings.api_max_body_bytes, large=settings.api_max_upload_bytes,
                       large_path=lambda path: path.endswith("/baseline/tfdv"))
    return app
