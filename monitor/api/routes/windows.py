"""Windows, findings, latest scores, per-feature score history, and one feature's distributions."""

from __future__ import annotations

from typing import Literal

from fastapi import Depends, FastAPI, Path, Query
from fastapi.responses import Response

from monitor.api.context import Context
from monitor.api.distributions import (
    CategoricalDistribution,
    NumericDistribution,
    categorical_distribution,
    numeric_distribution,
)
from monitor.api.paging import MAX_INT, decode_cursor, encode_cursor
from monitor.api.routes.common import (
    NAME_MAX,
    READ,
    Instant,
    WindowId,
    cursor_q,
    name_q,
    not_found,
    only,
    since_q,
    until_q,
)
from monitor.api.schemas import (
    FindingPage,
    HistoryOut,
    Mode,
    Problem,
    Verdict,
    ScoresOut,
    WindowOut,
    _Out,
    answer,
    finding_out,
    score_out,
    window_out,
)
from monitor.api.security import Guards
from monitor.bundle import PREDICTION_SPEC
from monitor.stats import CategoricalStats, NumericStats, Profile
from monitor.storage.admin import FindingFilter, WindowFilter

__all__ = ["add_window_routes"]

_NOT_FOUND = {404: {"model": Problem, "description": "No such window (or feature)."}}


class WindowDetail(_Out):
    window: WindowOut
    reference_window_ids: list[int]


class WindowPageOut(_Out):
    windows: list[WindowOut]
    next: str | None


class DistributionOut(_Out):
    window_id: int
    feature: str
    family: Literal["features", "output"]
    reference: Literal["baseline", "window"]
    reference_window_id: int | None
    distribution: NumericDistribution | CategoricalDistribution


def add_window_routes(app: FastAPI, ctx: Context, guards: Guards) -> None:
    store = ctx.store
    read = [Depends(guards.read)]
    chars = ctx.max_chars

    @app.get("/windows", response_model=WindowPageOut, responses=READ, tags=["windows"],
             dependencies=[*read, Depends(only("model", "model_version", "segment", "mode", "status", "since", "until",
                                               "limit", "cursor"))])
    def windows(
        model: str | None = name_q("Only this model."),
        model_version: str | None = name_q("Only this model version."),
        segment: str | None = Query(None, max_length=512, description='Only this segment ("" is all traffic).'),
        mode: Mode | None = Query(None, description="Only windows with findings in this mode."),
        status: Literal["decided", "failed"] | None = Query(None),
        since: Instant | None = since_q(),
        until: Instant | None = until_q(),
        limit: int = Query(100, ge=1, le=1000, description="At most this many, newest first."),
        cursor: str | None = cursor_q(),
    ) -> Response:
        query = dict(model=model, model_version=model_version, segment=segment, mode=mode, status=status,
                     since=since, until=until, limit=limit)
        after = decode_cursor(cursor, route="windows", query=query, size=2)
        page = store.page_windows(WindowFilter(model=model, model_version=model_version, segment=segment,
                                               status=status, mode=mode, since_ms=since, until_ms=until),
                                  after=after, limit=limit)  # type: ignore[arg-type]
        return answer({"windows": [window_out(w, max_chars=chars) for w in page.rows],
                       "next": encode_cursor(page.next, route="windows", query=query)})

    @app.get("/windows/{window_id}", response_model=WindowDetail, responses={**READ, **_NOT_FOUND},
             tags=["windows"], dependencies=[*read, Depends(only())])
    def window(window_id: WindowId) -> WindowDetail:
        w = store.window(window_id)
        if w is None:
            raise not_found(f"no window {window_id}")
        return WindowDetail(window=window_out(w, max_chars=chars), reference_window_ids=store.reference_windows(w.id))

    @app.get("/findings", response_model=FindingPage, responses=READ, tags=["findings"],
             dependencies=[*read, Depends(only("window_id", "model", "model_version", "segment", "family", "feature",
                                               "test", "mode", "verdict", "alerting", "since", "until", "limit",
                                               "cursor"))])
    def findings(
        window_id: int | None = Query(None, ge=1, le=MAX_INT),
        model: str | None = name_q("Only this model."),
        model_version: str | None = name_q("Only this model version."),
        segment: str | None = Query(None, max_length=512),
        family: Literal["features", "output"] | None = Query(None),
        feature: str | None = name_q("Only this feature."),
        test: str | None = name_q("Only this test (ks, psi, ...)."),
        mode: Mode | None = Query(None),
        verdict: Verdict | None = Query(None),
        alerting: bool | None = Query(None),
        since: Instant | None = since_q(),
        until: Instant | None = until_q(),
        limit: int = Query(200, ge=1, le=2000),
        cursor: str | None = cursor_q(),
    ) -> Response:
        f = FindingFilter(window_id=window_id, model=model, model_version=model_version, segment=segment,
                          family=family, feature=feature, test=test, mode=mode, verdict=verdict, alerting=alerting,
                          since_ms=since, until_ms=until)  # type: ignore[arg-type]
        query = dict(window_id=window_id, model=model, model_version=model_version, segment=segment, family=family,
                     feature=feature, test=test, mode=mode, verdict=verdict, alerting=alerting, since=since,
                     until=until, limit=limit)
        size = 2 if f.order == "feature" else 1
        page = store.page_findings(f, after=decode_cursor(cursor, route="findings", query=query, size=size),
                                   limit=limit)
        return answer({"findings": [finding_out(r, max_chars=chars) for r in page.rows],
                       "next": encode_cursor(page.next, route="findings", query=query)})

    @app.get("/scores", response_model=ScoresOut, responses=READ, tags=["findings"],
             dependencies=[*read, Depends(only("model", "model_version", "segment", "mode"))])
    def scores(
        model: str | None = name_q("Only this model."),
        model_version: str | None = name_q("Only this model version."),
        segment: str | None = Query(None, max_length=512),
        mode: Mode | None = Query(None),
    ) -> Response:
        """The latest value of every score (one row per model, version, segment, mode, family, feature, test)."""
        rows = [s for s in store.scores(model=model)
                if (model_version is None or s.model_version == model_version)
                and (segment is None or s.segment == segment) and (mode is None or s.mode == mode)]
        return answer({"scores": [score_out(s) for s in rows]})

    @app.get("/models/{model}/features/{feature}/history", response_model=HistoryOut, responses=READ,
             tags=["findings"],
             dependencies=[*read, Depends(only("model_version", "segment", "mode", "test", "since", "until", "limit",
                                               "cursor"))])
    def history(
        model: str = Path(min_length=1, max_length=NAME_MAX),
        feature: str = Path(min_length=1, max_length=NAME_MAX),
        model_version: str | None = name_q("Only this model version."),
        segment: str | None = Query(None, max_length=512),
        mode: Mode | None = Query(None),
        test: str | None = name_q("Only this test."),
        since: Instant | None = since_q(),
        until: Instant | None = until_q(),
        limit: int = Query(500, ge=1, le=5000, description="At most this many points (all series together); "
                                                           "about 50 us each to read and send."),
        cursor: str | None = cursor_q(),
    ) -> Response:
        """Every score of one feature over the retained windows, one series per (version, segment, mode,
        family, test), oldest first within a page; pages go back in time."""
        query = dict(model=model, feature=feature, model_version=model_version, segment=segment, mode=mode, test=test,
                     since=since, until=until, limit=limit)
        page = store.feature_history(model, feature, model_version=model_version, segment=segment, mode=mode,
                                     test=test, since_ms=since, until_ms=until,  # type: ignore[arg-type]
                                     after=decode_cursor(cursor, route="history", query=query, size=2),  # type: ignore[arg-type]
                                     limit=limit)
        series: dict[tuple[str, str, str, str, str], list[dict]] = {}
        for r in reversed(page.rows):
            series.setdefault((r.model_version, r.segment, r.mode, r.family, r.test), []).append({
                "window_id": r.window_id, "start_ms": r.start_ms, "end_ms": r.end_ms, "statistic": r.statistic, "q_value": r.q_value, "effect": r.effect, "floor": r.floor,
                "verdict": r.verdict, "alerting": r.alerting})
        return answer({"model": model, "feature": feature,
                       "series": [{"model_version": k[0], "segment": k[1], "mode": k[2], "family": k[3], "test": k[4],
                                   "points": v} for k, v in sorted(series.items())],
                       "next": encode_cursor(page.next, route="history", query=query)})

    @app.get("/windows/{window_id}/distribution", response_model=DistributionOut,
             responses={**READ, **_NOT_FOUND,
                        409: {"model": Problem, "description": "The window's statistics are no longer kept."}},
             tags=["windows"], dependencies=[*read, Depends(only("feature", "reference"))])
    def distribution(
        window_id: WindowId,
        feature: str = Query(min_length=1, max_length=NAME_MAX, description="A feature, or `prediction`."),
        reference: Literal["baseline", "window"] = Query(
            "baseline", description="Compare with the bundle's training baseline, or with the window this "
                                    "window's drift findings were compared with (else the previous window)."),
    ) -> DistributionOut:
        """Baseline (or reference window) vs this window for one feature: histogram, CDF or category shares."""
        w = store.window(window_id)
        if w is None:
            raise not_found(f"no window {window_id}")
        kept = store.load_profiles(window_id)
        if kept is None:
            raise _gone(window_id)
        family: Literal["features", "output"] = "output" if feature == PREDICTION_SPEC.name else "features"
        current = Profile.from_bytes(kept[1] if family == "output" else kept[0])
        ref_window_id: int | None = None
        if reference == "baseline":
            pair = ctx.bundles.profiles(w.model, w.model_version)
            if pair is None:
                raise not_found(f"no bundle for {w.model} version {w.model_version} under the models directory")
            ref_profile = pair[1] if family == "output" else pair[0]
        else:
            refs = store.reference_windows(window_id)
            ref_row = store.window(refs[-1]) if refs else store.previous_window(w.key)
            if ref_row is None:
                raise not_found(f"window {window_id} has no reference window")
            ref_kept = store.load_profiles(ref_row.id)
            if ref_kept is None:
                raise _gone(ref_row.id)
            ref_window_id = ref_row.id
            ref_profile = Profile.from_bytes(ref_kept[1] if family == "output" else ref_kept[0])
        if feature not in current.features or feature not in ref_profile.features:
            raise not_found(f"feature {feature[:NAME_MAX]!r} is not in both profiles")
        a, b = ref_profile.features[feature], current.features[feature]
        if isinstance(a, NumericStats) and isinstance(b, NumericStats):
            dist: NumericDistribution | CategoricalDistribution = numeric_distribution(a, b)
        elif isinstance(a, CategoricalStats) and isinstance(b, CategoricalStats):
            dist = categorical_distribution(a, b, max_chars=chars)
        else:
            raise not_found(f"feature {feature!r} has different kinds in the two profiles")
        return DistributionOut(window_id=window_id, feature=feature, family=family, reference=reference,
                               reference_window_id=ref_window_id, distribution=dist)


def _gone(window_id: int):  # noqa: ANN202
    from fastapi import HTTPException

    return HTTPException(status_code=409, detail=f"the statistics of window {window_id} are no longer kept "
                                                 "(retention_profiles_days)")
