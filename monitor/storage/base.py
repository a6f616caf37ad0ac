"""The store's plumbing: one engine, read and write transactions, dialect-neutral upserts."""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Iterator, Mapping, Sequence

from sqlalchemy import Boolean, Float, Integer, String, Table, and_, bindparam, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from monitor.errors import StoreError
from monitor.storage.engine import WRITE, make_engine, store_errors
from monitor.storage.migrate import current_revision, upgrade
from monitor.timeutil import now_ms

__all__ = ["StoreBase", "upsert", "insert_rows", "key_clause", "key_params"]


@functools.cache
def key_clause(table: Table) -> Any:
    """``table``'s window key (model, model_version, segment, start_ms) equal to the bound parameters
    :func:`key_params` gives: a statement built once from it is only bound at each execution (building
    the comparisons anew cost SQLAlchemy about 100 µs each, several times a partial and a decision)."""
    c = table.c
    return and_(c.model == bindparam("k_model"), c.model_version == bindparam("k_version"),
                c.segment == bindparam("k_segment"), c.start_ms == bindparam("k_start"))


def key_params(key: Any, **more: Any) -> dict[str, Any]:
    """The parameters of :func:`key_clause` for a :class:`~monitor.keys.WindowKey` (and ``more``)."""
    return {"k_model": key.model, "k_version": key.model_version, "k_segment": key.segment,
            "k_start": key.start_ms, **more}


def upsert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *, keys: Sequence[str],
           update: Sequence[str], where: Any = None) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET update-columns [WHERE where] (SQLite and PostgreSQL).

    ``where`` is a function ``(table, excluded) -> condition`` limiting which conflicts update.
    """
    if not rows:
        return
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table)
    excluded = stmt.excluded
    kwargs: dict[str, Any] = {"index_elements": list(keys), "set_": {c: excluded[c] for c in update}}
    if where is not None:
        kwargs["where"] = where(table, excluded)
    # the rows as executemany parameters, not one VALUES clause: the statement is compiled once and
    # cached (a 500-row VALUES clause was compiled anew for every window, about 100 ms each)
    conn.execute(stmt.on_conflict_do_update(**kwargs) if update else stmt.on_conflict_do_nothing(index_elements=list(keys)),
                 [dict(r) for r in rows])


_PLAIN = (Integer, Float, String, Boolean)  # types the drivers bind as they are (no processing to skip)


def insert_rows(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                conflict: Sequence[str] = (), update: Sequence[str] = (), newer: str | None = None) -> None:
    """Many rows (tuples in ``columns`` order) in one executemany through the driver, for the tables a
    decision writes a few hundred rows to: SQLAlchemy builds parameters row by row, 20 µs each. With
    ``conflict``: ON CONFLICT (conflict) DO UPDATE SET update-columns, only where the new row's
    ``newer`` column is at least the stored one's. Only plain columns (numbers, strings, booleans)."""
    if not rows:
        return
    if any(not isinstance(table.c[c].type, _PLAIN) for c in columns):
        raise TypeError(f"insert_rows takes plain columns only ({table.name})")
    q = conn.dialect.identifier_preparer
    name = q.format_table(table)
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO {name} ({', '.join(q.quote(c) for c in columns)}) VALUES ({', '.join([mark] * len(columns))})"
    if conflict:
        sets = ", ".join(f"{q.quote(c)} = excluded.{q.quote(c)}" for c in update)
        sql += f" ON CONFLICT ({', '.join(q.quote(c) for c in conflict)}) "
        sql += f"DO UPDATE SET {sets}" if update else "DO NOTHING"
        if update and newer is not None:
            sql += f" WHERE excluded.{q.quote(newer)} >= {name}.{q.quote(newer)}"
    conn.exec_driver_sql(sql, [tuple(r) for r in rows])


class StoreBase:
    """Owns the engine. ``write()`` and ``read()`` give a connection inside one transaction."""

    def __init__(self, url: str, *, busy_timeout_s: float = 10.0, clock: Callable[[], int] = now_ms,
                 migrate: bool = True) -> None:
        self.url = url
        self._clock = clock
        self._engine: Engine | None = make_engine(url, busy_timeout_s=busy_timeout_s)
        if migrate:
            try:
                upgrade(self._engine)
            except BaseException:
                self._engine.dispose()
                self._engine = None
                raise

    @property
    def dialect(self) -> str:
        return self._db().dialect.name

    def _db(self) -> Engine:
        if self._engine is None:
            raise StoreError("the store is closed")
        return self._engine

    def now(self) -> int:
        return self._clock()

    @contextlib.contextmanager
    def write(self, what: str = "writing to the store") -> Iterator[Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` on SQLite): committed on success, else rolled back."""
        with store_errors(what):
            with self._db().connect().execution_options(**{WRITE: True}) as conn:
                with conn.begin():
                    yield conn

    @contextlib.contextmanager
    def read(self, what: str = "reading the store") -> Iterator[Connection]:
        """One read transaction: a consistent snapshot."""
        with store_errors(what):
            with self._db().connect() as conn:
                with conn.begin():
                    yield conn

    def ping(self) -> str:
        """Touch the database; return its schema revision (health checks)."""
        with self.read("pinging the store") as conn:
            conn.execute(text("SELECT 1"))
            revision = current_revision(conn)
        if revision is None:
            raise StoreError("the store has no schema")
        return revision

    def close(self) -> None:
        """Release every connection; safe to call twice."""
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    @property
    def closed(self) -> bool:
        return self._engine is None

    def __enter__(self):  # noqa: ANN204 - returns the subclass
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
