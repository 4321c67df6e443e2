"""The simulation engine's adversary: malicious sites' updates rewritten in flight.

:class:`AdversarialExecutor` wraps the executor of a simulation with an update
attack in ``[attack]``. Every training update of a round passes through it, which
is what lets omniscient attacks (ALIE, IPM, min-max, min-sum) see the round's
honest updates, as their threat model grants: a malicious site's own update is
held until every honest participant of the round has answered (or failed), then
the crafted updates are released, in selection order. Non-omniscient attacks (sign
flipping, scaling, Gaussian noise) rewrite a malicious update as it arrives. The
maths is :mod:`accord.attacks.updates`; this module only routes updates, and
replaces the example count they claim where ``[attack] examples`` sets one (an
attacker's plausible lie: the count weighs its update and nobody can check it).

It lives in the simulation engine, never in a participant or the coordinator:
``accord coordinator`` and ``accord participant`` refuse ``[attack]``. Every
update is copied on arrival (the inner executor's buffer is released at once), so
holding some back never pins a buffer the next job would reuse.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from accord.attacks.updates import UpdateAttack
from accord.config import AttackConfig
from accord.coordinator.executor import Event, Executor, JobFailed, TrainDone, TrainJob
from accord.params import Params

__all__ = ["AdversarialExecutor", "update_attack"]

logger = logging.getLogger(__name__)

#: Salt of the Gaussian attack's draws, apart from every other use of the seed.
_SALT = 0x6A055


def update_attack(config: AttackConfig) -> UpdateAttack:
    """The update attack ``[attack]`` describes."""
    return UpdateAttack(
        kind=config.kind,
        scale=config.scale,
        noise_std=config.noise_std,
        z=config.z,
        epsilon=config.epsilon,
        direction=config.direction,
        gamma_init=config.gamma_init,
        tolerance=config.tolerance,
        backdoor=config.backdoor is not None,
    )


@dataclass
class _RoundState:
    number: int
    selected: tuple[str, ...]
    waiting: set[str]  # honest participants that have not answered yet
    honest: list[np.ndarray] = field(default_factory=list)
    held: dict[str, TrainDone] = field(default_factory=dict)
    released: bool = False


class AdversarialExecutor:
    """An :class:`Executor` whose malicious participants send crafted updates."""

    def __init__(
        self,
        inner: Executor,
        *,
        attack: UpdateAttack,
        malicious: Sequence[str],
        seed: int,
        examples: int | None = None,
    ) -> None:
        self._inner = inner
        self._examples = examples
        self._attack = attack
        self._malicious = frozenset(malicious)
        self._seed = seed
        self._round: _RoundState | None = None
        self._ready: list[TrainDone] = []

    @property
    def participants(self) -> tuple[str, ...]:
        """The inner executor's participants."""
        return self._inner.participants

    def publish(self, params: Params, *, digest: str | None = None) -> None:
        """Publish to the inner executor."""
        self._inner.publish(params, digest=digest)

    def submit_train(self, round_number: int, jobs: Sequence[TrainJob]) -> None:
        """Start the jobs; remember who is honest in this round."""
        selected = tuple(j.participant for j in jobs)
        self._round = _RoundState(
            round_number,
            selected,
            waiting={p for p in selected if p not in self._malicious},
        )
        self._ready.clear()
        self._inner.submit_train(round_number, jobs)

    def submit_eval(self, round_number: int, participants: Sequence[str]) -> None:
        """Evaluation is left alone."""
        self._inner.submit_eval(round_number, participants)

    def identity_keys(self, participants: Sequence[str]) -> Mapping[str, bytes]:
        """The inner executor's keys."""
        return self._inner.identity_keys(participants)

    def submit_secagg(
        self, round_number: int, stage: str, payloads: Mapping[str, bytes]
    ) -> None:
        """Secure rounds are never attacked at the update level (config refuses)."""
        self._inner.submit_secagg(round_number, stage, payloads)

    def next_event(self, timeout: float | None) -> Event | None:
        """The next event, with malicious updates crafted; None while some are held."""
        if self._ready:
            return self._ready.pop(0)
        event = self._inner.next_event(timeout)
        rnd = self._round
        if rnd is None or event is None or event.round != rnd.number:
            return event
        if isinstance(event, JobFailed) and event.kind == "train":
            rnd.waiting.discard(event.participant)
            self._maybe_release(rnd)
            return event
        if not isinstance(event, TrainDone):
            return event
        own = replace(
            event, update=event.update.copy(), values_checked=False, norm=None
        )
        self._inner.release(event)
        if event.participant not in self._malicious:
            rnd.honest.append(own.update.flatten())
            rnd.waiting.discard(event.participant)
            self._maybe_release(rnd)
            return own
        if not self._attack.omniscient:
            return self._craft(rnd, [own])[0]
        rnd.held[own.participant] = own
        self._maybe_release(rnd)
        return self._ready.pop(0) if self._ready else None

    def _maybe_release(self, rnd: _RoundState) -> None:
        if rnd.waiting or rnd.released or not self._attack.omniscient:
            return
        expected = [p for p in rnd.selected if p in self._malicious]
        if len(rnd.held) < len(expected):
            return  # some malicious site still trains; craft once all are in
        rnd.released = True
        held = [rnd.held[p] for p in expected if p in rnd.held]
        self._ready.extend(self._craft(rnd, held))

    def _craft(self, rnd: _RoundState, own: list[TrainDone]) -> list[TrainDone]:
        if not own:
            return []
        spec = own[0].update.spec
        rows = np.stack([o.update.flatten() for o in own]).astype(np.float64)
        honest = np.stack(rnd.honest) if rnd.honest else np.zeros((0, rows.shape[1]))
        index = self.participants.index(own[0].participant)
        rng = np.random.default_rng([self._seed, rnd.number, index, _SALT])
        crafted = self._attack.craft(rows, honest, n_round=len(rnd.selected), rng=rng)
        out = []
        for done, vec in zip(own, crafted, strict=True):
            update = Params.unflatten(spec, vec)
            out.append(
                replace(
                    done,
                    update=update,
                    update_digest=update.digest(),
                    num_examples=self._examples or done.num_examples,
                )
            )
        logger.debug(
            "round %d: %s sent %s updates", rnd.number, len(out), self._attack.kind
        )
        return out

    def release(self, event: TrainDone) -> None:
        """Every event handed out is this executor's own copy: nothing to free."""

    def abandon(self, round_number: int, participants: Sequence[str]) -> None:
        """Stop waiting for these participants, here and in the inner executor."""
        rnd = self._round
        if rnd is not None and rnd.number == round_number:
            rnd.waiting.difference_update(participants)
            for p in participants:
                rnd.held.pop(p, None)
        self._inner.abandon(round_number, participants)

    def close(self) -> None:
        """Close the inner executor."""
        self._inner.close()
