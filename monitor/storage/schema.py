"""The SQLite schema and its migrations, tracked with ``PRAGMA user_version``.

Each migration moves the database from version ``n - 1`` to ``n``; :func:`migrate` applies the
missing ones in one ``BEGIN IMMEDIATE`` transaction, so two processes opening a fresh file at
the same time cannot both create it, and a crash mid-migration leaves the old version intact.
A database written by a newer skewwatch (a higher ``user_version``) is refused, never altered.
"""

from __future__ import annotations

import sqlite3

from monitor.errors import StatisticsError

__all__ = ["SCHEMA_VERSION", "MIGRATIONS", "migrate", "schema_version"]

# Version 1: windows, their findings, alert state.
_V1 = """
CREATE TABLE windows (
    id              INTEGER PRIMARY KEY,
    model           TEXT    NOT NULL,
    model_version   TEXT    NOT NULL,
    mode            TEXT    NOT NULL CHECK (mode IN ('skew', 'drift')),
    window_start    TEXT    NOT NULL,
    window_end      TEXT    NOT NULL,
    rows            INTEGER NOT NULL CHECK (rows >= 0),
    late_records    INTEGER NOT NULL CHECK (late_records >= 0),
    invalid_records INTEGER NOT NULL CHECK (invalid_records >= 0),
    saved_at        TEXT    NOT NULL,
    UNIQUE (model, model_version, mode, window_start)
);
CREATE INDEX windows_by_model_start ON windows (model, window_start);
CREATE INDEX windows_by_start ON windows (window_start);

CREATE TABLE findings (
    id          INTEGER PRIMARY KEY,
    window_id   INTEGER NOT NULL REFERENCES windows (id) ON DELETE CASCADE,
    model       TEXT    NOT NULL,
    feature     TEXT    NOT NULL,
    test        TEXT    NOT NULL,
    mode        TEXT    NOT NULL CHECK (mode IN ('skew', 'drift')),
    statistic   REAL,
    p_value     REAL,
    q_value     REAL,
    effect      REAL,
    floor       REAL,
    significant INTEGER NOT NULL CHECK (significant IN (0, 1)),
    verdict     TEXT    NOT NULL CHECK (verdict IN ('ok', 'warning', 'critical')),
    alerting    INTEGER NOT NULL CHECK (alerting IN (0, 1)),
    message     TEXT    NOT NULL,
    UNIQUE (window_id, feature, test)
);
CREATE INDEX findings_by_key ON findings (model, feature, test, mode);
CREATE INDEX findings_by_verdict ON findings (verdict);

CREATE TABLE alerts (
    fingerprint       TEXT PRIMARY KEY,
    state             TEXT NOT NULL CHECK (state IN ('firing', 'resolved')),
    model             TEXT NOT NULL,
    feature           TEXT NOT NULL,
    mode              TEXT NOT NULL,
    severity          TEXT NOT NULL,
    labels            TEXT NOT NULL,
    summary           TEXT NOT NULL,
    findings          TEXT NOT NULL,
    starts_at         TEXT NOT NULL,
    ends_at           TEXT,
    updated_at        TEXT NOT NULL,
    healthy_windows   INTEGER NOT NULL,
    notified_status   TEXT,
    notified_severity TEXT,
    last_notified_at  TEXT
);
CREATE INDEX alerts_by_state ON alerts (state);
"""

# Version 2: each window's statistics (Profile bytes), so a notebook can drill down from an alert.
_V2 = """
CREATE TABLE window_profiles (
    model         TEXT NOT NULL,
    model_version TEXT NOT NULL,
    window_start  TEXT NOT NULL,
    features      BLOB NOT NULL,
    predictions   BLOB NOT NULL,
    PRIMARY KEY (model, model_version, window_start)
);
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`; return the version it was at.

    ``conn`` must be in autocommit mode (``isolation_level=None``): the transaction is ours.
    """
    found = schema_version(conn)
    if found > SCHEMA_VERSION:
        raise StatisticsError(
            f"store schema version {found} is newer than this skewwatch understands ({SCHEMA_VERSION})"
        )
    if found == SCHEMA_VERSION:
        return found
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = schema_version(conn)  # another process may have migrated while we waited
        if found > SCHEMA_VERSION:
            raise StatisticsError(
                f"store schema version {found} is newer than this skewwatch understands ({SCHEMA_VERSION})"
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in _statements(MIGRATIONS[version - 1]):
                conn.execute(statement)
        # PRAGMA takes no parameters; the value is our own integer.
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found
