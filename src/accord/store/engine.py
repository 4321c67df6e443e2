"""Turning a database URL into a ready SQLAlchemy engine, and errors into advice.

SQLite gets three settings on every connection, because its defaults do not give
the durability the round engine relies on: ``foreign_keys=ON`` (off by default),
``journal_mode=WAL`` (readers such as the dashboard do not block the writer) and
``synchronous=FULL`` (a committed round survives a power cut, not only a crash).
Database errors are rewritten into :class:`~accord.errors.StoreError` messages that
name the database (never its password) and say what to check.

A SQLite store must be writable before anything is opened: the database file, its
folder (SQLite creates ``NAME-wal`` and ``NAME-shm`` there, and accord its lease
files) and the ``-wal``/``-shm`` files if they exist. SQLite itself reports a
read-only store late and vaguely ("attempt to write a readonly database", after a
run may have started), and maps the ``-shm`` file into memory, which a file it
cannot extend turns into a SIGBUS that kills the process with no message. So
:func:`connect` tries to open each for writing first (a real open, not
``os.access``, so ACLs, read-only mounts and privileges count as they will) and
names the first one that fails.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    SQLAlchemyError,
)
from sqlalchemy.pool import ConnectionPoolEntry

from accord.errors import MissingExtraError, StoreError
from accord.urls import hide_password

__all__ = [
    "connect",
    "describe",
    "parse_url",
    "reason",
    "sqlite_path",
    "translated",
]

logger = logging.getLogger(__name__)


def parse_url(url: str | URL) -> URL:
    """Parse a database URL; plain ``postgresql://`` means psycopg 3 (our extra)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port not a number
        shown = hide_password(url) if isinstance(url, str) else "the store URL"
        raise StoreError(
            f"{shown!r} is not a database URL; use e.g. sqlite:///path/to/accord.db "
            "or postgresql://user@host/dbname"
        ) from exc
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL, or ``None`` for other backends and in-memory ones."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:" or url.query.get("uri"):
        return None
    return Path(database)


def describe(url: URL) -> str:
    """How to name this database in a message (file path, or URL sans password)."""
    path = sqlite_path(url)
    if path is not None:
        return f"SQLite file {path}"
    if url.get_backend_name() == "sqlite":
        return "in-memory SQLite database"
    return hide_password(url.render_as_string(hide_password=False))


def reason(exc: BaseException) -> str:
    """The driver's own words for a database error, on one line."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return (
        str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    )


@contextmanager
def translated(action: str, where: str) -> Iterator[None]:
    """Re-raise SQLAlchemy errors as :class:`StoreError` saying what failed where."""
    try:
        yield
    except IntegrityError as exc:
        raise StoreError(
            f"{action}: the database refused it ({reason(exc)}); nothing of it "
            "was stored"
        ) from exc
    except SQLAlchemyError as exc:
        raise StoreError(
            f"{action} failed on {where}: {reason(exc)}. Check that the database "
            "is reachable and writable"
        ) from exc


def _sqlite_pragmas(
    dbapi_connection: DBAPIConnection, connection_record: ConnectionPoolEntry
) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        row = cursor.fetchone()
        mode = str(row[0]).lower() if row else "unknown"
        if mode not in ("wal", "memory"):
            logger.warning(
                "SQLite refused WAL mode (journal_mode=%s); readers may block "
                "the coordinator. Put the database on a local disk.",
                mode,
            )
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


def _check_sqlite_file(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise StoreError(
            f"cannot open SQLite file {path}: directory {parent} does not exist; "
            "create it first or pass another --store URL"
        )
    if path.is_dir():
        raise StoreError(
            f"cannot open SQLite file {path}: it is a directory; "
            f"point the URL at a file inside it, e.g. {path / 'accord.db'}"
        )
    _check_writable(path, parent)


def _unwritable(path: Path, exc: OSError, what: str) -> StoreError:
    why = "read-only file system" if exc.errno == errno.EROFS else exc.strerror
    return StoreError(
        f"cannot use SQLite file {path}: {what} is not writable ({why or exc}); "
        "accord records every round there. Make it writable for this user "
        "(e.g. chmod u+w), or pass another --store URL"
    )


def _check_writable(path: Path, parent: Path) -> None:
    """:class:`StoreError` naming the first of the store's files accord cannot write."""
    try:
        with tempfile.TemporaryFile(dir=parent, prefix=".accord-write-check-"):
            pass
    except OSError as exc:
        raise _unwritable(
            path,
            exc,
            f"its folder {parent} (SQLite creates {path.name}-wal and "
            f"{path.name}-shm beside it)",
        ) from exc
    for file, what in (
        (path, "the file"),
        (path.with_name(path.name + "-wal"), f"its journal {path.name}-wal"),
        (path.with_name(path.name + "-shm"), f"its shared index {path.name}-shm"),
    ):
        if not file.exists():
            continue
        try:
            os.close(os.open(file, os.O_RDWR))
        except OSError as exc:
            raise _unwritable(path, exc, what) from exc


def connect(url: URL) -> Engine:
    """Create the engine for ``url``; no connection is made yet."""
    path = sqlite_path(url)
    if path is not None:
        _check_sqlite_file(path)
    # SQLite: wait up to 30 s for another process's write lock (a migration, or a
    # coordinator committing a round) instead of failing at pysqlite's default 5 s.
    connect_args = {"timeout": 30.0} if path is not None else {}
    try:
        engine = create_engine(url, connect_args=connect_args)
    except NoSuchModuleError as exc:
        raise StoreError(
            f"no SQLAlchemy dialect for {url.drivername!r}; use a sqlite:// or "
            "postgresql:// URL"
        ) from exc
    except ImportError as exc:
        if url.get_backend_name() == "postgresql":
            raise MissingExtraError(
                extra="postgres", package="psycopg", feature="a PostgreSQL store"
            ) from exc
        raise StoreError(
            f"the database driver for {url.drivername!r} is not installed ({exc})"
        ) from exc
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine
