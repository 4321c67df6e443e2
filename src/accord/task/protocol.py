"""The user's contract: what a task must provide for accord to federate it.

A task is written once and run unchanged by ``accord simulate`` and by a
deployed participant. It never sees the network or other sites: it gets parameters
and local data, and returns new parameters. Metrics are computed by accord from the
task's predictions (:mod:`accord.evaluation.metrics`), so every site scores a model
the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from accord.data.arrays import ArrayData
from accord.params import Params

__all__ = ["TRAIN_BOUNDS", "Task", "TaskFactory", "TrainConfig", "TrainResult"]

#: The inclusive range of each integer a train task carries, as a site accepts
#: it: epochs as ``[train] epochs`` allows, seeds of 32 bits (what
#: :func:`~accord.coordinator.selection.derive_seed` draws and every library
#: accepts). A coordinator cannot ask a site for a billion epochs, or a batch of
#: zero rows.
TRAIN_BOUNDS: Mapping[str, tuple[int, int]] = {
    "epochs": (1, 10_000),
    "batch_size": (1, 2**31 - 1),
    "seed": (0, 2**32 - 1),
    "round": (0, 2**31 - 1),
}


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Local training settings sent with each round's task.

    ``seed`` is derived by the coordinator from the run seed, the round and the
    participant, so that training is reproducible and differs between sites.
    """

    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 0.05
    seed: int = 0
    round: int = 0
    participant: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TrainResult:
    """What local training returns: new parameters and how many examples it used."""

    params: Params
    num_examples: int
    metrics: Mapping[str, float] = field(default_factory=dict)


@runtime_checkable
class Task(Protocol):
    """A model and how to train it; see ``examples/`` for complete tasks."""

    def init_params(self, seed: int) -> Params:
        """Initial global parameters, deterministic in ``seed``."""
        ...

    def train(
        self, params: Params, data: ArrayData, config: TrainConfig
    ) -> TrainResult:
        """Train from ``params`` on local ``data``; must not modify ``params``."""
        ...

    def predict(self, params: Params, x: npt.NDArray[np.float32]) -> npt.NDArray[Any]:
        """Class probabilities, shape ``(n, n_classes)``."""
        ...


#: A callable that builds a task for a dataset: ``factory(info, **options)``.
TaskFactory = Callable[..., Task]
