"""Liveness, readiness and the Prometheus scrape."""

from __future__ import annotations

from typing import Literal

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse, Response

from monitor.api.context import Context
from monitor.api.metrics import CONTENT_TYPE, render
from monitor.api.routes.common import READ, as_json, only
from monitor.api.schemas import _Out
from monitor.api.security import Guards
from monitor.errors import StoreError

__all__ = ["add_health_routes"]


class Health(_Out):
    status: Literal["ok", "unavailable"]
    schema_version: str | None = None
    detail: str | None = None


class Check(_Out):
    ok: bool
    detail: str


class Ready(_Out):
    status: Literal["ready", "not ready"]
    checks: dict[str, Check]


def add_health_routes(app: FastAPI, ctx: Context, guards: Guards) -> None:
    store = ctx.store

    def store_check() -> tuple[bool, str]:
        try:
            return True, f"schema {store.ping()}"
        except StoreError as exc:
            return False, str(exc)

    @app.get("/healthz", response_model=Health, tags=["health"], dependencies=[Depends(only())],
             responses={503: {"model": Health, "description": "The store does not answer."}})
    def healthz() -> Response | Health:
        """The process is up and its store answers (open, whatever api_read_auth says)."""
        try:
            version = store.ping()
        except StoreError as exc:
            return JSONResponse(status_code=503, content={"status": "unavailable", "detail": str(exc)})
        return Health(status="ok", schema_version=version)

    @app.get("/readyz", response_model=Ready, tags=["health"], dependencies=[Depends(only())],
             responses={503: {"model": Ready, "description": "The store or Kafka does not answer."}})
    def readyz() -> Response | Ready:
        """Ready to serve: the store answers, and Kafka too unless monitor_check_kafka is off."""
        checks = {"store": Check(ok=(s := store_check())[0], detail=s[1])}
        if ctx.kafka is not None:
            ok, detail = ctx.kafka.check()
            checks["kafka"] = Check(ok=ok, detail=detail)
        ready = all(c.ok for c in checks.values())
        body = Ready(status="ready" if ready else "not ready", checks=checks)
        return body if ready else JSONResponse(status_code=503, content=body.model_dump())

    @app.get("/metrics", tags=["health"], responses=as_json({**READ, 200: {"content": {CONTENT_TYPE: {}},
                                                                            "description": "Prometheus text format."}}),
             response_class=Response, dependencies=[Depends(guards.read), Depends(only())])
    def metrics() -> Response:
        """Every latest score, the latest window of each stream, dead letters and firing alerts."""
        return Response(content=render(store), media_type=CONTENT_TYPE)
