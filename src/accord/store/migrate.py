"""Bringing a database to the schema this accord expects, with Alembic.

:class:`~accord.store.sql.SqlStore` calls :func:`upgrade` when it opens a database:
an empty one gets every table, an older one the migrations it lacks, a current one
nothing. It refuses, with a :class:`StoreError`, a database whose revision this
accord does not know (a newer accord wrote it: the fix is a newer accord, not an
edit of the data) and accord tables it cannot place in its history.

Alembic is driven in code, without ``alembic.ini``: :func:`alembic_config` points it
at :mod:`accord.store.migrations` and hands it the connection to use; logging is left
to the application. The upgrade runs in one transaction under a lock (PostgreSQL: an
advisory lock; SQLite: ``BEGIN IMMEDIATE``), so two processes opening a new database
at once do not both create its tables, and a crash mid-upgrade leaves the database as
it was (both backends have transactional DDL).

A database made by accord before it had migrations (``create_all`` plus a
``schema_version`` row of 1) is recognised by its tables and columns, stamped with
revision 0001, whose schema it has, and upgraded from there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.environment import NameFilterParentNames, NameFilterType
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from accord.errors import StoreError
from accord.store import engine as engines

__all__ = [
    "INITIAL_REVISION",
    "VERSION_TABLE",
    "alembic_config",
    "current_revision",
    "head_revision",
    "is_accord_name",
    "upgrade",
]

logger = logging.getLogger(__name__)

#: Where Alembic keeps the revision; prefixed like our tables, so that accord can
#: share a PostgreSQL schema with another application that uses Alembic too.
VERSION_TABLE = "accord_alembic_version"
#: The revision whose schema is what accord created before it had migrations.
INITIAL_REVISION = "0001"

_MIGRATIONS = Path(__file__).with_name("migrations")
_LOCK_KEY = 0x6163636F7264  # "accord": one advisory lock for every accord migration

#: The tables and columns ``create_all`` made before migrations (schema_version 1).
_LEGACY_COLUMNS: dict[str, frozenset[str]] = {
    "accord_meta": frozenset({"key", "value"}),
    "accord_runs": frozenset(
        {
            "id",
            "name",
            "created_at",
            "finished_at",
            "status",
            "seed",
            "rounds_planned",
            "config",
            "summary",
        }
    ),
    "accord_rounds": frozenset(
        {
            "id",
            "run_id",
            "number",
            "started_at",
            "finished_at",
            "status",
            "global_digest",
            "selected",
            "checkpoint",
        }
    ),
    "accord_outcomes": frozenset(
        {
            "id",
            "round_id",
            "position",
            "participant",
            "status",
            "reason",
            "num_examples",
            "update_digest",
            "duration_s",
            "metrics",
        }
    ),
    "accord_metrics": frozenset(
        {"id", "round_id", "position", "scope", "participant", "name", "value"}
    ),
}


def alembic_config(
    *, connection: Connection | None = None, url: str | None = None
) -> Config:
    """An Alembic config for accord's migrations, with no file behind it.

    ``connection`` is used by the migrations when given (the store's case); ``url``
    serves developers running Alembic commands, e.g. ``command.revision(
    alembic_config(url="sqlite:///dev.db"), "add x", autogenerate=True)``.
    """
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def is_accord_name(
    name: str | None, type_: NameFilterType, parent_names: NameFilterParentNames
) -> bool:
    """Alembic name filter: only accord's tables (a shared schema may hold others)."""
    return type_ != "table" or (name is not None and name.startswith("accord_"))


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision this accord knows."""
    head = _scripts().get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise StoreError("accord's store migrations are missing; reinstall accord")
    return head


def current_revision(connection: Connection) -> str | None:
    """The database's revision, None if it has none (empty or made before them)."""
    context = MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE}
    )
    heads = context.get_current_heads()
    if len(heads) > 1:
        raise StoreError(
            f"the store records several schema revisions ({', '.join(heads)}); "
            "it was migrated by hand. Restore it from a backup"
        )
    return heads[0] if heads else None


def upgrade(engine: Engine, *, where: str) -> None:
    """Bring the database behind ``engine`` to the newest revision; see the module."""
    scripts = _scripts()
    head = scripts.get_current_head()
    known = {script.revision for script in scripts.walk_revisions()}
    try:
        with engine.connect() as conn:
            if current_revision(conn) == head:
                return
        with engine.connect() as conn, _locked(conn):
            current = current_revision(conn)
            if current == head:
                return
            if current is not None and current not in known:
                raise StoreError(
                    f"{where} has store schema revision {current!r}, which this "
                    f"accord does not know (it knows up to {head!r}): a newer "
                    "accord wrote it. Upgrade accord, or use another --store"
                )
            if current is None and _is_legacy(conn, where):
                _stamp(conn, scripts, INITIAL_REVISION)
                current = INITIAL_REVISION
            logger.info(
                "upgrading %s from store revision %s to %s",
                where,
                current or "(empty)",
                head,
            )
            command.upgrade(alembic_config(connection=conn), "head")
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot open {where}: {engines.reason(exc)}. Check that it is a "
            "database accord may write, or pass another --store URL"
        ) from exc
    except CommandError as exc:
        raise StoreError(
            f"cannot migrate {where}: {exc}. Restore it from a backup or use "
            "another --store"
        ) from exc


@contextmanager
def _locked(conn: Connection) -> Iterator[None]:
    """One transaction, holding the database's migration lock; commits on success.

    SQLite: ``BEGIN IMMEDIATE`` takes the write lock now (pysqlite would otherwise
    run DDL outside any transaction). PostgreSQL: a transaction-scoped advisory lock.
    """
    backend = conn.dialect.name
    if backend == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif backend == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    try:
        yield
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


def _stamp(conn: Connection, scripts: ScriptDirectory, revision: str) -> None:
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    context.stamp(scripts, revision)
    logger.info("recognised a store made before migrations; stamped %s", revision)


def _is_legacy(conn: Connection, where: str) -> bool:
    """True if ``conn`` holds the tables of accord before migrations; False if none.

    Accord tables that are neither absent nor exactly those are refused: upgrading
    them could only fail half way.
    """
    inspector = inspect(conn)
    ours = {n for n in inspector.get_table_names() if n.startswith("accord_")}
    if not ours:
        return False
    found = {t: frozenset(c["name"] for c in inspector.get_columns(t)) for t in ours}
    if found != _LEGACY_COLUMNS:
        raise StoreError(
            f"{where} has accord tables ({', '.join(sorted(ours))}) without a schema "
            "revision, and they are not the tables any accord release made. Use "
            "another --store, or restore this database from a backup"
        )
    version = conn.execute(
        text("SELECT value FROM accord_meta WHERE key = 'schema_version'")
    ).scalar()
    if version != "1":
        raise StoreError(
            f"{where} has store schema version {version}, which no accord release "
            "made; use the accord that wrote it, or another --store"
        )
    return True
