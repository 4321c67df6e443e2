"""One participant's job: the code shared by worker processes and in-process mode.

A training job turns the task's new local parameters into the update the coordinator
expects (local − global), written straight into the caller's buffer, and reports a
task that raises or returns unusable parameters as a readable failure instead of an
exception that would take the worker down.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from accord.data.arrays import ArrayData
from accord.errors import TaskRefused, UpdateRejected
from accord.evaluation.metrics import evaluate
from accord.params import Params
from accord.task.protocol import Task, TrainConfig, TrainResult

__all__ = [
    "EvalOutcome",
    "JobError",
    "TrainOutcome",
    "Trained",
    "run_eval",
    "run_train",
    "train",
    "write_update",
]

logger = logging.getLogger(__name__)
_REASON_LIMIT = 500


@dataclass(frozen=True, slots=True)
class TrainOutcome:
    """A successful training job: the update is in the caller's ``out`` buffer."""

    num_examples: int
    duration_s: float
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Trained:
    """The task's result, not yet turned into an update (no buffer needed yet)."""

    result: TrainResult
    duration_s: float


@dataclass(frozen=True, slots=True)
class EvalOutcome:
    """Scores of the global model on a site's holdout."""

    metrics: dict[str, float]
    num_examples: int
    duration_s: float


@dataclass(frozen=True, slots=True)
class JobError:
    """Why a job produced nothing usable."""

    status: Literal["failed", "rejected"]
    reason: str
    duration_s: float


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _REASON_LIMIT else text[: _REASON_LIMIT - 3] + "..."


def run_train(
    task: Task, data: ArrayData, global_params: Params, config: TrainConfig, out: Params
) -> TrainOutcome | JobError:
    """Train, then write ``local − global`` into ``out`` (same structure as global)."""
    trained = train(task, data, global_params, config)
    if isinstance(trained, JobError):
        return trained
    return write_update(trained, global_params, out)


def train(
    task: Task, data: ArrayData, global_params: Params, config: TrainConfig
) -> Trained | JobError:
    """Run the task's training; the first half of :func:`run_train`."""
    t0 = time.perf_counter()
    try:
        result = task.train(global_params, data, config)
    except TaskRefused as exc:  # the site's policy (simulated sites' own)
        return JobError("rejected", exc.reason, time.perf_counter() - t0)
    except Exception as exc:  # the user's code may raise anything; report, don't die
        logger.info("training raised %s", type(exc).__name__)
        return JobError("failed", _describe(exc), time.perf_counter() - t0)
    return Trained(result, time.perf_counter() - t0)


def write_update(
    trained: Trained, global_params: Params, out: Params
) -> TrainOutcome | JobError:
    """Write ``local − global`` into ``out``; the second half of :func:`run_train`.

    The duration reported is the training's plus this step's, not the time between.
    """
    t0 = time.perf_counter()
    result = trained.result
    try:
        global_params.spec.check(result.params)
        for name, g in global_params.items():
            np.subtract(result.params[name], g, out=out[name])
    except UpdateRejected as exc:
        elapsed = trained.duration_s + time.perf_counter() - t0
        return JobError("rejected", exc.reason, elapsed)
    metrics = {k: float(v) for k, v in result.metrics.items()}
    elapsed = trained.duration_s + time.perf_counter() - t0
    return TrainOutcome(int(result.num_examples), elapsed, metrics)


def run_eval(task: Task, data: ArrayData, params: Params) -> EvalOutcome | JobError:
    """Score ``params`` on ``data`` with accord's metrics."""
    t0 = time.perf_counter()
    try:
        metrics = evaluate(task, params, data)
    except Exception as exc:  # the user's predict may raise anything
        return JobError("failed", _describe(exc), time.perf_counter() - t0)
    return EvalOutcome(metrics, len(data), time.perf_counter() - t0)
