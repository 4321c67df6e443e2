"""Personalization by local fine-tuning: each site's own model beside the global one.

Under label skew one global model serves the average site and can serve a skewed
site badly. ``[personalization] method = "finetune"`` gives each site a model of its
own without changing what the federation trains: at every federated evaluation the
site fine-tunes a copy of the published model on its own training rows for
``epochs`` epochs (plain local training through the task's own ``train``, no
strategy terms) and scores both models on its holdout. The report carries the
global model's metrics under their usual names and the fine-tuned model's under
:data:`PREFIX` (``personalized_accuracy``, ...), so the coordinator stores them and
``accord runs show`` prints them side by side. The fine-tuned model itself is never
sent, stored or kept: it is rebuilt from the newest global model at each evaluation.

Fine-tuning is deterministic: its seed is derived from the federation's seed, the
round and the site's name (:func:`finetune_seed`).

FedPer and Ditto (:mod:`accord.task.fedper`, :mod:`accord.task.ditto`) keep the
site's own model as they train; :func:`personalized_scores` without a fine-tuning
setting scores that one, under the same names.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass

from accord.aggregation.scaffold import split_control
from accord.config import FedConfig
from accord.data.arrays import ArrayData
from accord.errors import TaskError
from accord.evaluation.metrics import evaluate
from accord.params import Params
from accord.task.personal_state import find_personal
from accord.task.protocol import Task, TrainConfig
from accord.task.strategy_site import StrategySite

__all__ = [
    "PREFIX",
    "FineTune",
    "finetune_seed",
    "is_personalized",
    "personalized_scores",
]

#: The prefix of a personalized model's metric names in an evaluation report.
PREFIX = "personalized_"
#: Metrics of the global model that get a personalized twin (``n`` is shared).
_PAIRED = ("accuracy", "auc", "loss")


@dataclass(frozen=True, slots=True)
class FineTune:
    """How each site fine-tunes the global model (``[personalization]``)."""

    epochs: int
    batch_size: int
    learning_rate: float
    seed: int

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("fine-tuning needs at least one epoch and one row a batch")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning rate must be > 0, got {self.learning_rate}")

    @classmethod
    def of(cls, config: FedConfig) -> FineTune | None:
        """The setting ``config`` declares; None when personalization is off."""
        p = config.personalization
        if p.method != "finetune":
            return None
        return cls(
            epochs=p.epochs,
            batch_size=config.train.batch_size,
            learning_rate=p.learning_rate or config.train.learning_rate,
            seed=config.federation.seed,
        )


def finetune_seed(seed: int, round_number: int, participant: str) -> int:
    """A 63-bit seed for one site's fine-tuning in one round (stable across runs)."""
    text = f"accord/finetune/{seed}/{round_number}/{participant}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") >> 1


def is_personalized(name: str) -> bool:
    """True for the name of a personalized model's metric."""
    return name.startswith(PREFIX)


def _inner(task: Task) -> Task:
    """The user's task under accord's strategy wrapper (fine-tuning adds no terms)."""
    return task.task if isinstance(task, StrategySite) else task


def personalized_scores(
    task: Task,
    params: Params,
    *,
    train: ArrayData,
    holdout: ArrayData,
    setting: FineTune | None,
    round_number: int,
    participant: str,
) -> dict[str, float]:
    """Fine-tune ``params`` on ``train``; the result's scores on ``holdout``.

    ``setting`` None: score the site's own model that the task keeps (FedPer,
    Ditto); :class:`TaskError` if it keeps none. The names carry :data:`PREFIX`.
    :class:`TaskError` if the task's training returns parameters that do not fit
    the model.
    """
    model = split_control(params)[0]
    if setting is None:
        keeper = find_personal(task)
        if keeper is None:
            raise TaskError("no fine-tuning setting and the task keeps no own model")
        # The newest the site kept: an evaluation follows the site's training (an
        # async run numbers its training batches apart from its versions).
        own_model = keeper.personal_model(model, participant)
        kept: Mapping[str, float] = evaluate(keeper.inner, own_model, holdout)
        return {PREFIX + k: float(kept[k]) for k in _PAIRED}
    inner = _inner(task)
    if len(train) == 0:  # nothing to fine-tune on: the site's model is the global
        own = model
    else:
        config = TrainConfig(
            epochs=setting.epochs,
            batch_size=setting.batch_size,
            learning_rate=setting.learning_rate,
            seed=finetune_seed(setting.seed, round_number, participant),
            round=round_number,
            participant=participant,
        )
        own = inner.train(model, train, config).params
        try:
            model.spec.check(own)
        except Exception as exc:
            raise TaskError(
                f"fine-tuning returned parameters that do not fit the model ({exc}); "
                "the task's train must return tensors of the same names and shapes"
            ) from exc
    scores: Mapping[str, float] = evaluate(inner, own, holdout)
    return {PREFIX + k: float(scores[k]) for k in _PAIRED}
