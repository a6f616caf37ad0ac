"""The dashboard's static files at /ui."""

from __future__ import annotations

from fastapi import FastAPI

from monitor.api.context import Context
from monitor.api.security import Guards

__all__ = ["add_ui_routes"]


def add_ui_routes(app: FastAPI, ctx: Context, guards: Guards) -> None:
    return None
