"""Reports per window (Evidently)."""

from __future__ import annotations

from fastapi import FastAPI

from monitor.api.context import Context
from monitor.api.security import Guards

__all__ = ["add_report_routes"]


def add_report_routes(app: FastAPI, ctx: Context, guards: Guards) -> None:
    return None
