"""``GET /reports/{window_id}``: skewwatch's scores and an Evidently report of one window (HTML)."""

from __future__ import annotations

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

from monitor.api.context import Context
from monitor.api.reports import EVIDENTLY_JS_ROUTE, ReportBuilder, evidently_js, evidently_version
from monitor.api.routes.common import READ, WindowId, as_json, only
from monitor.api.schemas import Problem
from monitor.api.security import Guards

__all__ = ["add_report_routes", "REPORT_CSP"]

#: Reports run Evidently's inline bootstrap; everything they load comes from the monitor itself.
REPORT_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
              "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'")


def add_report_routes(app: FastAPI, ctx: Context, guards: Guards) -> None:
    store = ctx.store
    builder = ReportBuilder(ctx.settings.state_dir / "reports", keep=ctx.settings.report_cache_size,
                            max_chars=ctx.max_chars)
    app.state.reports = builder

    @app.get("/reports/{window_id}", response_class=HTMLResponse, tags=["reports"],
             dependencies=[Depends(guards.read), Depends(only())],
             responses=as_json({**READ, 200: {"content": {"text/html": {}}, "description": "The report page."},
                                404: {"model": Problem, "description": "No such window."}}))
    def report(window_id: WindowId) -> HTMLResponse:
        """The window's skewwatch scores, then Evidently's data drift and summary of its row sample against
        the bundle's training sample. Built on first request, then served from the cache."""
        window = store.window(window_id)
        if window is None:
            raise HTTPException(status_code=404, detail=f"no window {window_id}")
        page, cached = builder.get(window, store.findings_of(window_id), store.load_sample(window_id),
                                   ctx.bundles.get(window.model, window.model_version))
        return HTMLResponse(page, headers={"Content-Security-Policy": REPORT_CSP,
                                           "X-Skewwatch-Report": "cached" if cached else "built",
                                           "Cache-Control": "no-cache"})

    @app.get(EVIDENTLY_JS_ROUTE.format(version=evidently_version()), include_in_schema=False)
    def evidently_lib() -> FileResponse:
        return FileResponse(evidently_js(), media_type="text/javascript",
                            headers={"Cache-Control": "public, max-age=31536000, immutable"})
