"""Alembic environment of the skewwatch store.

Run programmatically by :func:`monitor.storage.migrate.upgrade` with an open connection in
``config.attributes["connection"]`` (one transaction for the whole upgrade). For a new revision
during development: ``.venv/bin/alembic -c monitor/storage/migrations/alembic.ini revision
--autogenerate -m "..."`` against a database at the current head.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from monitor.storage.tables import metadata

config = context.config


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                      compare_type=True, transaction_per_migration=False)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # the alembic command line: the URL from alembic.ini or -x url=...
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)
