"""What both sides of one secure-aggregation round agree on before it starts.

A :class:`SecAggConfig` is fixed by the coordinator's round configuration and each
participant's trust store: the run and round ids (bound into every key, signature
and ciphertext, which is what makes a replayed message fail), the roster of
participants with their Ed25519 identity keys (from the federation's PKI, never
from the coordinator's say-so), the length of the ring vector, the threshold and
the neighbour-graph degree. It is validated once, here; the state machines trust it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from accord.secagg.crypto import KEY_BYTES, frame
from accord.secagg.graph import (
    NeighbourGraph,
    build_graph,
    check_threshold,
    safe_defaults,
)

__all__ = ["SecAggConfig", "round_parameters"]


def round_parameters(
    participants: int, *, threshold: int | None, degree: int | None
) -> tuple[int, int]:
    """The ``(threshold, degree)`` of a round of ``participants``; None: the default.

    Defaults come from :func:`~accord.secagg.graph.safe_defaults`; an explicit
    degree alone gets the recommended threshold for its neighbourhood size.
    """
    default_threshold, default_degree = safe_defaults(participants)
    degree = default_degree if degree is None else degree
    if threshold is None:
        threshold = (
            default_threshold if degree == default_degree else 2 * (degree + 1) // 3 + 1
        )
    return threshold, degree


@dataclass(frozen=True, slots=True)
class SecAggConfig:
    """The round's public parameters; build it with :meth:`create`.

    ``identities`` holds (participant id, raw Ed25519 public key) pairs sorted by
    id; the sort order is the protocol's order of participants (it decides the sign
    of each pairwise mask and the index of each share).
    """

    run_id: str
    round_number: int
    identities: tuple[tuple[str, bytes], ...]
    vector_size: int
    threshold: int
    degree: int
    _keys: Mapping[str, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_keys", dict(self.identities))
        ids = [pid for pid, _ in self.identities]
        if ids != sorted(set(ids)):
            raise ValueError("identities must be sorted by id, each id once")
        for pid, key in self.identities:
            if not pid or len(key) != KEY_BYTES:
                raise ValueError(
                    f"participant {pid!r} needs a non-empty id and a raw "
                    f"{KEY_BYTES}-byte Ed25519 public key"
                )
        if self.vector_size < 1:
            raise ValueError("vector_size must be at least 1")
        if self.round_number < 0:
            raise ValueError("round_number must not be negative")
        check_threshold(self.threshold, degree=self.degree, participants=len(ids))

    @classmethod
    def create(
        cls,
        *,
        run_id: str,
        round_number: int,
        identities: Mapping[str, bytes],
        vector_size: int,
        threshold: int | None = None,
        degree: int | None = None,
    ) -> SecAggConfig:
        """Build a config; a ``threshold`` or ``degree`` left None takes its default.

        Defaults come from :func:`~accord.secagg.graph.safe_defaults`; an explicit
        degree alone gets the recommended threshold for its neighbourhood size.
        """
        threshold, degree = round_parameters(
            len(identities), threshold=threshold, degree=degree
        )
        return cls(
            run_id=run_id,
            round_number=round_number,
            identities=tuple(sorted((str(p), bytes(k)) for p, k in identities.items())),
            vector_size=vector_size,
            threshold=threshold,
            degree=degree,
        )

    @property
    def participants(self) -> tuple[str, ...]:
        """Participant ids in protocol order."""
        return tuple(pid for pid, _ in self.identities)

    def identity_keys(self) -> dict[str, bytes]:
        """Participant id to raw Ed25519 public key."""
        return dict(self.identities)

    def identity_key(self, participant: str) -> bytes:
        """The raw Ed25519 public key of ``participant``; KeyError off the roster."""
        return self._keys[participant]

    def order(self) -> dict[str, int]:
        """Participant id to its position in protocol order."""
        return {pid: i for i, (pid, _) in enumerate(self.identities)}

    def graph(self) -> NeighbourGraph:
        """The round's neighbour graph (the same on every side)."""
        seed = frame("graph", self.run_id, self.round_number)
        return build_graph(self.participants, degree=self.degree, seed=seed)
