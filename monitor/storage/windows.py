"""Decided windows: one transaction per window, and the reads the pipeline and the API need.

``decide_window`` writes everything one window changes (the window, its findings, the latest
score of each, its profiles and row sample, the removal of its partials, and whatever the
``react`` hook adds in the same transaction: alert transitions and notifications) or nothing.
A key already decided is left as it is (``None`` is returned): two deciders racing for one
window store it once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Sequence

from sqlalchemy import Boolean, Float, Integer, bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection

from monitor.decide import Finding
from monitor.errors import StaleDecisionError
from monitor.keys import WindowKey
from monitor.storage import tables as t
from monitor.storage.base import insert_rows, key_clause, key_params
from monitor.storage.rows import FindingRow, ScoreRow, WindowCounts, WindowDecision, WindowRow, json_float

__all__ = ["WindowsStore", "DecisionTx", "MAX_MESSAGE"]

#: Longest finding message kept (a category value of megabytes must not be stored twice).
MAX_MESSAGE = 2000
FINDING_COLUMNS = ("window_id", "model", "model_version", "segment", "start_ms", "end_ms", "mode",
                    "reference_window_id", "family", "feature", "test", "statistic", "p_value", "q_value", "effect",
                    "floor", "significant", "verdict", "raw_verdict", "alerting", "message", "min_samples")
_SCORE_COLUMNS = ("model", "model_version", "segment", "mode", "family", "feature", "test", "window_id", "end_ms",
                  "statistic", "q_value", "effect", "floor", "verdict", "alerting")


@dataclass(frozen=True, slots=True)
class DecisionTx:
    """Handed to ``decide_window``'s ``react`` hook: the open transaction and the new window's id."""

    conn: Connection
    window_id: int
    now_ms: int


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 14] + "… [truncated]"


# the statements a decision runs, built once and bound at each execution (key_params(key))
WINDOW_ID_AT = select(t.windows.c.id).where(key_clause(t.windows))  # is the window decided (the partials use it too)
_WINDOW_AT = select(t.windows).where(key_clause(t.windows))
_INSERT_WINDOW = insert(t.windows).returning(t.windows.c.id)
_INSERT_PROFILES = insert(t.window_profiles)
_INSERT_SAMPLE = insert(t.window_samples)
_DELETE_PARTIALS = delete(t.partials).where(key_clause(t.partials))
_PARTIAL_IDS = select(t.partials.c.source_topic, t.partials.c.source_partition, t.partials.c.first_offset,
                      t.partials.c.last_offset).where(key_clause(t.partials))
_ADD_LATE = update(t.windows).where(key_clause(t.windows)).values(
    late_records=t.windows.c.late_records + bindparam("added", type_=Integer))
_HAS_PROFILES = select(t.window_profiles.c.window_id).where(t.window_profiles.c.window_id == bindparam("window_id"))
_RECENT = (select(t.windows.c.id, t.windows.c.decided_at_ms)
           .where(t.windows.c.model == bindparam("k_model"), t.windows.c.model_version == bindparam("k_version"),
                  t.windows.c.segment == bindparam("k_segment"), t.windows.c.start_ms < bindparam("k_start"),
                  t.windows.c.status == "decided")
           .order_by(t.windows.c.start_ms.desc()).limit(bindparam("n", type_=Integer)))


def _window_row(r: Any) -> WindowRow:
    return WindowRow(
        id=r.id, model=r.model, model_version=r.model_version, segment=r.segment, start_ms=r.start_ms,
        end_ms=r.end_ms, status=r.status, error=r.error, rows=r.rows, records=r.records,
        invalid_instances=r.invalid_instances, late_records=r.late_records, duplicate_records=r.duplicate_records,
        partials=r.partials, findings=r.findings, alerting=r.alerting, decided_at_ms=r.decided_at_ms,
    )


def _finding_row(r: Any) -> FindingRow:
    return FindingRow(
        id=r.id, window_id=r.window_id, model=r.model, model_version=r.model_version, segment=r.segment,
        start_ms=r.start_ms, end_ms=r.end_ms, mode=r.mode, reference_window_id=r.reference_window_id,
        family=r.family, feature=r.feature, test=r.test, statistic=json_float(r.statistic),
        p_value=json_float(r.p_value), q_value=json_float(r.q_value), effect=json_float(r.effect),
        floor=json_float(r.floor), significant=bool(r.significant), verdict=r.verdict, raw_verdict=r.raw_verdict,
        alerting=bool(r.alerting), message=r.message, min_samples=r.min_samples,
    )


def _positional(table: Any, row_type: type, fallback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A row converter by position (five times faster than by attribute, which dominated a page of 500
    findings), used only while the table's columns are the row type's fields in the same order."""
    columns = [c.name for c in table.c]
    if columns != [f.name for f in fields(row_type)]:
        return fallback
    floats = [i for i, c in enumerate(table.c) if isinstance(c.type, Float)]
    bools = [i for i, c in enumerate(table.c) if isinstance(c.type, Boolean)]

    def convert(r: Any) -> Any:
        values = list(r)
        for i in floats:
            v = values[i]
            values[i] = None if v is None or v != v or v in (_INF, -_INF) else float(v)
        for i in bools:
            values[i] = bool(values[i])
        return row_type(*values)

    return convert


_INF = float("inf")
_finding_fast = _positional(t.findings, FindingRow, _finding_row)


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _history_finding(mode: str, model: str, feature: str, test: str, statistic: float | None, p: float | None,
                     q: float | None, effect: float | None, floor: float | None, significant: Any, verdict: str,
                     message: str, min_samples: int | None) -> Finding:
    """A findings row's values (as stored) as the finding the decision history uses: its verdict before
    the persistence rule; by position, what ``FindingRow.to_finding(raw=True)`` gives, five times faster."""
    statistic, effect, floor = json_float(statistic), json_float(effect), json_float(floor)
    return Finding(model, feature, test, mode, math.nan if statistic is None else statistic, json_float(p),
                   json_float(q), math.nan if effect is None else effect, math.nan if floor is None else floor,
                   bool(significant), verdict, message, min_samples if verdict == "insufficient_data" else None)


class WindowsStore:
    """Mixin of :class:`monitor.storage.Store`: decided windows and their findings."""

    # -- writing ---------------------------------------------------------------------------

    def decide_window(self, d: WindowDecision, react: Callable[[DecisionTx], None] | None = None) -> int | None:
        """Store one decided window in one transaction; ``None`` if the key was already decided."""
        key = d.key
        with self.write("saving a decided window") as conn:  # type: ignore[attr-defined]
            if conn.execute(WINDOW_ID_AT, key_params(key)).first() is not None:
                return None
            _check_partials(conn, key, d.partials)
            now = self.now()  # type: ignore[attr-defined]
            window_id = self._insert_window(conn, key, d.end_ms, d.counts, status="decided", error=None, now=now,
                                            n_findings=len(d.findings),
                                            n_alerting=sum(1 for f in d.findings if f.finding.alerting))
            if d.findings:
                rows = [self._finding_values(window_id, key, d.end_ms, f) for f in d.findings]
                insert_rows(conn, t.findings, FINDING_COLUMNS, rows)
                head = (key.model, key.model_version, key.segment)
                insert_rows(conn, t.latest_scores, _SCORE_COLUMNS, [
                    (*head, r[6], r[8], r[9], r[10], window_id, d.end_ms, r[11], r[13], r[14], r[15], r[17], r[19])
                    for r in rows
                ], conflict=_SCORE_COLUMNS[:7], update=_SCORE_COLUMNS[7:], newer="end_ms")
            conn.execute(_INSERT_PROFILES, {"window_id": window_id, "features": d.features, "outputs": d.outputs})
            if d.sample is not None:
                conn.execute(_INSERT_SAMPLE, {"window_id": window_id, "rows": d.sample_rows, "sample": d.sample})
            conn.execute(_DELETE_PARTIALS, key_params(key))
            if react is not None:
                react(DecisionTx(conn=conn, window_id=window_id, now_ms=now))
        return window_id

    def record_failed_window(self, key: WindowKey, end_ms: int, counts: WindowCounts, error: str, *,
                             partials: frozenset[tuple[str, int, int, int]] | None = None) -> int | None:
        """Keep a window that could not be processed, with its error (it is skipped, not retried)."""
        with self.write("saving a failed window") as conn:  # type: ignore[attr-defined]
            if conn.execute(WINDOW_ID_AT, key_params(key)).first() is not None:
                return None
            _check_partials(conn, key, partials)
            window_id = self._insert_window(conn, key, end_ms, counts, status="failed", error=_clip(error),
                                            now=self.now(), n_findings=0, n_alerting=0)  # type: ignore[attr-defined]
            conn.execute(_DELETE_PARTIALS, key_params(key))
        return window_id

    def add_late_records(self, key: WindowKey, records: int) -> bool:
        """Count records that reached a window after it was decided; False when it is not stored."""
        with self.write("counting late records") as conn:  # type: ignore[attr-defined]
            done = conn.execute(_ADD_LATE, key_params(key, added=records))
        return bool(done.rowcount)

    @staticmethod
    def _insert_window(conn: Connection, key: WindowKey, end_ms: int, counts: WindowCounts, *, status: str,
                       error: str | None, now: int, n_findings: int, n_alerting: int) -> int:
        return int(conn.execute(_INSERT_WINDOW, {
            "model": key.model, "model_version": key.model_version, "segment": key.segment, "start_ms": key.start_ms,
            "end_ms": end_ms, "status": status, "error": error, "rows": counts.rows, "records": counts.records,
            "invalid_instances": counts.invalid_instances, "late_records": counts.late_records,
            "duplicate_records": counts.duplicate_records, "partials": counts.partials, "findings": n_findings,
            "alerting": n_alerting, "decided_at_ms": now,
        }).scalar_one())

    @staticmethod
    def _finding_values(window_id: int, key: WindowKey, end_ms: int, f: Any) -> tuple:
        """One findings row, in :data:`FINDING_COLUMNS` order."""
        finding: Finding = f.finding
        return (
            window_id, key.model, key.model_version, key.segment, key.start_ms, end_ms, finding.mode,
            f.reference_window_id, f.family, finding.feature, finding.test, json_float(finding.statistic),
            _float(finding.p_value), _float(finding.q_value), json_float(finding.effect), json_float(finding.floor),
            bool(finding.significant), finding.verdict, f.raw_verdict or finding.verdict, bool(finding.alerting),
            _clip(finding.message), getattr(finding, "min_samples", None),
        )

    # -- reading ---------------------------------------------------------------------------

    def window(self, window_id: int) -> WindowRow | None:
        with self.read() as conn:  # type: ignore[attr-defined]
            r = conn.execute(select(t.windows).where(t.windows.c.id == window_id)).first()
        return None if r is None else _window_row(r)

    def window_at(self, key: WindowKey) -> WindowRow | None:
        with self.read() as conn:  # type: ignore[attr-defined]
            r = conn.execute(_WINDOW_AT, key_params(key)).first()
        return None if r is None else _window_row(r)

    def is_decided(self, key: WindowKey) -> bool:
        return self.window_at(key) is not None

    def previous_window(self, key: WindowKey) -> WindowRow | None:
        """The newest decided window of the same model version and segment that starts before ``key``."""
        c = t.windows.c
        with self.read() as conn:  # type: ignore[attr-defined]
            r = conn.execute(
                select(t.windows).where(c.model == key.model, c.model_version == key.model_version,
                                        c.segment == key.segment, c.start_ms < key.start_ms, c.status == "decided")
                .order_by(c.start_ms.desc()).limit(1)
            ).first()
        return None if r is None else _window_row(r)

    def list_windows(self, *, model: str | None = None, model_version: str | None = None,
                     segment: str | None = None, since_ms: int | None = None, until_ms: int | None = None,
                     before: tuple[int, int] | None = None, limit: int = 100) -> list[WindowRow]:
        """Windows newest first; ``before`` = (start_ms, id) of the last row of the previous page."""
        c = t.windows.c
        where = []
        for column, value in ((c.model, model), (c.model_version, model_version), (c.segment, segment)):
            if value is not None:
                where.append(column == value)
        if since_ms is not None:
            where.append(c.start_ms >= since_ms)
        if until_ms is not None:
            where.append(c.start_ms < until_ms)
        if before is not None:
            where.append((c.start_ms < before[0]) | ((c.start_ms == before[0]) & (c.id < before[1])))
        with self.read() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(select(t.windows).where(*where).order_by(c.start_ms.desc(), c.id.desc()).limit(limit))
            return [_window_row(r) for r in rows]

    def list_findings(self, *, window_id: int | None = None, model: str | None = None,
                      model_version: str | None = None, segment: str | None = None, feature: str | None = None,
                      test: str | None = None, mode: str | None = None, verdict: str | None = None,
                      alerting: bool | None = None, since_ms: int | None = None, until_ms: int | None = None,
                      after_id: int | None = None, newest_first: bool = True, limit: int = 1000) -> list[FindingRow]:
        """Findings filtered by any of the arguments; by window start (newest first), then feature and test.

        Paging: ``after_id`` is the last id of the previous page; ids grow with each decided window, so
        newest-first pages continue with smaller ids.
        """
        c = t.findings.c
        where = []
        for column, value in ((c.window_id, window_id), (c.model, model), (c.model_version, model_version),
                              (c.segment, segment), (c.feature, feature), (c.test, test), (c.mode, mode),
                              (c.verdict, verdict), (c.alerting, alerting)):
            if value is not None:
                where.append(column == value)
        if since_ms is not None:
            where.append(c.start_ms >= since_ms)
        if until_ms is not None:
            where.append(c.start_ms < until_ms)
        if after_id is not None:
            where.append(c.id < after_id if newest_first else c.id > after_id)
        order = (c.id.desc(),) if newest_first else (c.id.asc(),)
        with self.read() as conn:  # type: ignore[attr-defined]
            return [_finding_row(r) for r in conn.execute(select(t.findings).where(*where).order_by(*order).limit(limit))]

    def recent_findings(self, key: WindowKey, *, mode: str, family: str, windows: int) -> list[list[Finding]]:
        """The findings of the last ``windows`` decided windows before ``key`` (same model version and
        segment), in one mode and family, oldest window first, with their verdicts before the
        persistence rule: the history persistence and trends read."""
        ids = [i for i, _decided in self.recent_windows(key, windows)]
        found = self.findings_by_window(ids)
        return [found[i].get((mode, family), []) for i in ids]

    def recent_windows(self, key: WindowKey, windows: int) -> list[tuple[int, int]]:
        """``(id, decided_at_ms)`` of the last ``windows`` decided windows before ``key`` (same model
        version and segment), oldest first. The pair names a decision even where SQLite reuses the id
        of a deleted newest row."""
        if windows <= 0:
            return []
        with self.read() as conn:  # type: ignore[attr-defined]
            found = [(i, decided) for i, decided in conn.execute(_RECENT, key_params(key, n=windows))]
        found.reverse()
        return found

    def findings_by_window(self, ids: Sequence[int]) -> dict[int, dict[tuple[str, str], list[Finding]]]:
        """Per window id, its findings by (mode, family) in the order they were stored, with their
        verdicts before the persistence rule. A decided window's findings never change, so a reader
        may keep them by id."""
        out: dict[int, dict[tuple[str, str], list[Finding]]] = {i: {} for i in ids}
        if not ids:
            return out
        c = t.findings.c
        query = select(c.window_id, c.mode, c.family, c.model, c.feature, c.test, c.statistic, c.p_value, c.q_value,
                       c.effect, c.floor, c.significant, c.raw_verdict, c.message, c.min_samples)
        with self.read() as conn:  # type: ignore[attr-defined]
            for wid, mode, family, *rest in conn.execute(query.where(c.window_id.in_(list(ids)))
                                                         .order_by(c.window_id, c.id)):
                out[wid].setdefault((mode, family), []).append(_history_finding(mode, *rest))
        return out

    @staticmethod
    def history_of(key: WindowKey, findings: Sequence[Any]) -> dict[tuple[str, str], list[Finding]]:
        """What :meth:`findings_by_window` will answer for the window just stored with these findings
        (``WindowDecision.findings``), made from the rows written rather than read back."""
        out: dict[tuple[str, str], list[Finding]] = {}
        for f in findings:
            r = WindowsStore._finding_values(0, key, 0, f)  # FINDING_COLUMNS order
            out.setdefault((r[6], r[8]), []).append(_history_finding(
                r[6], r[1], r[9], r[10], r[11], r[12], r[13], r[14], r[15], r[16], r[18], r[20], r[21]))
        return out

    def latest_scores(self, *, model: str | None = None) -> list[ScoreRow]:
        c = t.latest_scores.c
        where = [] if model is None else [c.model == model]
        with self.read() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(select(t.latest_scores).where(*where)
                                .order_by(c.model, c.model_version, c.segment, c.mode, c.family, c.feature, c.test))
            return [ScoreRow(model=r.model, model_version=r.model_version, segment=r.segment, mode=r.mode,
                             family=r.family, feature=r.feature, test=r.test, window_id=r.window_id, end_ms=r.end_ms,
                             statistic=json_float(r.statistic), q_value=json_float(r.q_value),
                             effect=json_float(r.effect), floor=json_float(r.floor), verdict=r.verdict,
                             alerting=bool(r.alerting)) for r in rows]

    def load_profiles(self, window_id: int) -> tuple[bytes, bytes] | None:
        """The ``(features, outputs)`` profile bytes of a decided window."""
        c = t.window_profiles.c
        with self.read() as conn:  # type: ignore[attr-defined]
            r = conn.execute(select(c.features, c.outputs).where(c.window_id == window_id)).first()
        return None if r is None else (bytes(r.features), bytes(r.outputs))

    def has_profiles(self, window_id: int) -> bool:
        """Whether a decided window still has its profiles (retention may have removed them)."""
        with self.read() as conn:  # type: ignore[attr-defined]
            return conn.execute(_HAS_PROFILES, {"window_id": window_id}).first() is not None

    def load_sample(self, window_id: int) -> bytes | None:
        c = t.window_samples.c
        with self.read() as conn:  # type: ignore[attr-defined]
            r = conn.execute(select(c.sample).where(c.window_id == window_id)).first()
        return None if r is None else bytes(r.sample)

    def models(self) -> list[tuple[str, str]]:
        """Every (model, version) with a stored window."""
        c = t.windows.c
        with self.read() as conn:  # type: ignore[attr-defined]
            return [(r.model, r.model_version) for r in
                    conn.execute(select(c.model, c.model_version).distinct().order_by(c.model, c.model_version))]

    def counts_of(self, ids: Sequence[int]) -> dict[int, WindowCounts]:
        c = t.windows.c
        with self.read() as conn:  # type: ignore[attr-defined]
            return {r.id: WindowCounts(r.rows, r.records, r.invalid_instances, r.late_records, r.duplicate_records,
                                       r.partials) for r in conn.execute(select(t.windows).where(c.id.in_(list(ids))))}


def _check_partials(conn: Connection, key: WindowKey, used: frozenset[tuple[str, int, int, int]] | None) -> None:
    """Inside the deciding write transaction (writers are serialised): the stored partials of ``key`` are
    still those decided from, else :class:`StaleDecisionError` (rolled back; the partials stay)."""
    if used is None:
        return
    stored = set(map(tuple, conn.execute(_PARTIAL_IDS, key_params(key))))
    if stored != used:
        raise StaleDecisionError(f"window {key.model} {key.model_version} {key.segment!r} {key.start_ms}: "
                                 f"{len(stored)} partials stored, {len(used)} decided from")
