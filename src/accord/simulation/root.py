"""FLTrust's root dataset in simulation: a slice of the central test set.

FLTrust (:mod:`accord.aggregation.fltrust`) needs the coordinator to train the
current global model on a small clean dataset of its own each round. A simulation has
no such data apart from the sites' and the central test set, so the root set is
drawn from the test set: ``[strategy] root_examples`` rows (default
:data:`DEFAULT_ROOT_EXAMPLES`), chosen with the run's seed, and taken *out* of the
test set, so that the central evaluation never scores the model on examples the
coordinator trained on. The root set follows the test set's distribution, which is
the favourable case for FLTrust (the paper's root sets are small and may be biased):
``docs/robustness.md`` says so.

The root update is the task's own training (``[train]`` settings) from the round's
global model, minus that model, seeded from the run seed and the round number, so a
resumed run computes the same root updates.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from accord.config import FedConfig
from accord.coordinator.selection import derive_seed
from accord.coordinator.strategy import RootUpdate
from accord.errors import ConfigError
from accord.params import Params
from accord.simulation.context import SimContext
from accord.task.protocol import TrainConfig

__all__ = ["DEFAULT_ROOT_EXAMPLES", "root_source"]

logger = logging.getLogger(__name__)

#: Root-set size when ``[strategy] root_examples`` is left out (the paper uses 100).
DEFAULT_ROOT_EXAMPLES = 100
#: Seed index of the coordinator's root training (sites use 0..n-1).
_ROOT_INDEX = 2**31


def root_source(config: FedConfig, ctx: SimContext) -> tuple[RootUpdate, SimContext]:
    """The root-update source, and ``ctx`` with the root rows out of its test set.

    Raises :class:`~accord.errors.ConfigError` when the test set cannot spare the
    root set and still leave rows to evaluate on.
    """
    wanted = config.strategy.root_examples or DEFAULT_ROOT_EXAMPLES
    test = ctx.data.test
    if len(test) <= wanted:
        raise ConfigError(
            f"fltrust draws its root set of {wanted} examples from the central test "
            f"set, which has {len(test)}; lower strategy.root_examples or raise "
            "data.test_fraction",
            key="strategy.root_examples",
        )
    rng = np.random.default_rng([config.federation.seed, _ROOT_INDEX])
    order = rng.permutation(len(test))
    root, rest = (
        test.subset(np.sort(order[:wanted])),
        test.subset(np.sort(order[wanted:])),
    )
    logger.info(
        "fltrust root set: %d test examples (%d left to test)", wanted, len(rest)
    )
    train = config.train
    task = ctx.task

    def root_update(global_params: Params, round_number: int) -> Params:
        settings = TrainConfig(
            epochs=train.epochs,
            batch_size=train.batch_size,
            learning_rate=train.learning_rate,
            seed=derive_seed(config.federation.seed, round_number, _ROOT_INDEX),
            round=round_number,
            participant="coordinator-root",
            options=dict(train.options),
        )
        trained = task.train(global_params, root, settings).params
        global_params.spec.check(trained)
        return Params({k: trained[k] - a for k, a in global_params.items()})

    data = dataclasses.replace(ctx.data, test=rest)
    return root_update, dataclasses.replace(ctx, data=data)
