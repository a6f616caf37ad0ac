"""Administration: run retention now."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from monitor.api.context import Context
from monitor.api.retention import policy_of
from monitor.api.routes.common import WRITE, only
from monitor.api.schemas import _Out
from monitor.api.security import Guards

__all__ = ["add_admin_routes"]


class RetentionOut(_Out):
    windows: int
    findings: int
    profiles: int
    samples: int
    protected: int


def add_admin_routes(app: FastAPI, ctx: Context, guards: Guards) -> None:
    @app.post("/admin/retention", response_model=RetentionOut, responses=WRITE, tags=["admin"],
              dependencies=[Depends(guards.write), Depends(only())])
    def retention() -> RetentionOut:
        """Delete now what the retention settings no longer keep (the monitor also does it on its own)."""
        return RetentionOut(**ctx.store.enforce_retention(policy_of(ctx.settings)).to_dict())
