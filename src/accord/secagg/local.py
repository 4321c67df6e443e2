"""One secure-aggregation round run in one process: the reference driver.

:func:`run_local_round` moves the messages between one :class:`SecAggServer` and
the participants' :class:`SecAggParticipant` s in stage order, the way a round loop
does over a transport, but with plain function calls. Tests use it to check the
protocol end to end (``drop`` removes participants at any stage), the W5 benchmark
to time each stage, and the simulation engine can use it as is.

A participant that aborts (:class:`~accord.errors.SecAggAborted`) is treated as a
dropout, as it would be over a network; its error is kept in
:attr:`LocalRun.aborted`. A coordinator abort propagates.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from accord.errors import SecAggAborted
from accord.secagg.config import SecAggConfig
from accord.secagg.crypto import Ed25519PrivateKey
from accord.secagg.mask import MaskGenerator, RingVector
from accord.secagg.messages import Stage, ToCoordinator
from accord.secagg.participant import SecAggParticipant
from accord.secagg.server import SecAggResult, SecAggServer

__all__ = ["LocalRun", "StageTime", "run_local_round"]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class StageTime:
    """Seconds spent in one stage.

    By all participants together, by the slowest one, and by the coordinator
    (receiving every message and closing the stage).
    """

    participants_total_s: float
    participants_max_s: float
    coordinator_s: float


@dataclass(frozen=True, slots=True)
class LocalRun:
    """The outcome of :func:`run_local_round`."""

    result: SecAggResult
    timings: dict[Stage, StageTime]
    aborted: dict[str, SecAggAborted] = field(default_factory=dict)


def run_local_round(
    config: SecAggConfig,
    identities: Mapping[str, Ed25519PrivateKey],
    inputs: Mapping[str, RingVector],
    *,
    drop: Mapping[Stage, Collection[str]] | None = None,
    entropy: Mapping[str, Callable[[int], bytes]] | None = None,
) -> LocalRun:
    """Run one round among the participants of ``inputs``; return the unmasked sum.

    ``drop[stage]`` lists participants that go silent from ``stage`` on (they send
    nothing for it or after it). Roster members without an input never show up.
    """
    masks = MaskGenerator()
    server = SecAggServer(config, masks=masks)
    parts = {
        p: SecAggParticipant(
            config,
            p,
            identities[p],
            masks=masks,
            entropy=entropy[p] if entropy and p in entropy else os.urandom,
        )
        for p in inputs
    }
    alive = set(parts)
    timings: dict[Stage, StageTime] = {}
    aborted: dict[str, SecAggAborted] = {}

    def stage(
        name: Stage,
        produce: Callable[[SecAggParticipant], ToCoordinator],
        close: Callable[[], _T],
    ) -> _T:
        alive.difference_update((drop or {}).get(name, ()))
        spent: list[float] = []
        coordinator = 0.0
        for pid in config.participants:
            if pid not in alive:
                continue
            start = time.perf_counter()
            try:
                message = produce(parts[pid])
            except SecAggAborted as exc:
                aborted[pid] = exc
                alive.discard(pid)
                continue
            middle = time.perf_counter()
            server.receive(message)
            spent.append(middle - start)
            coordinator += time.perf_counter() - middle
        start = time.perf_counter()
        answer = close()
        coordinator += time.perf_counter() - start
        timings[name] = StageTime(sum(spent), max(spent, default=0.0), coordinator)
        return answer

    directory = stage(Stage.ADVERTISE, lambda p: p.advertise(), server.key_directory)
    deliveries = stage(
        Stage.SHARE_KEYS,
        lambda p: p.share_keys(directory),
        server.deliver_shares,
    )
    survivors = stage(
        Stage.MASKED_INPUT,
        lambda p: p.masked_input(
            deliveries[p.participant_id], inputs[p.participant_id]
        ),
        server.survivor_list,
    )
    signatures = stage(
        Stage.CONSISTENCY,
        lambda p: p.consistency_check(survivors),
        server.survivor_signatures,
    )
    result = stage(
        Stage.UNMASK,
        lambda p: p.unmask(signatures),
        server.aggregate,
    )
    return LocalRun(result, timings, aborted)
