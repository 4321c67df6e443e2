"""Secure rounds in a simulation: the coordinator gets the mean, never an update.

Dropouts are injected where they happen in a deployment, between the sites and the
coordinator: :class:`Lossy` swallows a site's messages from a given stage on, as a
network or a crashed site would. The secure model is compared with a plain run in
which the same sites are missing, so "the sum is still correct" is measured against
the plain weighted mean, within the encoding's error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("cryptography")

from accord.config import FedConfig, config_from_mapping
from accord.coordinator.executor import (
    Event,
    Executor,
    JobFailed,
    SecAggReply,
    TrainDone,
    TrainJob,
)
from accord.coordinator.runner import Coordinator
from accord.coordinator.transfers import per_round
from accord.params import Params
from accord.secagg.messages import Stage
from accord.simulation.context import build_context
from accord.simulation.engine import simulate
from accord.simulation.inprocess import InProcessExecutor
from accord.store import MemoryStore
from accord.transport.secagg_wire import decode_to_coordinator, encode

STAGES = ["advertise", "share_keys", "masked_input", "consistency", "unmask"]
SITES = [f"site-{i:02d}" for i in range(6)]


def make_config(tmp_path, mode: str = "masking", **extra) -> FedConfig:
    raw = {
        "federation": {"rounds": 2, "seed": 11},
        "data": {"dataset": "digits", "partition": "iid", "sites": 6},
        "task": {"factory": "accord.task.numpy_task:softmax_regression"},
        # Deadlines a slow machine cannot hit: a dropout's timeout passes on the
        # simulated clock of :class:`Lossy`, not on the wall clock.
        "round": {"deadline_s": 120, "quorum": 0.5},
        "evaluation": {"federated": False},
        "simulation": {"workers": 0},
        "secure_aggregation": {"mode": mode, "stage_timeout_s": 60.0},
    }
    for section, values in extra.items():
        raw[section] = {**raw.get(section, {}), **values}
    return config_from_mapping(raw, base_dir=tmp_path)


class SimulatedClock:
    """The coordinator's clock: time passes only while nobody has anything to say."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Lossy:
    """Wraps an executor; ``silent[p] = stage``: p's messages from ``stage`` on vanish.

    With ``plain=True`` it instead turns the updates of the sites that would drop
    before their masked input into failures, which is the plain round with the
    same contributors. When every queued job has answered, the coordinator's wait
    for the silent ones ends at once: ``clock`` jumps by the time it would wait.
    """

    def __init__(
        self,
        inner: Executor,
        silent: Mapping[str, str],
        *,
        plain: bool = False,
        clock: SimulatedClock | None = None,
    ):
        self.inner = inner
        self.silent = dict(silent)
        self.plain = plain
        self.clock = clock
        self.seen: list[SecAggReply] = []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    @property
    def participants(self) -> tuple[str, ...]:
        return self.inner.participants

    def _lost(self, participant: str, stage: str) -> bool:
        cut = self.silent.get(participant)
        return cut is not None and STAGES.index(stage) >= STAGES.index(cut)

    def submit_train(self, round_number: int, jobs: Sequence[TrainJob]) -> None:
        self.inner.submit_train(round_number, jobs)

    def next_event(self, timeout: float | None) -> Event | None:
        event = self.inner.next_event(0 if self.clock else timeout)
        if event is None and self.clock is not None and timeout:
            self.clock.now += timeout  # nothing queued: the wait runs out
        if isinstance(event, SecAggReply):
            self.seen.append(event)
            if self._lost(event.participant, event.stage):
                return None
        if (
            self.plain
            and isinstance(event, TrainDone)
            and self._lost(event.participant, "masked_input")
        ):
            self.inner.release(event)
            return JobFailed(event.participant, event.round, "train", "failed", "gone")
        return event


def run_with(config: FedConfig, silent: Mapping[str, str], *, plain: bool = False):
    ctx = build_context(config)
    initial = ctx.task.init_params(config.federation.seed)
    store = MemoryStore()
    clock = SimulatedClock()
    executor = Lossy(InProcessExecutor(ctx), silent, plain=plain, clock=clock)
    try:
        result = Coordinator(config, executor=executor, store=store, clock=clock).run(
            initial
        )
    finally:
        executor.close()
    return result, store, executor


def max_diff(a: Params, b: Params) -> float:
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def test_secure_run_gives_the_plain_mean(tmp_path):
    plain = simulate(make_config(tmp_path, "off"), store=MemoryStore()).run
    secure = simulate(make_config(tmp_path), store=MemoryStore()).run
    assert [r.status for r in secure.rounds] == ["completed", "completed"]
    assert [r.succeeded for r in secure.rounds] == [6, 6]
    assert max_diff(secure.params, plain.params) < 1e-5
    assert plain.params.digest() != secure.params.digest()  # it did go through the ring


def test_secure_workers_give_the_same_model_as_in_process(tmp_path):
    inproc = simulate(make_config(tmp_path), store=MemoryStore()).run
    pooled = simulate(
        make_config(tmp_path, simulation={"workers": 2}), store=MemoryStore()
    ).run
    assert pooled.params.digest() == inproc.params.digest()


@pytest.mark.parametrize("stage", STAGES)
def test_up_to_n_minus_t_dropouts_at_each_stage_keep_the_sum(tmp_path, stage):
    # Six sites: safe defaults give threshold 5, so one may drop at any stage.
    config = make_config(tmp_path, federation={"rounds": 1})
    silent = {"site-03": stage}
    secure, store, _ = run_with(config, silent)
    plain, _, _ = run_with(
        make_config(tmp_path, "off", federation={"rounds": 1}), silent, plain=True
    )
    (record,) = store.rounds(secure.run_id)
    assert record.status == "completed"
    outcome = {o.participant: o for o in record.outcomes}["site-03"]
    contributed = STAGES.index(stage) > STAGES.index("masked_input")
    assert (outcome.status == "ok") is contributed
    if not contributed:
        assert outcome.status == "timeout" and stage in outcome.reason
    assert secure.rounds[0].succeeded == (6 if contributed else 5)
    assert max_diff(secure.params, plain.params) < 1e-5


@pytest.mark.parametrize("stage", ["share_keys", "masked_input", "unmask"])
def test_too_many_dropouts_abort_cleanly(tmp_path, stage):
    config = make_config(tmp_path, federation={"rounds": 1})
    secure, store, _ = run_with(config, {"site-01": stage, "site-04": stage})
    ctx = build_context(config)
    initial = ctx.task.init_params(config.federation.seed)
    (record,) = store.rounds(secure.run_id)
    assert record.status == "failed"
    assert secure.rounds[0].reason is not None
    assert "secure aggregation aborted" in secure.rounds[0].reason
    assert (
        "threshold" in secure.rounds[0].reason or "rebuild" in secure.rounds[0].reason
    )
    assert secure.params.digest() == initial.digest()  # no partial model
    assert record.checkpoint is None


def test_a_replayed_message_is_refused_and_recorded(tmp_path):
    """A site's masked input sent again under another site's name is refused."""
    config = make_config(tmp_path, federation={"rounds": 1})
    ctx = build_context(config)
    initial = ctx.task.init_params(config.federation.seed)

    class Replaying(Lossy):
        def next_event(self, timeout):
            event = super().next_event(timeout)
            if (
                isinstance(event, SecAggReply)
                and event.stage == "masked_input"
                and event.participant == "site-05"
            ):
                copy = next(
                    e
                    for e in self.seen
                    if e.stage == "masked_input" and e.participant == "site-00"
                )
                return SecAggReply("site-05", event.round, event.stage, copy.payload)
            return event

    store = MemoryStore()
    executor = Replaying(InProcessExecutor(ctx), {})
    try:
        result = Coordinator(config, executor=executor, store=store).run(initial)
    finally:
        executor.close()
    (record,) = store.rounds(result.run_id)
    outcome = {o.participant: o for o in record.outcomes}["site-05"]
    assert outcome.status == "rejected"
    assert "site-00" in outcome.reason
    assert record.status == "completed"  # five of six, above the threshold


@pytest.mark.parametrize("method", ["q8", "q4"])
def test_quantized_masking_keeps_the_sum_through_a_dropout(tmp_path, method):
    # q4 sums at most 7 sites; six fit. One site drops before its masked input.
    extra = {
        "federation": {"rounds": 1},
        "secure_aggregation": {"clip": 0.5, "max_examples": 300},
    }
    silent = {"site-03": "share_keys"}
    fixed, fixed_store, _ = run_with(make_config(tmp_path, **extra), silent)
    packed, packed_store, _ = run_with(
        make_config(tmp_path, compression={"method": method}, **extra), silent
    )
    assert [r.succeeded for r in packed.rounds] == [5]
    # Each site's integer is within one unit (max_weight * clip / m) of its
    # weighted value, so the mean moves by less than 5 units / total weight.
    m = (2 ** (8 if method == "q8" else 4) - 1) // (2 * 6)
    assert 0 < max_diff(packed.params, fixed.params) < 5 * 0.5 / m / 2.0
    # What travelled: the 650 values packed 4 (or 8) to a word, plus the weight
    # word, in the same message frame as the 651 fixed-point words.
    (sent_fixed,) = per_round(fixed_store.events(fixed.run_id))
    (sent_packed,) = per_round(packed_store.events(packed.run_id))
    frame = sent_fixed.sent // 5 - 4 * 651
    per_word = 4 if method == "q8" else 8
    assert sent_packed.sent == 5 * (4 * (-(-650 // per_word) + 1) + frame)
    assert (sent_packed.method, sent_packed.sites) == (method, 5)


def test_a_packed_input_no_honest_site_sends_fails_the_round(tmp_path):
    """A site whose masked input is garbage corrupts the sum: the round says so."""
    config = make_config(
        tmp_path, federation={"rounds": 1}, compression={"method": "q8"}
    )
    ctx = build_context(config)
    initial = ctx.task.init_params(config.federation.seed)

    class Forging(Lossy):
        def next_event(self, timeout):
            event = super().next_event(timeout)
            if (
                isinstance(event, SecAggReply)
                and event.stage == "masked_input"
                and event.participant == "site-02"
            ):
                message = decode_to_coordinator(event.payload, Stage.MASKED_INPUT)
                forged = replace(message, vector=b"\xff" * len(message.vector))
                return replace(event, payload=encode(forged))
            return event

    store = MemoryStore()
    executor = Forging(InProcessExecutor(ctx), {})
    try:
        result = Coordinator(config, executor=executor, store=store).run(initial)
    finally:
        executor.close()
    (record,) = store.rounds(result.run_id)
    assert record.status == "failed"
    assert "exceeds what the contributors" in result.rounds[0].reason
    assert result.params.digest() == initial.digest()
