"""Shared helpers for the secure-aggregation tests, as fixtures.

Seeded identities and configs, and a harness that drives one round stage by stage,
so that a test can tamper with messages between stages. The helper fixtures are
session-scoped (they only hand out functions), which hypothesis accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import SimpleNamespace

import numpy as np
import pytest

from accord.secagg.config import SecAggConfig
from accord.secagg.crypto import Ed25519PrivateKey, identity_public
from accord.secagg.messages import (
    KeyDirectory,
    SharesDelivery,
    SurvivorList,
    SurvivorSignatures,
)
from accord.secagg.participant import SecAggParticipant
from accord.secagg.server import SecAggResult, SecAggServer


def seeded_entropy(seed: int, name: str) -> Callable[[int], bytes]:
    """A deterministic stand-in for os.urandom, distinct per participant."""
    return np.random.default_rng([seed, *name.encode()]).bytes


def make_identities(n: int, seed: int = 0) -> dict[str, Ed25519PrivateKey]:
    rng = np.random.default_rng(seed)
    return {
        f"site{i:02d}": Ed25519PrivateKey.from_private_bytes(rng.bytes(32))
        for i in range(n)
    }


def make_config(
    identities: dict[str, Ed25519PrivateKey],
    size: int,
    *,
    threshold: int | None = None,
    degree: int | None = None,
    round_number: int = 1,
    run_id: str = "run-1",
) -> SecAggConfig:
    return SecAggConfig.create(
        run_id=run_id,
        round_number=round_number,
        identities={p: identity_public(k) for p, k in identities.items()},
        vector_size=size,
        threshold=threshold,
        degree=degree,
    )


def ring_sum(vectors: Iterable[np.ndarray], size: int) -> np.ndarray:
    total = np.zeros(size, dtype=np.uint32)
    for v in vectors:
        np.add(total, v, out=total)
    return total


class Harness:
    """One round's coordinator and participants, driven one stage at a time.

    Each step takes the set of participants that act (default: all still in) and
    returns the coordinator's answer, so a test can alter messages in between.
    """

    def __init__(
        self,
        n: int = 5,
        size: int = 16,
        *,
        threshold: int | None = None,
        degree: int | None = None,
        seed: int = 0,
        round_number: int = 1,
    ) -> None:
        self.identities = make_identities(n, seed)
        self.config = make_config(
            self.identities,
            size,
            threshold=threshold,
            degree=degree,
            round_number=round_number,
        )
        self.server = SecAggServer(self.config)
        self.parts = {
            p: SecAggParticipant(self.config, p, k, entropy=seeded_entropy(seed, p))
            for p, k in self.identities.items()
        }
        rng = np.random.default_rng(seed)
        self.inputs = {
            p: rng.integers(0, 2**32, size, dtype=np.uint32) for p in self.parts
        }

    def _who(self, who: Iterable[str] | None) -> list[str]:
        return list(self.parts) if who is None else list(who)

    def advertise(self, who: Iterable[str] | None = None) -> KeyDirectory:
        for p in self._who(who):
            self.server.receive(self.parts[p].advertise())
        return self.server.key_directory()

    def share(
        self, directory: KeyDirectory, who: Iterable[str] | None = None
    ) -> dict[str, SharesDelivery]:
        for p in self._who(who):
            self.server.receive(self.parts[p].share_keys(directory))
        return self.server.deliver_shares()

    def masked(
        self, deliveries: dict[str, SharesDelivery], who: Iterable[str] | None = None
    ) -> SurvivorList:
        for p in self._who(who):
            msg = self.parts[p].masked_input(deliveries[p], self.inputs[p])
            self.server.receive(msg)
        return self.server.survivor_list()

    def consistency(
        self, survivors: SurvivorList, who: Iterable[str] | None = None
    ) -> SurvivorSignatures:
        for p in self._who(who):
            self.server.receive(self.parts[p].consistency_check(survivors))
        return self.server.survivor_signatures()

    def unmask(
        self, signed: SurvivorSignatures, who: Iterable[str] | None = None
    ) -> SecAggResult:
        for p in self._who(who):
            self.server.receive(self.parts[p].unmask(signed))
        return self.server.aggregate()

    def expected(self, contributors: Iterable[str]) -> np.ndarray:
        return ring_sum((self.inputs[p] for p in contributors), self.config.vector_size)


@pytest.fixture
def harness() -> Harness:
    return Harness()


@pytest.fixture(scope="session")
def make_harness() -> type[Harness]:
    return Harness


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """The helper functions: make_identities, make_config, ring_sum, seeded_entropy."""
    return SimpleNamespace(
        make_identities=make_identities,
        make_config=make_config,
        ring_sum=ring_sum,
        seeded_entropy=seeded_entropy,
    )
