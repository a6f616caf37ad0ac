"""Engines for the store: SQLite (embedded default, WAL) or PostgreSQL (shared), one place.

SQLite runs in WAL mode (readers never wait for the writer), with foreign keys on and a busy
timeout; a write transaction starts with ``BEGIN IMMEDIATE`` so two writers queue on the lock
instead of deadlocking on an upgrade. PostgreSQL goes through psycopg 3 with a small pool and
pre-ping, so a restarted database is reconnected transparently.

Every database failure reaches callers as :class:`~monitor.errors.StoreError` (see
:func:`store_errors`): never the caller's fault, retry later, the API answers 503.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from monitor.errors import ConfigError, StoreError

__all__ = ["make_engine", "store_url", "store_errors", "WRITE"]

#: Execution option that makes a SQLite transaction ``BEGIN IMMEDIATE``.
WRITE = "skewwatch_write"


def store_url(url: str | None, state_dir: Path) -> str:
    """The SQLAlchemy URL of the store: ``url`` if given, else a SQLite file in ``state_dir``."""
    if url:
        return url
    return f"sqlite:///{(Path(state_dir) / 'skewwatch.sqlite3').resolve()}"


def make_engine(url: str, *, busy_timeout_s: float = 10.0) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"not a database URL ({exc})", field="store_url") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            connect_args={"timeout": busy_timeout_s, "check_same_thread": False, "isolation_level": None},
        )
        busy_ms = int(busy_timeout_s * 1000)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DBAPI types
            cur = dbapi_conn.cursor()
            if database and database != ":memory:":
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            # Some builds (Python's own among them) default to secure_delete=ON: every freed page is
            # zeroed and written, so deleting a decided window's partials (100 profiles) wrote about
            # 800 KB to the WAL, 6 ms of each decision. FAST zeroes only what is written anyway.
            cur.execute("PRAGMA secure_delete=FAST")
            cur.execute(f"PRAGMA busy_timeout={busy_ms:d}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn) -> None:  # noqa: ANN001
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")

        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() in ("psycopg2", "pg8000", "asyncpg"):
            raise ConfigError("use the psycopg 3 driver: postgresql+psycopg://user:password@host/db", field="store_url")
        parsed = parsed.set(drivername="postgresql+psycopg")
        timeout_ms = int(busy_timeout_s * 1000)
        return create_engine(
            parsed,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=5,
            connect_args={"connect_timeout": max(1, int(busy_timeout_s)),
                          "options": f"-c lock_timeout={timeout_ms:d} -c statement_timeout={6 * timeout_ms:d}"},
        )
    raise ConfigError(f"unsupported database {backend!r} (sqlite or postgresql)", field="store_url")


@contextlib.contextmanager
def store_errors(what: str) -> Iterator[None]:
    """Turn database failures into :class:`StoreError` (the message never carries a password)."""
    try:
        yield
    except DBAPIError as exc:
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        raise StoreError(f"{what}: {detail}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"{what}: {type(exc).__name__}: {exc}") from exc
