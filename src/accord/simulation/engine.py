"""``accord simulate``: a whole federation on this machine, recorded in the store.

It builds the sites' data and the task, starts the executor (warm worker processes,
Ray actors with ``engine = "ray"``, or in-process with ``workers = 0``), runs the
coordinator's round loop and, when asked, trains the pooled and site-alone baselines
for comparison. The round logic is the one a deployment runs; only the executor
differs. A run to resume is leased first
(:meth:`~accord.store.protocol.RunStore.lease_run`): one another process is serving
is refused before any worker starts, as is one whose configuration or data changed
since it started (the data's digest is recorded with each new run,
:mod:`accord.data.digest`). Before round 1 each site profiles its training rows
(``[profile]``, :mod:`accord.simulation.profiling`): the data contract and its
drift flags are recorded with the run and in its ledger, and with ``[profile]
refuse`` a flagged federation does not start.

Interrupted (Ctrl-C), the round loop marks the run aborted after its last recorded
round and the executor stops its workers (which ignore SIGINT themselves, so that
the terminal's Ctrl-C reaches only this process's handler): the run resumes with
``resume=RUN_ID``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accord.config import FedConfig
from accord.coordinator.contract import record_contract, refuse_if_flagged
from accord.coordinator.executor import Executor
from accord.coordinator.lineage import LedgerSetup
from accord.coordinator.observer import RunObserver
from accord.coordinator.record_privacy import check_task
from accord.coordinator.resume import check_resumable
from accord.coordinator.runner import Coordinator, RunResult
from accord.coordinator.strategy import published_spec
from accord.data.contract import DataContract
from accord.data.digest import check_data_digest, data_digest, record_data_digest
from accord.evaluation.metrics import evaluate
from accord.params import Params
from accord.simulation.baselines import Comparison, compare
from accord.simulation.context import SimContext, build_context
from accord.simulation.heap import release_heap, settle_heap
from accord.simulation.inprocess import InProcessExecutor
from accord.simulation.pool import ProcessExecutor, warm_up
from accord.simulation.root import root_source
from accord.store.checkpoint import CheckpointStore
from accord.store.protocol import RunStore

__all__ = ["SimulationResult", "simulate"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """The run, the baseline comparison when it was asked for, the attackers."""

    run: RunResult
    comparison: Comparison | None
    #: ``[attack]``'s malicious sites (empty without an attack).
    malicious: tuple[str, ...] = ()


def _executor(
    config: FedConfig,
    ctx: SimContext,
    initial: Params,
    ckks_secret: bytes | None,
    clock: Callable[[], float],
) -> Executor:
    if config.simulation.workers == 0:
        return InProcessExecutor(
            ctx,
            ckks_secret=ckks_secret,
            compression=config.compression,
            seed=config.federation.seed,
        )
    if config.simulation.engine == "ray":
        from accord.simulation.ray_pool import RayExecutor

        return RayExecutor(
            config,
            ctx.participants,
            published_spec(config.strategy, initial.spec),
            workers=config.simulation.workers,
            clock=clock,
        )
    return ProcessExecutor(
        config,
        ctx.participants,
        published_spec(config.strategy, initial.spec),
        workers=config.simulation.workers,
        ckks_secret=ckks_secret,
        clock=clock,
    )


def _adversary(config: FedConfig, ctx: SimContext, executor: Executor) -> Executor:
    """The executor, wrapped so that ``[attack]``'s malicious updates are crafted."""
    attack = config.attack
    if attack is None or not attack.in_flight:
        return executor
    from accord.simulation.adversary import AdversarialExecutor, update_attack

    logger.info("attack %s by %s", attack.kind, ", ".join(ctx.malicious))
    return AdversarialExecutor(
        executor,
        attack=update_attack(attack),
        malicious=ctx.malicious,
        seed=config.federation.seed,
        examples=attack.examples,
    )


def _central_eval(ctx: SimContext) -> Callable[[Params], Mapping[str, float]]:
    """Scores on the central test set; with a backdoor, its attack success rate."""

    def central(params: Params) -> Mapping[str, float]:
        scores = dict(evaluate(ctx.task, params, ctx.data.test))
        if ctx.trigger is not None:
            from accord.attacks.data import attack_success_rate

            scores["backdoor_success"] = attack_success_rate(
                ctx.task, params, ctx.data.test, ctx.trigger
            )
        return scores

    return central


def _job_time(config: FedConfig, ctx: SimContext) -> Callable[[str], float] | None:
    """The virtual clock's job durations, when the run is timed on it.

    An async run needs it to order updates; a synchronous run with ``[simulation]
    slowdown`` records its rounds on it too, so the two compare. Others: None
    (their records stay as they were).
    """
    if config.round.mode != "async" and not config.simulation.slowdown:
        return None
    from accord.simulation.timing import job_times

    return job_times(config, {s.name: len(s.train) for s in ctx.data.sites})


def _key_holder(config: FedConfig) -> tuple[bytes | None, bytes | None]:
    """(secret, public) CKKS contexts for a ckks run: the engine is the key holder."""
    if config.secure_aggregation.mode != "ckks":
        return None, None
    from accord.secagg.ckks_keys import KeyHolder

    holder = KeyHolder.create()
    return holder.secret_context, holder.public_context


def simulate(
    config: FedConfig,
    *,
    store: RunStore,
    checkpoint_dir: Path | None = None,
    observer: RunObserver | None = None,
    on_baseline: Callable[[str], None] | None = None,
    on_run: Callable[[str], None] | None = None,
    resume: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    ledger: LedgerSetup | None = None,
) -> SimulationResult:
    """Run the federation that ``config`` describes and record it in ``store``.

    ``on_run`` gets the run's id as soon as it is known (before round 1), so that a
    caller interrupted later can say which run to resume. The data's digest is
    recorded with a new run (:mod:`accord.data.digest`); a run to resume is checked
    first (it exists, did not complete, has this configuration, its data did not
    change: :class:`~accord.errors.DatasetError` naming the file otherwise), before
    any worker starts.

    ``resume`` is the id of a run in ``store`` to continue instead of starting a new
    one (see :meth:`Coordinator.resume`); ``config`` must be the run's own.
    :class:`~accord.errors.RunBusy` at once if another process is serving it.
    ``clock`` is what the round deadlines are read from (tests skip it ahead).
    ``ledger``: the run keeps a signed ledger (:mod:`accord.coordinator.lineage`).
    """
    digest = data_digest(config)
    with store.lease_run(resume) if resume is not None else nullcontext():
        if resume is not None:
            checkpoints = CheckpointStore(checkpoint_dir) if checkpoint_dir else None
            check_resumable(store, resume, config.to_json_dict(), checkpoints)
            check_data_digest(store, resume, digest)
            if on_run is not None:
                on_run(resume)
        return _simulate(
            config,
            store=store,
            checkpoint_dir=checkpoint_dir,
            observer=observer,
            on_baseline=on_baseline,
            started=lambda run_id: _started(store, run_id, digest, on_run),
            resume=resume,
            clock=clock,
            ledger=ledger,
        )


def _started(
    store: RunStore,
    run_id: str,
    digest: Mapping[str, Any],
    on_run: Callable[[str], None] | None,
) -> None:
    """A new run was created: record its data's digest, tell the caller."""
    record_data_digest(store, run_id, digest)
    if on_run is not None:
        on_run(run_id)


def _contract(config: FedConfig) -> DataContract | None:
    """The sites' data contract (``[profile]``), or DriftRefused; None: disabled."""
    if not config.profile.enabled:
        return None
    from accord.simulation.profiling import simulated_contract

    contract = simulated_contract(config)
    refuse_if_flagged(config, contract)
    return contract


def _simulate(
    config: FedConfig,
    *,
    store: RunStore,
    checkpoint_dir: Path | None,
    observer: RunObserver | None,
    on_baseline: Callable[[str], None] | None,
    started: Callable[[str], None],
    resume: str | None,
    clock: Callable[[], float],
    ledger: LedgerSetup | None,
) -> SimulationResult:
    warm_up(config)  # workers' imports start now, alongside the coordinator's own
    ctx = build_context(config, poison=True)
    contract = _contract(config)
    if contract is not None:
        record = started

        def started(run_id: str) -> None:
            record_contract(store, run_id, contract)
            record(run_id)

        if resume is not None:
            record_contract(store, resume, contract)
    check_task(config, ctx.task, config.task_settings.factory)
    initial = ctx.task.init_params(config.federation.seed)
    root_update = None
    if config.strategy.aggregation == "fltrust":  # its root set leaves the test set
        root_update, ctx = root_source(config, ctx)
    has_test = len(ctx.data.test) > 0
    central = _central_eval(ctx)

    comparison: list[Comparison] = []

    def summarise(params: Params) -> Mapping[str, Any]:
        if not (config.evaluation.baselines and has_test):
            return {}
        result = compare(ctx, config, central(params), on_step=on_baseline)
        comparison.append(result)
        return {"comparison": result.to_dict()}

    ckks_secret, ckks_public = _key_holder(config)
    executor = _adversary(
        config, ctx, _executor(config, ctx, initial, ckks_secret, clock)
    )
    settle_heap()  # the start-up objects are not rescanned by the rounds' collections
    try:
        coordinator = Coordinator(
            config,
            executor=executor,
            store=store,
            checkpoints=CheckpointStore(checkpoint_dir) if checkpoint_dir else None,
            central_eval=central if has_test else None,
            root_update=root_update,
            observer=observer,
            clock=clock,
            ckks_public_context=ckks_public,
            site_rows={s.name: len(s.train) for s in ctx.data.sites},
            ledger=ledger,
            job_time=_job_time(config, ctx),
            overlap=True,  # the next round's jobs reach only this machine's workers
        )
        if resume is None:
            run = coordinator.run(initial, extra_summary=summarise, on_created=started)
        else:
            run = coordinator.resume(resume, initial, extra_summary=summarise)
    finally:
        executor.close()
        release_heap()
    return SimulationResult(
        run=run,
        comparison=comparison[0] if comparison else None,
        malicious=ctx.malicious,
    )
