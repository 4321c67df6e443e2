"""One participant's job: the code shared by worker processes and in-process mode.

A training job turns the task's new local parameters into the update the coordinator
expects (local − global), written straight into the caller's buffer, and reports a
task that raises or returns unusable parameters as a readable failure instead of an
exception that would take the worker down.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from accord.aggregation.integrity import SQUARE_CHUNK, finite_sum
from accord.data.arrays import ArrayData
from accord.errors import TaskRefused, UpdateRejected
from accord.evaluation.metrics import evaluate
from accord.params import Array, Params, params_hasher
from accord.task.personalization import FineTune, personalized_scores
from accord.task.protocol import Task, TrainConfig, TrainResult

__all__ = [
    "EvalOutcome",
    "JobError",
    "SitePersonalization",
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
    """A successful training job: the update is in the caller's ``out`` buffer.

    With ``check`` (:func:`write_update`): ``digest`` is the update's
    :meth:`~accord.params.Params.digest` and ``norm`` its L2 norm, or None when a
    value is NaN or infinite (the round then finds which and refuses it).
    """

    num_examples: int
    duration_s: float
    metrics: dict[str, float] = field(default_factory=dict)
    digest: str = ""
    norm: float | None = None


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
class SitePersonalization:
    """What a site needs to score its own model at evaluation.

    ``setting`` None: the task keeps the site's own model (FedPer, Ditto:
    :func:`~accord.task.personal_state.find_personal`).
    """

    setting: FineTune | None
    train: ArrayData
    round_number: int
    participant: str


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
    task: Task,
    data: ArrayData,
    global_params: Params,
    config: TrainConfig,
    out: Params,
    *,
    check: bool = False,
) -> TrainOutcome | JobError:
    """Train, then write ``local − global`` into ``out`` (same structure as global).

    ``check``: also the update's digest and norm (see :func:`write_update`).
    """
    trained = train(task, data, global_params, config)
    if isinstance(trained, JobError):
        return trained
    return write_update(trained, global_params, out, check=check)


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
    trained: Trained, global_params: Params, out: Params, *, check: bool = False
) -> TrainOutcome | JobError:
    """Write ``local − global`` into ``out``; the second half of :func:`run_train`.

    The duration reported is the training's plus this step's, not the time between.
    With ``check`` the update's digest, finiteness and L2 norm come from the same
    pass (:class:`_Checked`): each chunk is hashed and squared while it is still
    in cache, instead of reading the whole update twice more afterwards.
    """
    t0 = time.perf_counter()
    result = trained.result
    checked = _Checked(out) if check else None
    try:
        global_params.spec.check(result.params)
        for name, g in global_params.items():
            if checked is None:
                np.subtract(result.params[name], g, out=out[name])
            else:
                checked.subtract(name, result.params[name], g)
    except UpdateRejected as exc:
        elapsed = trained.duration_s + time.perf_counter() - t0
        return JobError("rejected", exc.reason, elapsed)
    metrics = {k: float(v) for k, v in result.metrics.items()}
    elapsed = trained.duration_s + time.perf_counter() - t0
    if checked is None:
        return TrainOutcome(int(result.num_examples), elapsed, metrics)
    return TrainOutcome(
        int(result.num_examples), elapsed, metrics, checked.digest(), checked.norm()
    )


class _Checked:
    """``out = local - global``, hashed and squared a chunk at a time as written.

    The digest is :meth:`Params.digest`'s (BLAKE3 over the structure, then each
    tensor's bytes in order); the squares are summed in float64 as
    :func:`~accord.aggregation.integrity.square_sum` sums them, and a tensor
    whose sum is not finite is looked at as
    :func:`~accord.aggregation.integrity.finite_sum` does.
    """

    def __init__(self, out: Params) -> None:
        self._out = out
        self._hash = params_hasher(out.spec)
        self._squares = 0.0
        self._finite = True
        self._buf = np.empty(0)

    def subtract(self, name: str, local: Array, glob: Array) -> None:
        """Write tensor ``name`` (the structure was checked); next in order."""
        dst = self._out[name].reshape(-1)
        src, base = local.reshape(-1), glob.reshape(-1)
        n = dst.size
        if self._buf.size < min(SQUARE_CHUNK, n):
            self._buf = np.empty(min(SQUARE_CHUNK, n))
        squares = 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            for lo in range(0, n, SQUARE_CHUNK):
                hi = min(lo + SQUARE_CHUNK, n)
                part = dst[lo:hi]
                np.subtract(src[lo:hi], base[lo:hi], out=part)
                self._hash.update(part.data.cast("B"))
                sq = self._buf[: hi - lo]
                np.square(part, out=sq, dtype=np.float64)
                squares += float(np.add.reduce(sq))
        self._finite = self._finite and finite_sum(dst, squares)
        self._squares += squares

    def digest(self) -> str:
        return self._hash.hexdigest()

    def norm(self) -> float | None:
        return math.sqrt(self._squares) if self._finite else None


def run_eval(
    task: Task,
    data: ArrayData,
    params: Params,
    *,
    personal: SitePersonalization | None = None,
) -> EvalOutcome | JobError:
    """Score ``params`` on ``data`` with accord's metrics.

    With ``personal``, also the site's fine-tuned copy of ``params``
    (:mod:`accord.task.personalization`), under ``personalized_`` names.
    """
    t0 = time.perf_counter()
    try:
        metrics = evaluate(task, params, data)
    except Exception as exc:  # the user's predict may raise anything
        return JobError("failed", _describe(exc), time.perf_counter() - t0)
    if personal is not None:
        try:
            metrics |= personalized_scores(
                task,
                params,
                train=personal.train,
                holdout=data,
                setting=personal.setting,
                round_number=personal.round_number,
                participant=personal.participant,
            )
        except Exception as exc:  # the user's train may raise anything
            reason = f"personalization (fine-tuning) failed: {_describe(exc)}"
            return JobError("failed", reason, time.perf_counter() - t0)
    return EvalOutcome(metrics, len(data), time.perf_counter() - t0)
