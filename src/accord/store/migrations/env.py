"""Alembic's entry point for accord's store: runs the migrations on one connection.

The store passes its connection in ``config.attributes["connection"]``, inside the
transaction that holds the migration lock (see :mod:`accord.store.migrate`), so
nothing here opens a transaction of its own. Developers running Alembic commands
pass a URL instead (``alembic_config(url=...)``). No logging is configured here:
that is the application's business.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from accord.errors import StoreError
from accord.store import engine as engines
from accord.store.migrate import VERSION_TABLE, is_accord_name
from accord.store.schema import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        include_name=is_accord_name,
        # SQLite alters most things only by copying the table; drafts say so.
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    if context.is_offline_mode():
        raise StoreError("accord's migrations run on a live database; drop --sql")
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise StoreError("pass the database: alembic_config(url=...)")
    engine = engines.connect(engines.parse_url(url))
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


_main()
