"""Bring a store to the current schema with Alembic, safely with several processes at once.

:func:`upgrade` runs every missing revision in one transaction: ``BEGIN IMMEDIATE`` on SQLite,
under ``pg_advisory_xact_lock`` on PostgreSQL, so a collector and the monitor starting together
cannot both create the tables, and a crash mid-upgrade leaves the old revision. A database at a
revision this skewwatch does not know (written by a newer release), or a file of the first
skewwatch release (``PRAGMA user_version``, no Alembic), is refused with a clear error, never
altered.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from monitor.errors import StoreError
from monitor.storage.engine import WRITE, store_errors

__all__ = ["upgrade", "head_revision", "current_revision"]

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_LOCK = 0x5E3_0A7C4  # advisory lock id of skewwatch migrations


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None  # noqa: S101 - the package ships its migrations
    return head


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _refuse_legacy(connection: Connection) -> None:
    names = set(inspect(connection).get_table_names())
    if "windows" in names and "alembic_version" not in names:
        raise StoreError(
            "this database was written by the first skewwatch release (no Alembic revision); this release "
            "cannot read it: move the file away or point SKEWWATCH_STATE_DIR / SKEWWATCH_STORE_URL elsewhere"
        )


def upgrade(engine: Engine) -> str:
    """Migrate to the head revision; return it."""
    head = head_revision()
    known = {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}
    with store_errors("migrating the store"):
        with engine.connect() as conn:
            if current_revision(conn) == head:
                return head
        with engine.connect().execution_options(**{WRITE: True}) as conn:
            with conn.begin():
                if engine.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK})
                found = current_revision(conn)
                if found is not None and found not in known:
                    raise StoreError(f"store schema revision {found!r} is newer than this skewwatch understands "
                                     f"(head {head!r}); upgrade skewwatch")
                if found is None:
                    _refuse_legacy(conn)
                if found != head:
                    command.upgrade(_config(conn), "head")
    return head
