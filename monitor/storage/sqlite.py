"""``Store``: windows, findings and alert state in one SQLite file.

The collector process writes, the monitor API process reads: the database runs in WAL mode,
so readers never wait for the writer and the writer never waits for readers. Each
:class:`Store` owns one connection guarded by a lock, so a threaded server can share it.

Saving a window is one transaction and idempotent on ``(model, model_version, mode,
window_start)``: saving the same window again (a collector replaying after a crash) replaces
its counts and findings and keeps its id, it never duplicates them. Input is validated before
anything is written, so a bad finding rejects the whole window with an error naming the field
and leaves the stored data as it was.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Sequence

from monitor.errors import StatisticsError
from monitor.decide import Finding
from monitor.storage.rows import (
    ALERT_STATES,
    MODES,
    VERDICTS,
    AlertLike,
    AlertRow,
    FindingRow,
    ScoreRow,
    WindowRow,
    WindowSummaryRow,
    iso_utc,
    json_float,
)
from monitor.storage.checks import check_choice, check_count, check_limit, check_text, finding_values
from monitor.storage.schema import migrate, schema_version

__all__ = ["Store"]

log = logging.getLogger(__name__)

_FINDING_COLUMNS = (
    "window_id, model, feature, test, mode, statistic, p_value, q_value, effect, floor, "
    "significant, verdict, alerting, message"
)


class Store:
    """SQLite store of windows, findings and alerts; see the module docstring."""

    def __init__(
        self,
        path: str | Path,
        *,
        timeout: float = 10.0,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        try:
            self._conn.row_factory = sqlite3.Row
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal" and self.path != ":memory:":
                log.warning("%s: journal_mode is %s, not wal; readers may wait for the writer", self.path, mode)
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000):d}")
            migrate(self._conn)
        except BaseException:
            self._conn.close()
            self._conn = None
            raise

    # -- plumbing ---------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StatisticsError(f"store {self.path} is closed")
        return self._conn

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db().execute(sql, params).fetchall()

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.execute("PRAGMA optimize")
                finally:
                    self._conn.close()
                    self._conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._conn is None

    def ping(self) -> int:
        """Touch the database; return its schema version (for health checks)."""
        with self._lock:
            return schema_version(self._db())

    # -- windows and findings ---------------------------------------------------------------

    def save_window(
        self,
        *,
        model: str,
        model_version: str,
        mode: str,
        window_start: datetime,
        window_end: datetime,
        rows: int,
        late_records: int,
        invalid_records: int,
        findings: Sequence[Finding],
    ) -> int:
        """Save one window and its findings in one transaction; return the window id.

        Re-saving the same ``(model, model_version, mode, window_start)`` replaces the earlier
        save (same id, findings replaced), so replays never duplicate.
        """
        model = check_text(model, "model")
        model_version = check_text(model_version, "model_version")
        mode = check_choice(mode, MODES, "mode")
        start, end = iso_utc(window_start, field="window_start"), iso_utc(window_end, field="window_end")
        if window_end <= window_start:
            raise StatisticsError(f"window_end: {end} is not after window_start {start}")
        counts = (check_count(rows, "rows"), check_count(late_records, "late_records"), check_count(invalid_records, "invalid_records"))
        values = [finding_values(f, i, model, mode) for i, f in enumerate(findings)]
        seen: dict[tuple[str, str], int] = {}
        for i, v in enumerate(values):
            if (v[0], v[1]) in seen:
                raise StatisticsError(f"findings[{i}]: duplicate of findings[{seen[v[0], v[1]]}] ({v[0]!r}, {v[1]!r})")
            seen[v[0], v[1]] = i
        saved_at = iso_utc(self._clock(), field="clock")
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                window_id = db.execute(
                    "INSERT INTO windows (model, model_version, mode, window_start, window_end, rows, late_records,"
                    " invalid_records, saved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (model, model_version, mode, window_start) DO UPDATE SET"
                    " window_end = excluded.window_end, rows = excluded.rows, late_records = excluded.late_records,"
                    " invalid_records = excluded.invalid_records, saved_at = excluded.saved_at"
                    " RETURNING id",
                    (model, model_version, mode, start, end, *counts, saved_at),
                ).fetchone()[0]
                db.execute("DELETE FROM findings WHERE window_id = ?", (window_id,))
                db.executemany(
                    f"INSERT INTO findings ({_FINDING_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(window_id, model, v[0], v[1], mode, *v[2:]) for v in values],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return int(window_id)

    def save_profiles(self, *, model: str, model_version: str, window_start: datetime, features: bytes,
                      predictions: bytes) -> None:
        """Keep a window's statistics (``Profile.to_bytes()``) for drill-down; re-saving replaces."""
        start = iso_utc(window_start, field="window_start")
        with self._lock:
            self._db().execute(
                "INSERT OR REPLACE INTO window_profiles (model, model_version, window_start, features, predictions)"
                " VALUES (?, ?, ?, ?, ?)",
                (check_text(model, "model"), check_text(model_version, "model_version"), start,
                 bytes(features), bytes(predictions)),
            )

    def load_profiles(self, model: str, model_version: str, window_start: datetime | str) -> tuple[bytes, bytes] | None:
        """The ``(features, predictions)`` profile bytes of a window, or None if not kept."""
        start = window_start if isinstance(window_start, str) else iso_utc(window_start, field="window_start")
        rows = self._query(
            "SELECT features, predictions FROM window_profiles WHERE model = ? AND model_version = ? AND window_start = ?",
            (model, model_version, start),
        )
        return (bytes(rows[0]["features"]), bytes(rows[0]["predictions"])) if rows else None

    def has_window(self, model: str, model_version: str, window_start: datetime) -> bool:
        """Whether any mode of this window was saved (a restarted collector skips its records)."""
        rows = self._query(
            "SELECT 1 FROM windows WHERE model = ? AND model_version = ? AND window_start = ? LIMIT 1",
            (model, model_version, iso_utc(window_start, field="window_start")),
        )
        return bool(rows)

    def list_windows(
        self, model: str | None = None, since: datetime | None = None, limit: int = 100, *, mode: str | None = None
    ) -> list[WindowRow]:
        """Windows newest first; ``since`` keeps those starting at or after it."""
        where, params = [], []
        if model is not None:
            where.append("w.model = ?")
            params.append(model)
        if mode is not None:
            where.append("w.mode = ?")
            params.append(check_choice(mode, MODES, "mode"))
        if since is not None:
            where.append("w.window_start >= ?")
            params.append(iso_utc(since, field="since"))
        sql = (
            "SELECT w.*, COUNT(f.id) AS n_findings, COALESCE(SUM(f.alerting), 0) AS n_alerting"
            " FROM windows w LEFT JOIN findings f ON f.window_id = w.id"
            f"{' WHERE ' + ' AND '.join(where) if where else ''}"
            " GROUP BY w.id ORDER BY w.window_start DESC, w.id DESC LIMIT ?"
        )
        return [
            WindowRow(
                id=r["id"],
                model=r["model"],
                model_version=r["model_version"],
                mode=r["mode"],
                window_start=r["window_start"],
                window_end=r["window_end"],
                rows=r["rows"],
                late_records=r["late_records"],
                invalid_records=r["invalid_records"],
                saved_at=r["saved_at"],
                findings=r["n_findings"],
                alerting=r["n_alerting"],
            )
            for r in self._query(sql, (*params, check_limit(limit)))
        ]

    def list_findings(
        self,
        model: str | None = None,
        feature: str | None = None,
        verdict: str | None = None,
        window_id: int | None = None,
        limit: int = 1000,
        *,
        mode: str | None = None,
    ) -> list[FindingRow]:
        """Findings of the newest windows first, then by feature and test."""
        where, params = [], []
        for column, value in (("f.model", model), ("f.feature", feature)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if verdict is not None:
            where.append("f.verdict = ?")
            params.append(check_choice(verdict, VERDICTS, "verdict"))
        if mode is not None:
            where.append("f.mode = ?")
            params.append(check_choice(mode, MODES, "mode"))
        if window_id is not None:
            where.append("f.window_id = ?")
            params.append(check_count(window_id, "window_id"))
        sql = (
            "SELECT f.*, w.model_version, w.window_start, w.window_end FROM findings f"
            " JOIN windows w ON w.id = f.window_id"
            f"{' WHERE ' + ' AND '.join(where) if where else ''}"
            " ORDER BY w.window_start DESC, w.id DESC, f.feature, f.test LIMIT ?"
        )
        return [_finding_row(r) for r in self._query(sql, (*params, check_limit(limit)))]

    def latest_scores(self) -> list[ScoreRow]:
        """The most recent finding (by window end, then save order) per model/feature/test/mode."""
        sql = (
            "SELECT * FROM (SELECT f.*, w.model_version, w.window_end, ROW_NUMBER() OVER ("
            " PARTITION BY f.model, f.feature, f.test, f.mode ORDER BY w.window_end DESC, w.id DESC) AS rank"
            " FROM findings f JOIN windows w ON w.id = f.window_id)"
            " WHERE rank = 1 ORDER BY model, feature, test, mode"
        )
        return [
            ScoreRow(
                model=r["model"],
                feature=r["feature"],
                test=r["test"],
                mode=r["mode"],
                model_version=r["model_version"],
                effect=json_float(r["effect"]),
                q_value=json_float(r["q_value"]),
                statistic=json_float(r["statistic"]),
                floor=json_float(r["floor"]),
                verdict=r["verdict"],
                alerting=bool(r["alerting"]),
                window_id=r["window_id"],
                window_end=r["window_end"],
            )
            for r in self._query(sql)
        ]

    def window_summary(self) -> list[WindowSummaryRow]:
        """Per (model, mode): how many windows are stored and the counts of the latest one."""
        sql = (
            "SELECT model, mode, n, window_end, rows, late_records, invalid_records FROM ("
            " SELECT *, COUNT(*) OVER (PARTITION BY model, mode) AS n, ROW_NUMBER() OVER ("
            " PARTITION BY model, mode ORDER BY window_end DESC, id DESC) AS rank FROM windows)"
            " WHERE rank = 1 ORDER BY model, mode"
        )
        return [
            WindowSummaryRow(
                model=r["model"],
                mode=r["mode"],
                windows=r["n"],
                last_window_end=r["window_end"],
                last_rows=r["rows"],
                last_late_records=r["late_records"],
                last_invalid_records=r["invalid_records"],
            )
            for r in self._query(sql)
        ]

    # -- alerts -----------------------------------------------------------------------------

    def save_alert(self, alert: AlertLike) -> None:
        """Insert or replace one alert's state, keyed by its fingerprint."""
        labels = dict(alert.labels)
        for key in ("model", "feature", "mode"):
            check_text(labels.get(key), f"labels.{key}")
        try:
            findings_json = json.dumps([dict(f) for f in alert.findings], allow_nan=False, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise StatisticsError(f"findings: not JSON-safe ({exc})") from None
        values = (
            check_text(alert.fingerprint, "fingerprint"),
            check_choice(alert.state, ALERT_STATES, "state"),
            labels["model"],
            labels["feature"],
            labels["mode"],
            check_text(alert.severity, "severity"),
            json.dumps(labels, sort_keys=True),
            str(alert.summary),
            findings_json,
            iso_utc(alert.starts_at, field="starts_at"),
            None if alert.ends_at is None else iso_utc(alert.ends_at, field="ends_at"),
            iso_utc(alert.updated_at, field="updated_at"),
            check_count(alert.healthy_windows, "healthy_windows"),
            None if alert.notified_status is None else check_choice(alert.notified_status, ALERT_STATES, "notified_status"),
            None if alert.notified_severity is None else check_text(alert.notified_severity, "notified_severity"),
            None if alert.last_notified_at is None else iso_utc(alert.last_notified_at, field="last_notified_at"),
        )
        with self._lock:
            self._db().execute(
                "INSERT OR REPLACE INTO alerts (fingerprint, state, model, feature, mode, severity, labels, summary,"
                " findings, starts_at, ends_at, updated_at, healthy_windows, notified_status, notified_severity,"
                " last_notified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )

    def list_alerts(self, state: str | None = None) -> list[AlertRow]:
        """Alerts, most recently updated first; ``state`` keeps only firing or resolved ones."""
        if state is None:
            rows = self._query("SELECT * FROM alerts ORDER BY updated_at DESC, fingerprint")
        else:
            rows = self._query(
                "SELECT * FROM alerts WHERE state = ? ORDER BY updated_at DESC, fingerprint",
                (check_choice(state, ALERT_STATES, "state"),),
            )
        return [
            AlertRow(
                fingerprint=r["fingerprint"],
                state=r["state"],
                labels=json.loads(r["labels"]),
                severity=r["severity"],
                summary=r["summary"],
                findings=tuple(json.loads(r["findings"])),
                starts_at=r["starts_at"],
                ends_at=r["ends_at"],
                updated_at=r["updated_at"],
                healthy_windows=r["healthy_windows"],
                notified_status=r["notified_status"],
                notified_severity=r["notified_severity"],
                last_notified_at=r["last_notified_at"],
            )
            for r in rows
        ]


def _finding_row(r: sqlite3.Row) -> FindingRow:
    return FindingRow(
        id=r["id"],
        window_id=r["window_id"],
        model=r["model"],
        model_version=r["model_version"],
        feature=r["feature"],
        test=r["test"],
        mode=r["mode"],
        statistic=json_float(r["statistic"]),
        p_value=json_float(r["p_value"]),
        q_value=json_float(r["q_value"]),
        effect=json_float(r["effect"]),
        floor=json_float(r["floor"]),
        significant=bool(r["significant"]),
        verdict=r["verdict"],
        alerting=bool(r["alerting"]),
        message=r["message"],
        window_start=r["window_start"],
        window_end=r["window_end"],
    )
