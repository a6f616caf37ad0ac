"""Alerts and silences (the store's alerting methods, issue 11)."""

from __future__ import annotations

from fastapi import FastAPI

from monitor.api.context import Context
from monitor.api.security import Guards

__all__ = ["add_alert_routes"]


def add_alert_routes(app: FastAPI, ctx: Context, guards: Guards) -> None:
    return None
