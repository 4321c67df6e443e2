"""What ``accord contributions RUN`` scores: a run's kept rounds and its holdouts.

The maths is :mod:`accord.contribution` (pure numpy). This module is the glue:
it checks that the run can be scored at all (plain rounds, updates kept), reads the
kept rounds back from the store (each update checked against the digest the round
recorded), and values a coalition model the way the federation values a model:
the run's ``[evaluation] metric`` on every site's own holdout, averaged weighted by
holdout size (minus the loss, so that higher is always better). No server-held data
is needed: in a simulation the sites' holdouts are rebuilt from ``[data]``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from accord.config import FedConfig
from accord.contribution import RoundUpdates, Value
from accord.data.federation import Site
from accord.errors import ContributionUnavailable
from accord.evaluation.metrics import evaluate
from accord.params import Params, ParamSpec
from accord.records import RoundRecord
from accord.store.updates import KeptRound, UpdateArchive
from accord.task.protocol import Task

__all__ = [
    "SECURE_EXPLANATION",
    "approximation_notes",
    "check_scorable",
    "holdout_value",
    "kept_rounds",
    "to_updates",
]

logger = logging.getLogger(__name__)

#: What secure aggregation leaves computable, said whenever a secure run is asked.
SECURE_EXPLANATION = (
    "under secure aggregation the coordinator sees only the sum of each round's "
    "updates, never one site's update, so no coalition model smaller than the "
    "whole round can be rebuilt: leave-one-out and Shapley values over sites "
    "cannot be computed. What can be: each round's gain as a whole (the federated "
    "metric per round in `accord runs show`), and who took part in which round. "
    "Per-site scores need a run without secure aggregation and with [contribution] "
    "keep_updates = true"
)


def check_scorable(run_id: str, config: FedConfig) -> None:
    """:class:`ContributionUnavailable` if ``run_id`` kept nothing to score."""
    mode = config.secure_aggregation.mode
    if mode != "off":
        raise ContributionUnavailable(
            f"run {run_id} used secure aggregation ({mode}): {SECURE_EXPLANATION}",
            run_id=run_id,
        )
    if not config.contribution.keep_updates:
        raise ContributionUnavailable(
            f"run {run_id} did not keep its round updates (only their digests), so "
            "no coalition model can be rebuilt; set [contribution] keep_updates = "
            "true in fed.toml and run the federation again",
            run_id=run_id,
        )


def kept_rounds(
    run_id: str, rounds: Sequence[RoundRecord], archive: UpdateArchive
) -> list[KeptRound]:
    """The completed rounds of ``run_id``, read back and verified, in order."""
    completed = [r for r in rounds if r.status == "completed"]
    if not completed:
        raise ContributionUnavailable(
            f"run {run_id} has no completed round to score; run it to at least one",
            run_id=run_id,
        )
    return [archive.load(run_id, r.number, r.outcomes) for r in completed]


def to_updates(kept: KeptRound, *, server_lr: float) -> RoundUpdates:
    """``kept`` as flat float64 vectors for the pure core."""
    return RoundUpdates(
        number=kept.number,
        sites=kept.sites,
        base=np.asarray(kept.base.flatten(), dtype=np.float64),
        updates=np.stack([u.flatten() for u in kept.updates]).astype(np.float64),
        weights=np.asarray(kept.weights, dtype=np.float64),
        server_lr=server_lr,
    )


def holdout_value(
    task: Task, sites: Sequence[Site], spec: ParamSpec, *, metric: str
) -> Value:
    """The value of a flat model: ``metric`` on the holdouts, weighted by size.

    Loss is negated (higher is better). A site whose metric is undefined on its
    holdout (AUC with one class) is left out of the average.
    """
    sign = -1.0 if metric == "loss" else 1.0

    def value(flat: npt.NDArray[np.float64]) -> float:
        params = Params.unflatten(spec, flat)
        total = weight = 0.0
        for site in sites:
            n = len(site.holdout)
            score = evaluate(task, params, site.holdout)[metric] if n else math.nan
            if math.isfinite(score):
                total += n * score
                weight += n
        if weight == 0:
            return math.nan
        return sign * total / weight

    return value


def approximation_notes(config: FedConfig) -> tuple[str, ...]:
    """Where this run's coalition models differ from the models it really made."""
    notes = []
    strategy = config.strategy
    if strategy.aggregation != "mean":
        notes.append(
            f"the run aggregated with {strategy.aggregation}; coalition models use "
            "the example-weighted mean, so scores describe a FedAvg of the same "
            "updates"
        )
    if strategy.server_optimizer != "sgd" or strategy.server_momentum:
        notes.append(
            "the run's server optimizer keeps state (adam or momentum); coalition "
            "models take one plain server step from each round's start"
        )
    if config.privacy.level == "participant":
        notes.append(
            "participant-level DP clips each update and noises the real aggregate "
            "only; coalition models use the kept updates as sent, unclipped and "
            "noise-free"
        )
    return tuple(notes)
