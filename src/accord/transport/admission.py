"""How many calls each caller may hold open, and how fast it may be refused.

The coordinator's gRPC server runs every call on a thread of one pool. A caller that
opens many calls and sends nothing (or a flood of calls that are refused) must not
take the threads, the CPU or the records that honest participants need, so every
call passes two checks before any byte of its body is read:

- :class:`Admission` bounds the calls open at once, per caller and overall. A call
  beyond its caller's share, or beyond the total, is refused at once (``busy``,
  answered ``RESOURCE_EXHAUSTED`` with a reason), never queued behind the pool. The
  server's pool is sized above the total (see :func:`pool_size`), so the limits,
  not the pool, are what bounds: an honest participant's Subscribe, FetchModel or
  upload always finds a thread.
- :class:`RefusalThrottle` rate-limits *refused* calls per caller with a token
  bucket: each refusal spends a token; a caller without one is refused at once
  (``throttled``) without being checked or recorded one by one (the refusal log
  counts them; see :mod:`~accord.transport.rejections`). An honest participant is
  refused rarely (a late or repeated message), far below the bucket.

Both are pure (no grpc, no I/O) and take an injectable clock, so they are tested
without sockets or sleeps. The limits come from ``[deployment]`` in fed.toml
(:class:`Limits`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from accord.errors import SubmissionRefused

__all__ = ["Admission", "Limits", "RefusalThrottle", "Slot", "pool_size"]

logger = logging.getLogger(__name__)

#: Threads kept free beyond the admitted calls, for answering refusals at once.
SPARE_THREADS = 16
#: Callers whose refusal budget is tracked; the least recently refused go first.
MAX_TRACKED_PEERS = 4096


@dataclass(frozen=True)
class Limits:
    """The coordinator's bounds on calls; see the module docstring.

    ``per_peer``: calls one caller may hold open at once (an honest participant
    holds its task stream and at most one more). ``total``: calls open at once
    overall; None means ``per_peer`` times (participants + 2), room for every
    participant and two admins. ``first_byte_s``: how long a call may stay open
    before its first message arrives; ``idle_s``: how long an upload may pause
    between two messages, or a stream to the caller (a download, a task stream)
    leave one message untaken; either cut, the call is cancelled and recorded.
    ``refusals_per_s`` and ``refusal_burst``: the token bucket of refused calls per
    caller.
    """

    per_peer: int = 4
    total: int | None = None
    first_byte_s: float = 30.0
    idle_s: float = 120.0
    refusals_per_s: float = 2.0
    refusal_burst: int = 50

    def __post_init__(self) -> None:
        if self.per_peer < 1 or (self.total is not None and self.total < 1):
            raise ValueError("call limits must be at least 1")
        if min(self.first_byte_s, self.idle_s, self.refusals_per_s) <= 0:
            raise ValueError("timeouts and the refusal rate must be positive")
        if self.refusal_burst < 1:
            raise ValueError("refusal_burst must be at least 1")

    def total_for(self, participants: int) -> int:
        """The overall bound for a roster of ``participants``."""
        return self.total or self.per_peer * (participants + 2)


def pool_size(limits: Limits, participants: int) -> int:
    """Threads the server needs: every admitted call, plus spares for refusals."""
    return limits.total_for(participants) + SPARE_THREADS


@dataclass(eq=False)
class Slot:
    """One admitted call; :meth:`Admission.leave` frees it (once)."""

    peer: str
    method: str
    cancel: Callable[[], None]
    left: bool = field(default=False, repr=False)


class Admission:
    """Open calls per caller and overall, bounded (thread-safe)."""

    def __init__(self, *, per_peer: int, total: int) -> None:
        self._per_peer = per_peer
        self._total = total
        self._lock = threading.Lock()
        self._open: dict[str, list[Slot]] = {}
        self._count = 0

    def enter(self, peer: str, method: str, cancel: Callable[[], None]) -> Slot:
        """Admit a call of ``peer``, or raise ``busy`` saying which bound it hit.

        ``cancel`` ends the call; :meth:`cancel_peer` uses it (a revoked caller).
        """
        with self._lock:
            mine = self._open.setdefault(peer, [])
            if len(mine) >= self._per_peer:
                held = ", ".join(sorted({s.method for s in mine}))
                raise SubmissionRefused(
                    "busy",
                    f"{peer!r} already holds {len(mine)} open calls ({held}), the "
                    f"most one caller may; finish or cancel one before opening "
                    "another",
                    participant=peer,
                )
            if self._count >= self._total:
                raise SubmissionRefused(
                    "busy",
                    f"the coordinator serves {self._count} calls, its limit; retry "
                    "in a few seconds",
                    participant=peer,
                )
            slot = Slot(peer, method, cancel)
            mine.append(slot)
            self._count += 1
            return slot

    def leave(self, slot: Slot) -> None:
        """Free ``slot``; a second call does nothing."""
        with self._lock:
            if slot.left:
                return
            slot.left = True
            mine = self._open.get(slot.peer, [])
            mine.remove(slot)
            if not mine:
                self._open.pop(slot.peer, None)
            self._count -= 1

    def cancel_peer(self, peer: str, *, keep: Collection[str] = ()) -> int:
        """Cancel the open calls of ``peer`` but those of methods in ``keep``.

        Return how many were cancelled.
        """
        with self._lock:
            slots = [s for s in self._open.get(peer, ()) if s.method not in keep]
        for slot in slots:
            try:
                slot.cancel()
            except Exception:  # a call that ended meanwhile; the others still go
                logger.debug("cancelling a call of %s failed", peer, exc_info=True)
        return len(slots)

    def open_calls(self, peer: str | None = None) -> int:
        """Calls open now, of ``peer`` or in all."""
        with self._lock:
            return self._count if peer is None else len(self._open.get(peer, ()))


@dataclass
class _Bucket:
    tokens: float
    at: float


class RefusalThrottle:
    """A token bucket of refused calls per caller; see the module docstring."""

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_peers: int = MAX_TRACKED_PEERS,
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._max_peers = max_peers
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def check(self, peer: str) -> None:
        """Raise ``throttled`` if ``peer`` has used up its refusals for now."""
        with self._lock:
            bucket = self._refilled(peer)
            if bucket is None or bucket.tokens >= 1.0:
                return
            wait = (1.0 - bucket.tokens) / self._rate
        raise SubmissionRefused(
            "throttled",
            f"too many refused calls from {peer!r}; wait {wait:.1f} s, and fix what "
            "the earlier refusals named before calling again",
            participant=peer,
        )

    def charge(self, peer: str) -> None:
        """``peer`` was just refused: spend one of its tokens."""
        with self._lock:
            bucket = self._refilled(peer)
            if bucket is None:
                bucket = _Bucket(self._burst, self._clock())
                self._buckets[peer] = bucket
                while len(self._buckets) > self._max_peers:
                    self._buckets.popitem(last=False)
            bucket.tokens = max(bucket.tokens - 1.0, 0.0)
            self._buckets.move_to_end(peer)

    def tokens(self, peer: str) -> float:
        """Refusals ``peer`` may still get before it is throttled."""
        with self._lock:
            bucket = self._refilled(peer)
            return self._burst if bucket is None else bucket.tokens

    def _refilled(self, peer: str) -> _Bucket | None:
        bucket = self._buckets.get(peer)
        if bucket is None:
            return None
        now = self._clock()
        bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._rate)
        bucket.at = now
        return bucket
