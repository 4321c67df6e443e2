"""Run leases: one process at a time serves (runs or resumes) a given run.

Two coordinators serving one run would each record its rounds; the store's unique
(run, round) keeps the records whole, but the second process fails halfway with a
confusing error after binding its port and training in vain. So whoever serves a
run first takes its *lease* (:meth:`~accord.store.protocol.RunStore.lease_run`),
and anyone else is refused at once with :class:`~accord.errors.RunBusy`, which says
who holds it (process id, host, since when) where the store can tell.

A lease must die with its holder: a coordinator killed with ``kill -9`` must not
leave a lock someone has to find and delete by hand. So a lease is a lock that the
operating system or the database server drops by itself, never a row or a marker:

- SQLite file: ``flock`` on a file beside the database (``accord.db.lease-RUN``),
  which the kernel releases when the holder's descriptor closes, however the holder
  ends. The file names the holder (JSON: host, pid, since), for the refusal, and is
  removed on release. ``flock`` is local to one machine (it is no lock on most
  network file systems), as is a SQLite store itself. Without ``flock`` (Windows)
  a lease is exclusive within its process only.
- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on a connection
  of its own, kept open while the lease is held; the server drops the lock when the
  connection ends. The connection's ``application_name`` names the holder, and
  server-side TCP keepalives make the server notice a holder whose machine vanished
  within about two minutes. The lock lasts as long as that connection: a server
  restart drops it.
- An in-memory store (or another database): exclusivity within the process.

In a process, a lease is re-entrant in the thread that holds it, like an ``RLock``
that is only ever tried: the deployment CLI takes it as soon as it knows the run id
and the round loop (:class:`~accord.coordinator.runner.Coordinator`) takes it again
on the same store without waiting on itself. Another thread, or another store
object on the same database, is refused like another process.

Hand-written rather than with a lock-file package: the file part is a dozen lines
of ``flock``, and the holder has to be written into the file and offered over
PostgreSQL's advisory locks behind the same interface.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import URL, Connection, Engine, text

from accord.errors import RunBusy, StoreError
from accord.store import engine as engines

if sys.platform != "win32":
    import fcntl

__all__ = [
    "database_file",
    "Acquire",
    "Holder",
    "Leases",
    "Release",
    "acquirer",
    "advisory_lock",
    "in_process",
    "lease_file",
    "lease_key",
    "lock_file",
]

logger = logging.getLogger(__name__)

#: Frees what an :data:`Acquire` took.
Release = Callable[[], None]
#: Takes the lease of a run for a holder, or raises :class:`RunBusy`.
Acquire = Callable[[str, "Holder"], Release]

_APP_NAME = re.compile(r"accord-lease (\d+)@(.*)")
# A server-side session setting: the server probes an idle lease connection after
# 60 s and drops it (and the lock) after 6 unanswered probes 10 s apart.
_KEEPALIVES = (
    ("tcp_keepalives_idle", "60"),
    ("tcp_keepalives_interval", "10"),
    ("tcp_keepalives_count", "6"),
)
_SAFE_FILE_PART = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lease: shown to whoever is refused it."""

    host: str | None
    pid: int | None
    since: datetime | None

    @classmethod
    def current(cls) -> Holder:
        """The calling process, from now."""
        return cls(socket.gethostname(), os.getpid(), datetime.now(UTC))

    def describe(self) -> str:
        """E.g. ``process 4242 on host lab-1, since 2026-11-22 16:33:01 UTC``."""
        who = f"process {self.pid}" if self.pid is not None else "a process"
        if self.host:
            who += f" on host {self.host}"
        since = ""
        if self.since is not None:
            stamp = self.since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
            since = f", since {stamp} UTC"
        return f"{who}{since}"

    def to_json(self) -> str:
        """The holder as the lease file keeps it."""
        since = None if self.since is None else self.since.isoformat()
        return json.dumps({"host": self.host, "pid": self.pid, "since": since})

    @classmethod
    def from_json(cls, raw: str) -> Holder | None:
        """The holder a lease file names; None if it is empty or unreadable."""
        try:
            data = json.loads(raw)
            since = data["since"]
            return cls(
                None if data["host"] is None else str(data["host"]),
                None if data["pid"] is None else int(data["pid"]),
                None if since is None else datetime.fromisoformat(since),
            )
        except (ValueError, TypeError, KeyError):
            return None


def lease_key(run_id: str) -> int:
    """A stable signed 64-bit number for ``run_id`` (a PostgreSQL advisory key).

    Salted, so that accord's keys do not meet other applications' small integers.
    """
    digest = hashlib.sha256(f"accord-run-lease:{run_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(slots=True)
class _Held:
    thread: int
    holder: Holder
    release: Release
    count: int = 0


class Leases:
    """The leases one store holds: re-entrant in the holding thread, else refused.

    ``acquire`` takes a run's lease across processes (see :func:`acquirer`); it is
    called once per run while the lease is not held here, and its release once the
    outermost :meth:`hold` ends.
    """

    def __init__(self, acquire: Acquire) -> None:
        self._acquire = acquire
        self._lock = threading.Lock()
        self._held: dict[str, _Held] = {}

    @contextmanager
    def hold(self, run_id: str) -> Iterator[None]:
        """Hold ``run_id``'s lease inside the block; :class:`RunBusy` if taken."""
        me = threading.get_ident()
        with self._lock:
            held = self._held.get(run_id)
            if held is None:
                holder = Holder.current()
                held = _Held(me, holder, self._acquire(run_id, holder))
                self._held[run_id] = held
                logger.debug("took the lease of run %s", run_id)
            elif held.thread != me:
                who = f"{held.holder.describe()}, in another thread"
                raise RunBusy(run_id, holder=who)
            held.count += 1
        try:
            yield
        finally:
            with self._lock:
                held.count -= 1
                last = held.count == 0 and self._held.get(run_id) is held
                if last:
                    del self._held[run_id]
                    held.release()
                    logger.debug("released the lease of run %s", run_id)

    def release_all(self) -> None:
        """Release every lease still held (the store is closing)."""
        with self._lock:
            held, self._held = list(self._held.values()), {}
            for lease in held:
                lease.release()


def in_process(run_id: str, holder: Holder) -> Release:
    """No lock outside the process: :class:`Leases` alone keeps it exclusive."""
    return _nothing


def _nothing() -> None:
    pass


def acquirer(url: URL, engine: Engine, *, where: str) -> Acquire:
    """How a store on ``url`` takes a lease across processes (see the module)."""
    path = database_file(url)
    if path is not None:
        return lambda run_id, holder: lock_file(
            lease_file(path, run_id), run_id, holder
        )
    if url.get_backend_name() == "postgresql":
        return lambda run_id, holder: advisory_lock(engine, run_id, holder, where=where)
    return in_process


def database_file(url: URL) -> Path | None:
    """The file a SQLite URL opens, as one name whatever the URL calls it.

    Two URLs may open the same file: a relative and an absolute path, a symbolic
    link, or SQLite's ``file:`` URI form (``?uri=true``). Their leases must be
    the same lock file, so the path is resolved (links followed) and a URI is
    read as SQLite reads it. None for an in-memory database and other backends.
    """
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:":
        return None
    if url.query.get("uri"):
        if url.query.get("mode") == "memory" or not database.startswith("file:"):
            return None
        parsed = urllib.parse.urlparse(database)
        database = urllib.parse.unquote(parsed.path)
        if not database or database == ":memory:":
            return None
    return Path(database).resolve()


def lease_file(database: Path, run_id: str) -> Path:
    """The lock file of ``run_id`` beside a SQLite ``database`` file.

    A run id that is not a plain file name (``--resume`` takes any text) is hashed.
    """
    part = run_id if _SAFE_FILE_PART.fullmatch(run_id) else f"{lease_key(run_id):x}"
    return database.with_name(f"{database.name}.lease-{part}")


def lock_file(path: Path, run_id: str, holder: Holder) -> Release:
    """Lease ``run_id``: ``flock`` ``path`` (made if needed) and name ``holder`` in it.

    :class:`RunBusy` naming the holder the file names if another descriptor, in
    this process or another, has it locked.
    """
    if sys.platform == "win32":  # no flock: exclusive within this process only
        return _nothing
    while True:
        fd = _open_lock(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raw = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            os.close(fd)
            found = Holder.from_json(raw)
            raise RunBusy(run_id, holder=found.describe() if found else None) from None
        except OSError as exc:
            os.close(fd)
            raise StoreError(
                f"cannot lock {path}: {exc.strerror or exc}; put the store on a "
                "local file system"
            ) from exc
        # The last holder removes the file as it releases it: if it did so between
        # our open and our lock, we locked a file nobody else will open. Try again.
        if _same_file(fd, path):
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.to_json().encode(), 0)
    except OSError as exc:  # only the refusal message needs it
        logger.warning("could not write the lease holder into %s: %s", path, exc)

    def release() -> None:
        try:
            path.unlink(missing_ok=True)  # while still locked: see _same_file
        except OSError as exc:
            logger.warning("could not remove the lease file %s: %s", path, exc)
        os.close(fd)

    return release


def _open_lock(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(
            f"cannot create the lease file {path}: {exc.strerror or exc}; the "
            "store's directory must be writable by the coordinator"
        ) from exc


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)


def advisory_lock(
    engine: Engine, run_id: str, holder: Holder, *, where: str
) -> Release:
    """Take ``run_id``'s advisory lock on a connection of its own, kept open.

    The connection leaves ``engine``'s pool, so that closing it really ends the
    session (and the lock) instead of handing a locked session to someone else.
    """
    key = lease_key(run_id)
    with engines.translated(f"leasing run {run_id}", where):
        conn = engine.connect()
        try:
            # No transaction to sit idle in for hours: the lock is the session's.
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.detach()
            tag = f"accord-lease {holder.pid}@{holder.host}"[:63]
            settings = (("application_name", tag), *_KEEPALIVES)
            for name, value in settings:
                conn.execute(
                    text("SELECT set_config(:name, :value, false)"),
                    {"name": name, "value": value},
                )
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})
            if not got.scalar_one():
                found = _advisory_holder(conn, key)
                raise RunBusy(run_id, holder=found.describe() if found else None)
        except BaseException:
            conn.close()
            raise

    def release() -> None:
        try:
            with engines.translated(f"releasing run {run_id}", where):
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        except StoreError as exc:  # closing the session drops the lock anyway
            logger.warning("%s", exc)
        finally:
            conn.close()

    return release


def _advisory_holder(conn: Connection, key: int) -> Holder | None:
    """Who holds advisory ``key`` in this database, as far as the server says."""
    row = conn.execute(
        text(
            "SELECT a.application_name, a.backend_start, host(a.client_addr) "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.database = (SELECT oid FROM pg_database "
            "WHERE datname = current_database()) "
            "AND l.classid::bigint = :hi AND l.objid::bigint = :lo LIMIT 1"
        ),
        {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF},
    ).first()
    if row is None:  # released meanwhile, or not visible to this user
        return None
    name, since, client = row
    match = _APP_NAME.fullmatch(name or "")
    if match is not None:
        return Holder(match[2], int(match[1]), since)
    return Holder(client, None, since)
