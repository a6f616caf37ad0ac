"""The shapes of the monitor API's answers and bodies (pydantic models, so the OpenAPI spec states them).

Instants are given twice: epoch milliseconds (``*_ms``, exact, for programs) and RFC 3339 text
(``start``, ``end``..., fixed width, UTC). Floats that are not finite are ``null``. Text values
(messages, categories, errors) are cut to ``api_max_value_chars`` with a marker
(:mod:`monitor.api.bounded`).
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from monitor.api.bounded import clip
from monitor.decide import Mode, Verdict  # the core names them once
from monitor.storage.rows import FindingRow, ScoreRow, WindowRow
from monitor.timeutil import format_instant

__all__ = [
    "Problem",
    "WindowOut",
    "WindowPage",
    "FindingOut",
    "FindingPage",
    "ScoreOut",
    "ScoresOut",
    "HistoryPoint",
    "HistorySeries",
    "HistoryOut",
    "window_out",
    "finding_out",
    "score_out",
    "answer",
    "ratio",
]

Family = Literal["features", "output"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(_Out):
    """An error: ``detail`` says what is wrong (a list of located problems for invalid input)."""

    detail: str | list[dict[str, Any]]


def ratio(effect: float | None, floor: float | None) -> float | None:
    """Effect relative to its practical floor (>= 1 means the floor is reached); None when undefined."""
    if effect is None or floor is None or floor <= 0:
        return None
    return effect / floor


class WindowOut(_Out):
    id: int
    model: str
    model_version: str
    segment: str = Field(description='"" is all traffic')
    start_ms: int
    end_ms: int
    start: str
    end: str
    status: Literal["decided", "failed"]
    error: str | None
    rows: int
    records: int
    invalid_instances: int
    late_records: int
    duplicate_records: int
    partials: int
    findings: int
    alerting: int
    decided_at_ms: int
    decided_at: str
    report_url: str


def window_out(w: WindowRow, *, max_chars: int) -> dict[str, Any]:
    """A window as :class:`WindowOut` describes it (a plain dict: answers are encoded by orjson)."""
    return {
        "id": w.id, "model": w.model, "model_version": w.model_version, "segment": w.segment, "start_ms": w.start_ms,
        "end_ms": w.end_ms, "start": format_instant(w.start_ms), "end": format_instant(w.end_ms), "status": w.status,
        "error": clip(w.error, max_chars), "rows": w.rows, "records": w.records,
        "invalid_instances": w.invalid_instances, "late_records": w.late_records,
        "duplicate_records": w.duplicate_records, "partials": w.partials, "findings": w.findings,
        "alerting": w.alerting, "decided_at_ms": w.decided_at_ms, "decided_at": format_instant(w.decided_at_ms),
        "report_url": f"/reports/{w.id}",
    }


class WindowPage(_Out):
    windows: list[WindowOut]
    next: str | None = Field(description="Cursor of the next page (pass as ?cursor=); null at the end.")


class FindingOut(_Out):
    id: int
    window_id: int
    model: str
    model_version: str
    segment: str
    start_ms: int
    end_ms: int
    start: str
    end: str
    mode: Mode
    reference_window_id: int | None
    family: Family
    feature: str
    test: str
    statistic: float | None
    p_value: float | None
    q_value: float | None
    effect: float | None
    floor: float | None
    effect_over_floor: float | None
    significant: bool
    verdict: Verdict
    raw_verdict: Verdict | None = Field(description="The verdict before the persistence rule.")
    alerting: bool
    message: str


def finding_out(f: FindingRow, *, max_chars: int) -> dict[str, Any]:
    """A finding as :class:`FindingOut` describes it (a plain dict)."""
    return {
        "id": f.id, "window_id": f.window_id, "model": f.model, "model_version": f.model_version,
        "segment": f.segment, "start_ms": f.start_ms, "end_ms": f.end_ms, "start": format_instant(f.start_ms),
        "end": format_instant(f.end_ms), "mode": f.mode, "reference_window_id": f.reference_window_id,
        "family": f.family, "feature": f.feature, "test": f.test, "statistic": f.statistic, "p_value": f.p_value,
        "q_value": f.q_value, "effect": f.effect, "floor": f.floor, "effect_over_floor": ratio(f.effect, f.floor),
        "significant": f.significant, "verdict": f.verdict, "raw_verdict": f.raw_verdict, "alerting": f.alerting,
        "message": clip(f.message, max_chars) or "",
    }


class FindingPage(_Out):
    findings: list[FindingOut]
    next: str | None = Field(description="Cursor of the next page; a short or empty page with a cursor means "
                                          "keep going (a page examines a bounded stretch of the history).")


class ScoreOut(_Out):
    model: str
    model_version: str
    segment: str
    mode: Mode
    family: Family
    feature: str
    test: str
    window_id: int
    end_ms: int
    end: str
    statistic: float | None
    q_value: float | None
    effect: float | None
    floor: float | None
    effect_over_floor: float | None
    verdict: Verdict
    alerting: bool


def score_out(s: ScoreRow) -> dict[str, Any]:
    """A latest score as :class:`ScoreOut` describes it (a plain dict)."""
    return {"model": s.model, "model_version": s.model_version, "segment": s.segment, "mode": s.mode,
            "family": s.family, "feature": s.feature, "test": s.test, "window_id": s.window_id, "end_ms": s.end_ms,
            "end": format_instant(s.end_ms), "statistic": s.statistic, "q_value": s.q_value, "effect": s.effect,
            "floor": s.floor, "effect_over_floor": ratio(s.effect, s.floor), "verdict": s.verdict,
            "alerting": s.alerting}


def answer(content: Any, status_code: int = 200) -> Response:
    """JSON encoded by orjson straight from plain values: the big list answers skip pydantic (their
    shapes are still the documented models, and the schemathesis run checks every answer against them)."""
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")


class ScoresOut(_Out):
    scores: list[ScoreOut]


class HistoryPoint(_Out):
    window_id: int
    start_ms: int
    end_ms: int
    statistic: float | None
    q_value: float | None
    effect: float | None
    floor: float | None
    verdict: Verdict
    alerting: bool


class HistorySeries(_Out):
    model_version: str
    segment: str
    mode: Mode
    family: Family
    test: str
    points: list[HistoryPoint] = Field(description="Oldest first.")


class HistoryOut(_Out):
    model: str
    feature: str
    series: list[HistorySeries]
    next: str | None = Field(description="Cursor of older points; null when the retained history is exhausted.")
