"""Noticing that a connected caller's certificate was revoked, while it is connected.

The trust store re-reads the CRL and the roster when they change on disk, and every
new call is checked against them; but a participant's task stream is one call that
lasts the whole run, so on its own a revocation would reach it only when it next
dialled. :class:`RevocationWatch` closes that gap: the server tracks the certificate
of every open call of a participant (:meth:`RevocationWatch.track`), and a daemon
thread asks the trust store, every ``every_s`` seconds, whether anything changed
(:meth:`~accord.transport.trust.TrustStore.handshake_roots` hands out a new object
exactly when the roster or the CRL did); when it did, and in any case every
``full_every_s`` seconds (certificates also expire), it verifies each tracked
certificate again and reports each one that no longer passes to ``on_revoked(name,
reason)``, once. The coordinator then expels that participant from the run
(:meth:`~accord.transport.executor.GrpcExecutor.expel`).

A trust store that cannot be read (a file vanished or stopped parsing) is logged and
changes nothing here: new calls already fail closed on it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from accord.errors import AuthenticationFailed, PkiError
from accord.transport.trust import TrustStore, verify_peer

__all__ = ["RevocationWatch"]

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Tracked:
    name: str
    cert_pem: bytes


class RevocationWatch:
    """Re-verifies the certificates of open calls; see the module docstring."""

    def __init__(
        self,
        trust: TrustStore,
        on_revoked: Callable[[str, str], None],
        *,
        every_s: float = 1.0,
        full_every_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._trust = trust
        self._on_revoked = on_revoked
        self._every_s = every_s
        self._full_every_s = full_every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._tracked: set[_Tracked] = set()
        self._reported: set[str] = set()
        self._roots: object | None = None
        self._last_full = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def track(self, name: str, cert_pem: bytes) -> Callable[[], None]:
        """Watch ``name``'s certificate while its call is open; return the untrack."""
        item = _Tracked(name, cert_pem)
        with self._lock:
            self._tracked.add(item)

        def untrack() -> None:
            with self._lock:
                self._tracked.discard(item)

        return untrack

    def check(self) -> list[str]:
        """Re-verify the tracked certificates, if the trust changed or it is time.

        Report, and return, the names whose certificate no longer passes.
        """
        try:
            roots = self._trust.handshake_roots()
        except PkiError as exc:
            logger.error("cannot re-check connected callers: %s", exc)
            return []
        now = self._clock()
        full = now - self._last_full >= self._full_every_s
        if roots is self._roots and not full:
            return []
        self._roots = roots
        if full:
            self._last_full = now
        with self._lock:
            certs = {(t.name, t.cert_pem) for t in self._tracked}
            reported = set(self._reported)
        revoked: dict[str, str] = {}
        for name, pem in certs:
            if name in reported or name in revoked:
                continue
            try:
                verify_peer(pem, self._trust, usage="client")
            except AuthenticationFailed as exc:
                revoked[name] = exc.reason
            except PkiError as exc:
                logger.error("cannot re-check %s's certificate: %s", name, exc)
        with self._lock:
            self._reported.update(revoked)
        for name, reason in sorted(revoked.items()):
            logger.warning("%s's certificate no longer passes: %s", name, reason)
            self._on_revoked(name, reason)
        return sorted(revoked)

    def start(self) -> RevocationWatch:
        """Check every ``every_s`` seconds on a daemon thread until :meth:`close`."""

        def run() -> None:
            while not self._stop.wait(self._every_s):
                try:
                    self.check()
                except Exception:  # the next tick tries again
                    logger.exception("re-checking the callers' certificates failed")

        self._thread = threading.Thread(
            target=run, name="accord-revocation", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the checking thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
