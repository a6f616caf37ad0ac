"""Window reports: an Evidently report of the window's row sample against the bundle's training
sample, after skewwatch's own scores for the window; built once and kept on disk.

* The rows are the bounded reservoir sample the collectors keep per window (``Store.load_sample``:
  ``{"columns": {feature: [...]}, "outputs": {"prediction": [...]}}``) and the ``sample.csv`` of the
  window's bundle (training rows, without predictions: the report compares features; skewwatch's
  scores cover the predictions). Text values are cut to ``api_max_value_chars`` before Evidently
  sees them, so a megabyte category cannot blow the report up.
* Evidently's JavaScript (3.5 MB) is not inlined into every report: the page loads it once from
  ``/reports/static/evidently-<version>.js``, served from the installed package. Nothing comes from
  the internet.
* Reports are cached under ``state_dir/reports`` keyed by window id and decision time, newest
  ``report_cache_size`` kept; a window without a sample or a bundle gets skewwatch's scores alone.
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
import threading
from pathlib import Path
from typing import Any, Sequence

from monitor.api.bounded import clip
from monitor.bundle import PREDICTION_SPEC, Bundle
from monitor.storage.rows import FindingRow, WindowRow
from monitor.timeutil import format_instant

__all__ = ["ReportBuilder", "evidently_js", "EVIDENTLY_JS_ROUTE"]

log = logging.getLogger(__name__)

_ORDER = {"critical": 0, "warning": 1, "ok": 2}


def _evidently_static() -> Path:
    import evidently

    return Path(evidently.__path__[0]) / "nbextension" / "static"


def evidently_version() -> str:
    import evidently

    return evidently.__version__


EVIDENTLY_JS_ROUTE = "/reports/static/evidently-{version}.js"


def evidently_js() -> Path:
    return _evidently_static() / "index.js"


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}g}"


def scores_section(window: WindowRow, findings: Sequence[FindingRow], *, max_chars: int, notes: Sequence[str]) -> str:
    """skewwatch's own scores of one window as an HTML section (worst first)."""
    rows = sorted(findings, key=lambda f: (_ORDER.get(f.verdict, 3), -((f.effect or 0) / f.floor if f.floor else 0),
                                           f.mode, f.feature, f.test))
    def row(f: FindingRow) -> str:
        ratio = (f.effect / f.floor) if f.effect is not None and f.floor else None
        return (f'<tr class="{html.escape(f.verdict)}"><td>{html.escape(f.mode)}</td><td>{html.escape(f.family)}</td>'
                f"<td>{html.escape(f.feature)}</td><td>{html.escape(f.test)}</td><td>{_fmt(f.effect)}</td>"
                f"<td>{_fmt(f.floor)}</td><td>{_fmt(ratio, 3)}</td><td>{_fmt(f.q_value, 3)}</td>"
                f"<td>{html.escape(f.verdict)}</td><td>{html.escape(clip(f.message, max_chars) or '')}</td></tr>")

    head = ("<thead><tr><th>mode</th><th>family</th><th>feature</th><th>test</th><th>effect</th><th>floor</th>"
            "<th>effect / floor</th><th>q</th><th>verdict</th><th>message</th></tr></thead>")
    flagged = "".join(row(f) for f in rows if f.verdict != "ok")
    calm = [f for f in rows if f.verdict == "ok"]
    tables = (f"<table>{head}<tbody>{flagged}</tbody></table>" if flagged else "<p>No score reached its floor.</p>")
    if calm:
        tables += (f"<details><summary>{len(calm)} scores below their floors</summary><table>{head}<tbody>"
                   f"{''.join(row(f) for f in calm)}</tbody></table></details>")
    note = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in notes)
    segment = window.segment or "all traffic"
    return f"""
<section id="skewwatch-scores" style="font-family: system-ui, sans-serif; margin: 16px 24px;">
<style>
#skewwatch-scores table {{ border-collapse: collapse; font-size: 13px; }}
#skewwatch-scores td, #skewwatch-scores th {{ border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; }}
#skewwatch-scores tr.critical td {{ background: #fde2e1; }}
#skewwatch-scores tr.warning td {{ background: #fff4d6; }}
#skewwatch-scores .note {{ color: #555; }}
</style>
<h1 style="font-size: 20px;">skewwatch window {window.id}: {html.escape(window.model)} {html.escape(window.model_version)}
({html.escape(segment)})</h1>
<p>{format_instant(window.start_ms)} .. {format_instant(window.end_ms)}, {window.rows} rows,
{window.alerting} of {window.findings} findings alerting. <a href="/ui/#window={window.id}">Dashboard</a></p>
{note}
<h2 style="font-size: 16px;">skewwatch scores</h2>
{tables}
<h2 style="font-size: 16px;">Evidently: window sample against the training sample</h2>
</section>
"""


def _clip_frame(frame: Any, max_chars: int) -> Any:
    for name in frame.columns:
        if frame[name].dtype == object:
            frame[name] = frame[name].map(lambda v: clip(v, max_chars) if isinstance(v, str) else v)
    return frame


def evidently_html(sample: dict[str, Any], bundle: Bundle, *, max_chars: int) -> str:
    """The Evidently report (data drift and summary presets) of a window sample against the bundle's sample."""
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    numeric = [s.name for s in bundle.specs if s.kind == "numeric"]
    categorical = [s.name for s in bundle.specs if s.kind == "categorical"]
    names = numeric + categorical
    columns = sample.get("columns", {})
    n = max((len(v) for v in columns.values() if isinstance(v, list)), default=0)
    current = pd.DataFrame({c: (columns.get(c) if isinstance(columns.get(c), list) and len(columns[c]) == n
                                else [None] * n) for c in names})
    reference = pd.read_csv(bundle.file("sample"), usecols=lambda c: c in names, keep_default_na=True)
    for frame in (current, reference):
        for c in numeric:
            frame[c] = pd.to_numeric(frame[c], errors="coerce")
        for c in categorical:
            frame[c] = frame[c].astype(object).where(frame[c].notna(), None)
            frame[c] = frame[c].map(lambda v: v if v is None else str(v))
        _clip_frame(frame, max_chars)
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    snapshot = Report([DataDriftPreset(), DataSummaryPreset()]).run(
        Dataset.from_pandas(current[names], data_definition=definition),
        Dataset.from_pandas(reference[names], data_definition=definition))
    page = snapshot.get_html_str(as_iframe=False)
    inline = f"<script>{evidently_js().read_text(encoding='utf-8')}</script>"
    shared = f'<script src="{EVIDENTLY_JS_ROUTE.format(version=evidently_version())}"></script>'
    return page.replace(inline, shared, 1) if inline in page else page


class ReportBuilder:
    """Builds window reports and keeps the newest ``keep`` on disk under ``directory``."""

    def __init__(self, directory: Path, *, keep: int, max_chars: int) -> None:
        self.directory = Path(directory)
        self.keep = keep
        self.max_chars = max_chars
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.built = 0  # reports built by this process (tests read it: cached answers do not build)

    def _path(self, window: WindowRow, findings: int) -> Path:
        return self.directory / f"window-{window.id}-{window.decided_at_ms}-{findings}.html"

    def get(self, window: WindowRow, findings: Sequence[FindingRow], sample: bytes | None,
            bundle: Bundle | None) -> tuple[str, bool]:
        """(HTML, whether it came from the cache)."""
        path = self._path(window, len(findings))
        with self._guard:
            lock = self._locks.setdefault(path.name, threading.Lock())
        with lock:
            if self.keep > 0 and path.is_file():
                os.utime(path)
                return path.read_text(encoding="utf-8"), True
            page = self._build(window, findings, sample, bundle)
            self.built += 1
            if self.keep > 0:
                self.directory.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(page, encoding="utf-8")
                tmp.replace(path)
                self._evict()
        with self._guard:
            self._locks.pop(path.name, None)
        return page, False

    def _evict(self) -> None:
        kept = sorted(self.directory.glob("window-*.html"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in kept[self.keep:]:
            old.unlink(missing_ok=True)

    def _build(self, window: WindowRow, findings: Sequence[FindingRow], sample: bytes | None,
               bundle: Bundle | None) -> str:
        notes, evidently = [], ""
        parsed = None
        if sample is None:
            notes.append("No row sample is kept for this window (or retention removed it): skewwatch's scores only.")
        else:
            try:
                parsed = json.loads(sample)
            except ValueError:
                notes.append("The window's row sample is unreadable: skewwatch's scores only.")
        if bundle is None:
            notes.append(f"No bundle {window.model}/{window.model_version} under the models directory: no training "
                         "sample to compare with.")
        if parsed is not None and bundle is not None:
            rows = max((len(v) for v in parsed.get("columns", {}).values() if isinstance(v, list)), default=0)
            notes.append(f"Evidently compares the window's sample of {rows} rows with the bundle's training sample "
                         f"(features only; the {PREDICTION_SPEC.name} scores are skewwatch's).")
            try:
                evidently = evidently_html(parsed, bundle, max_chars=self.max_chars)
            except Exception as exc:  # noqa: BLE001 - a third-party report failing on a sample: the scores still show
                log.warning("Evidently could not report window %d: %s: %s", window.id, type(exc).__name__, exc)
                notes[-1] = (f"Evidently could not build its report on this window's sample "
                             f"({type(exc).__name__}: {clip(str(exc), 200)}): skewwatch's scores only.")
        section = scores_section(window, findings, max_chars=self.max_chars, notes=notes)
        if evidently and "<body>" in evidently:
            return evidently.replace("<body>", "<body>" + section, 1)
        return (f"<!DOCTYPE html><html lang='en'><head><meta charset='UTF-8'><title>skewwatch window {window.id}"
                f"</title></head><body>{section}</body></html>")
