"""The neighbour graph: who masks with whom and who holds whose shares.

SecAgg (Bonawitz et al. 2017) pairs every participant with every other one: each
participant expands ``n - 1`` pairwise masks and deals shares to all ``n``, and the
coordinator's work grows with ``n^2``. SecAgg+ (Bell et al. 2020) replaces the
complete graph by a sparse random graph of degree ``k = O(log n)``: a participant
masks only with its ``k`` neighbours and deals its shares to its closed
neighbourhood (the neighbours and itself, ``k + 1`` holders), with a threshold
``t`` out of those ``k + 1``. Privacy and dropout recovery then hold with
overwhelming probability for a random graph the adversary cannot choose.

The graph here is Harary-like, as in Bell et al.: participants are placed on a ring
in a random order and each is joined to the ``k / 2`` nearest on either side (so
``k`` is even and every neighbourhood has the same size). The order is derived from
the run and round ids (SHA-256, then a numpy ``Generator``): both sides compute the
same graph without exchanging it, and it changes every round. This randomness is
public by design, it only needs to be unpredictable *before* the round's
participants are fixed, not secret.

:func:`safe_defaults` picks the complete graph up to ``COMPLETE_GRAPH_MAX``
participants and ``k = 2 * ceil(1.5 * log2 n)`` above, with
``t = floor(2 * holders / 3) + 1``. :func:`check_threshold` refuses any ``t`` at
or below half of the holders, with the reason.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

import numpy as np

from accord.errors import ConfigError

__all__ = [
    "COMPLETE_GRAPH_MAX",
    "NeighbourGraph",
    "build_graph",
    "check_threshold",
    "safe_defaults",
]

#: Up to this many participants, the default graph is complete (plain SecAgg).
COMPLETE_GRAPH_MAX = 32
#: Most (participant, alive set) answers a graph's :meth:`NeighbourGraph.holders` keeps.
_HOLDERS_MEMO = 4096
#: Fewer participants than this cannot hide anyone: with two, each one's update is
#: the released sum minus its own.
MIN_PARTICIPANTS = 3


@dataclass(frozen=True, slots=True)
class NeighbourGraph:
    """An undirected graph over participant ids, in roster order.

    Immutable: :func:`build_graph` hands the same graph to every side of a round
    in a process (it is a pure function of the roster, degree and seed), and
    :meth:`holders` remembers its answers.
    """

    participants: tuple[str, ...]
    neighbours: Mapping[str, frozenset[str]]
    _holders: dict[tuple[str, frozenset[str] | None], tuple[str, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.neighbours, MappingProxyType):
            frozen = MappingProxyType(dict(self.neighbours))
            object.__setattr__(self, "neighbours", frozen)

    @property
    def degree(self) -> int:
        """Neighbours of each participant (every participant has the same number)."""
        return len(self.neighbours[self.participants[0]]) if self.participants else 0

    @property
    def complete(self) -> bool:
        """True when everybody neighbours everybody (plain SecAgg)."""
        return self.degree == len(self.participants) - 1

    def of(self, participant: str) -> frozenset[str]:
        """The neighbours of ``participant`` (never itself)."""
        return self.neighbours[participant]

    def holders(
        self, participant: str, alive: frozenset[str] | None = None
    ) -> list[str]:
        """``participant`` and its neighbours (those in ``alive``), in roster order.

        These are who hold shares of its secrets; share ``i`` goes to the ``i``-th.
        """
        known = self._holders.get((participant, alive))
        if known is None:
            closed = self.neighbours[participant] | {participant}
            if alive is not None:
                closed = frozenset(p for p in closed if p in alive or p == participant)
            known = tuple(p for p in self.participants if p in closed)
            if len(self._holders) >= _HOLDERS_MEMO:
                self._holders.clear()
            self._holders[(participant, alive)] = known
        return list(known)


def safe_defaults(participants: int) -> tuple[int, int]:
    """Recommended ``(threshold, degree)`` for ``participants`` participants.

    Complete graph up to :data:`COMPLETE_GRAPH_MAX`; above, an even degree of about
    ``3 log2 n`` (Bell et al. show ``O(log n)`` suffices). The threshold is just over
    two thirds of the holders: above one half, which the consistency check needs,
    with a margin against colluding participants, and it tolerates up to a third of
    each neighbourhood dropping out.
    """
    if participants < MIN_PARTICIPANTS:
        raise ConfigError(
            f"secure aggregation needs at least {MIN_PARTICIPANTS} participants; "
            f"with {participants}, the released sum reveals each update to the others",
            key="secure_aggregation",
        )
    degree = participants - 1
    if participants > COMPLETE_GRAPH_MAX:
        degree = min(degree, 2 * math.ceil(1.5 * math.log2(participants)))
    holders = degree + 1
    return 2 * holders // 3 + 1, degree


def check_threshold(threshold: int, *, degree: int, participants: int) -> None:
    """Raise :class:`ConfigError` unless ``threshold`` is safe for this graph.

    Every participant's secrets are shared among ``degree + 1`` holders. With a
    threshold at or below half of them, a coordinator could tell one half of the
    survivors that a participant dropped out (and collect shares of its masking key)
    and the other half that it survived (and collect shares of its self-mask),
    unmask its update alone, and still pass the consistency check.
    """
    if participants < MIN_PARTICIPANTS:
        safe_defaults(participants)  # raises with the explanation
    if not 2 <= degree <= participants - 1:
        raise ConfigError(
            f"degree {degree} must be in 2..{participants - 1} for {participants} "
            "participants",
            key="secure_aggregation.degree",
        )
    if degree < participants - 1 and degree % 2:
        raise ConfigError(
            f"degree {degree} is odd; the neighbour graph joins each participant "
            f"to degree/2 others on each side of a ring. Use {degree + 1}, or "
            f"{participants - 1} for the complete graph",
            key="secure_aggregation.degree",
        )
    holders = degree + 1
    where = (
        f"{participants} participants"
        if holders == participants
        else f"each neighbourhood of {holders} share holders (degree {degree} + 1)"
    )
    if threshold > holders:
        raise ConfigError(
            f"threshold {threshold} exceeds {where}: no secret could ever be rebuilt",
            key="secure_aggregation.threshold",
        )
    if 2 * threshold <= holders:
        raise ConfigError(
            f"threshold {threshold} is at most half of {where}. Two disjoint halves "
            "could then each rebuild secrets, so a coordinator could show one half a "
            "participant as dropped and the other as surviving, obtain both its "
            "masks and learn its update. Use at least "
            f"{holders // 2 + 1} (recommended: {2 * holders // 3 + 1})",
            key="secure_aggregation.threshold",
        )


def build_graph(
    participants: Sequence[str], *, degree: int, seed: bytes
) -> NeighbourGraph:
    """The Harary-like random graph of ``degree`` over ``participants``.

    ``degree == len(participants) - 1`` gives the complete graph; otherwise the
    degree must be even. ``seed`` (any bytes, normally the run and round ids)
    determines the random order. The graph is a pure function of its arguments,
    so the last few are remembered: every participant a simulation process hosts
    and the coordinator of a round share one (building it is a permutation and
    ``n * degree`` set insertions, a millisecond at 100 participants).
    """
    return _build_graph(tuple(participants), degree, bytes(seed))


@lru_cache(maxsize=8)
def _build_graph(ids: tuple[str, ...], degree: int, seed: bytes) -> NeighbourGraph:
    n = len(ids)
    if len(set(ids)) != n:
        raise ValueError("participant ids must be unique")
    if degree >= n - 1:
        everyone = frozenset(ids)
        return NeighbourGraph(ids, {p: everyone - {p} for p in ids})
    if degree < 2 or degree % 2:
        raise ValueError(f"degree must be even and at least 2, not {degree}")
    entropy = int.from_bytes(hashlib.sha256(seed).digest(), "big")
    ring = np.random.default_rng(entropy).permutation(n)
    sets: dict[str, set[str]] = {p: set() for p in ids}
    for pos in range(n):
        me = ids[int(ring[pos])]
        for step in range(1, degree // 2 + 1):
            other = ids[int(ring[(pos + step) % n])]
            sets[me].add(other)
            sets[other].add(me)
    return NeighbourGraph(ids, {p: frozenset(s) for p, s in sets.items()})
