"""The dashboard at ``/ui/``: three static files from ``monitor/ui`` (plain JavaScript and SVG, no
library, nothing from a CDN), served with a Content-Security-Policy that allows only this origin."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

from monitor.api.context import Context
from monitor.api.security import Guards

__all__ = ["add_ui_routes", "UI_DIR", "UI_CSP"]

UI_DIR = Path(__file__).resolve().parents[2] / "ui"
UI_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
          "base-uri 'none'; form-action 'none'; frame-ancestors 'self'")
_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8"}


def add_ui_routes(app: FastAPI, ctx: Context, guards: Guards) -> None:
    headers = {"Content-Security-Policy": UI_CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}

    @app.get("/ui", include_in_schema=False)
    def ui_root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    @app.get("/ui/", include_in_schema=False)
    def ui_index() -> FileResponse:
        return FileResponse(UI_DIR / "index.html", media_type=_FILES["index.html"], headers=headers)

    @app.get("/ui/{name}", include_in_schema=False)
    def ui_file(name: str) -> FileResponse:
        if name not in _FILES:
            raise HTTPException(status_code=404, detail="not a dashboard file")
        return FileResponse(UI_DIR / name, media_type=_FILES[name], headers=headers)
