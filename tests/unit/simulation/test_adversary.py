"""The adversarial executor: omniscient attackers wait for the honest, then craft."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from accord.attacks.updates import UpdateAttack, alie_z
from accord.coordinator.executor import Event, JobFailed, TrainDone, TrainJob
from accord.params import Params
from accord.simulation.adversary import AdversarialExecutor
from accord.task.protocol import TrainConfig

NAMES = ("a", "b", "c", "d", "e")


class ScriptedExecutor:
    """Answers each training job, in submission order, from a fixed table."""

    def __init__(self, updates: Mapping[str, np.ndarray], fail: str = "") -> None:
        self._updates = updates
        self._fail = fail
        self._queue: list[Event] = []
        self.released: list[str] = []
        self.buffer = Params({"w": np.zeros(4, np.float32)})

    @property
    def participants(self) -> tuple[str, ...]:
        return NAMES

    def publish(self, params: Params, *, digest: str | None = None) -> None:
        pass

    def submit_train(self, round_number: int, jobs: Sequence[TrainJob]) -> None:
        for job in jobs:
            p = job.participant
            if p == self._fail:
                self._queue.append(JobFailed(p, round_number, "train", "failed", "x"))
                continue
            self.buffer["w"][:] = self._updates[p]  # one reused buffer, as in-process
            self._queue.append(
                TrainDone(p, round_number, self.buffer.copy(), 10, 0.1, {"loss": 1.0})
            )

    def submit_eval(self, round_number: int, participants: Sequence[str]) -> None:
        pass

    def identity_keys(self, participants: Sequence[str]) -> Mapping[str, bytes]:
        return {}

    def submit_secagg(
        self, round_number: int, stage: str, payloads: Mapping[str, bytes]
    ) -> None:
        pass

    def next_event(self, timeout: float | None) -> Event | None:
        return self._queue.pop(0) if self._queue else None

    def release(self, event: TrainDone) -> None:
        self.released.append(event.participant)

    def abandon(self, round_number: int, participants: Sequence[str]) -> None:
        pass

    def close(self) -> None:
        pass


def _updates() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {p: rng.normal(size=4).astype(np.float32) for p in NAMES}


def _jobs() -> list[TrainJob]:
    return [
        TrainJob(p, TrainConfig(epochs=1, batch_size=8, learning_rate=0.1))
        for p in NAMES
    ]


def _drain(ex: AdversarialExecutor) -> list[Event]:
    out: list[Event] = []
    for _ in range(20):
        event = ex.next_event(0.0)
        if event is not None:
            out.append(event)
    return out


def test_alie_attackers_are_held_until_the_honest_answered_then_crafted() -> None:
    updates = _updates()
    inner = ScriptedExecutor(updates)
    ex = AdversarialExecutor(
        inner, attack=UpdateAttack("alie"), malicious=("a", "c"), seed=0
    )

    ex.submit_train(1, _jobs())
    events = _drain(ex)

    order = [e.participant for e in events]
    assert order == ["b", "d", "e", "a", "c"]  # a and c wait for the honest three
    honest = np.stack([updates[p] for p in ("b", "d", "e")]).astype(np.float64)
    expected = honest.mean(0) + alie_z(5, 2) * honest.std(0)
    crafted = {e.participant: e for e in events if isinstance(e, TrainDone)}
    for p in ("a", "c"):
        np.testing.assert_allclose(crafted[p].update["w"], expected, rtol=1e-6)
        assert crafted[p].update_digest == crafted[p].update.digest()
        assert crafted[p].num_examples == 10
    np.testing.assert_array_equal(crafted["b"].update["w"], updates["b"])
    assert sorted(inner.released) == sorted(NAMES)  # every inner buffer freed at once


def test_a_failed_honest_site_does_not_keep_the_attackers_waiting() -> None:
    inner = ScriptedExecutor(_updates(), fail="e")
    ex = AdversarialExecutor(
        inner, attack=UpdateAttack("ipm"), malicious=("a",), seed=0
    )

    ex.submit_train(1, _jobs())
    events = _drain(ex)

    assert [e.participant for e in events] == ["b", "c", "d", "e", "a"]
    assert isinstance(events[3], JobFailed)


def test_scaling_rewrites_an_update_as_it_arrives() -> None:
    updates = _updates()
    ex = AdversarialExecutor(
        ScriptedExecutor(updates),
        attack=UpdateAttack("scaling"),
        malicious=("a",),
        seed=0,
    )

    ex.submit_train(1, _jobs())
    first = ex.next_event(0.0)

    assert isinstance(first, TrainDone) and first.participant == "a"
    np.testing.assert_allclose(first.update["w"], 5 * updates["a"], rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_gaussian_updates_repeat_with_the_seed(seed: int) -> None:
    def run() -> np.ndarray:
        ex = AdversarialExecutor(
            ScriptedExecutor(_updates()),
            attack=UpdateAttack("gaussian"),
            malicious=("b",),
            seed=seed,
        )
        ex.submit_train(3, _jobs())
        events = _drain(ex)
        done = [e for e in events if isinstance(e, TrainDone) and e.participant == "b"]
        return np.asarray(done[0].update["w"])

    np.testing.assert_array_equal(run(), run())
