"""A round's federated evaluation: every site scores the new global model.

Each site scores the published model on its holdout; the reports are collected
until every site answered or the deadline passed (:func:`~accord.coordinator.
collector.collect`), each is held to the federation's bounds
(:func:`~accord.coordinator.integrity.check_eval_report`: a refused one is logged,
handed to ``refused`` for the record and left out; so is one that a deployment's
executor refused on arrival by the same bounds), and the rest are combined into
per-site and federated metrics (:func:`~accord.coordinator.metrics.
federated_metrics`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from accord.coordinator.collector import collect
from accord.coordinator.executor import (
    EvalDone,
    Event,
    Executor,
    JobFailed,
    TrainDone,
    eligible,
)
from accord.coordinator.integrity import ExampleBounds, check_eval_report
from accord.coordinator.metrics import federated_metrics
from accord.errors import UpdateRejected
from accord.records import MetricValue

__all__ = ["federated_eval"]

logger = logging.getLogger(__name__)

#: Receives each refused report and the reason it was refused (a ``JobFailed``
#: when the executor refused it on arrival).
Refused = Callable[[EvalDone | JobFailed, str], None]


def federated_eval(
    executor: Executor,
    *,
    number: int,
    deadline: float,
    clock: Callable[[], float],
    bounds: ExampleBounds,
    refused: Refused,
) -> list[MetricValue]:
    """Have every participant score the published model; their combined metrics."""
    sites = eligible(executor)
    executor.submit_eval(number, sites)
    results: dict[str, EvalDone] = {}
    waiting = set(sites)

    def handle(event: Event) -> None:
        if isinstance(event, TrainDone):
            executor.release(event)
        elif isinstance(event, EvalDone) and event.round == number:
            if event.participant in waiting and _admit(event, bounds, refused):
                results[event.participant] = event
            waiting.discard(event.participant)
        elif isinstance(event, JobFailed) and event.kind == "eval":
            logger.warning(
                "evaluation at %s failed: %s", event.participant, event.reason
            )
            on_arrival = event.refused_on_arrival and event.round == number
            if on_arrival and event.participant in waiting:
                refused(event, event.reason)
            waiting.discard(event.participant)

    def expire(late: tuple[str, ...]) -> None:
        logger.warning("federated evaluation missed %d site(s)", len(late))

    collect(
        executor,
        round_number=number,
        deadline=deadline,
        clock=clock,
        finished=lambda: not waiting,
        pending=lambda: sorted(waiting),
        handle=handle,
        expire=expire,
    )
    return federated_metrics(results)


def _admit(done: EvalDone, bounds: ExampleBounds, refused: Refused) -> bool:
    """True for a report within the bounds; a refused one is logged and handed on."""
    try:
        check_eval_report(done.metrics, done.num_examples, done.participant, bounds)
    except UpdateRejected as exc:
        logger.warning(
            "refused %s's evaluation report of round %d: %s",
            done.participant,
            done.round,
            exc.reason,
        )
        refused(done, exc.reason)
        return False
    return True
