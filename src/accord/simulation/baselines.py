"""What federation is worth: the model trained on pooled data and by each site alone.

Each baseline gets the same number of passes over its data as a participant gets over
the whole run (rounds × local epochs) and the same training settings, and every model
is scored on the same central test set, so the comparison isolates the effect of
federating rather than of a different training budget.

Baselines are a report on a run that already completed: a task that raises while
training one of them (at one site's data, say, where the federated round only lost
that participant) costs that baseline alone. Its metrics are NaN, the reason is kept
in :attr:`Comparison.failed`, and the run stays completed.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from accord.config import FedConfig
from accord.evaluation.metrics import evaluate
from accord.simulation.context import SimContext
from accord.task.protocol import TrainConfig

__all__ = ["Comparison", "compare"]

logger = logging.getLogger(__name__)

_METRICS = ("auc", "accuracy", "loss")


@dataclass(frozen=True, slots=True)
class Comparison:
    """Central-test metrics of the federated, pooled and site-alone models."""

    metric: str
    federated: Mapping[str, float]
    pooled: Mapping[str, float]
    sites: Mapping[str, Mapping[str, float]]
    failed: Mapping[str, str] = field(default_factory=dict)
    """Baselines whose training or scoring raised: name ("pooled" or a site), why."""

    @property
    def median_site(self) -> float:
        """Median over sites of the headline metric (NaN sites left out)."""
        values = [
            m[self.metric] for m in self.sites.values() if math.isfinite(m[self.metric])
        ]
        return statistics.median(values) if values else math.nan

    @property
    def ratio_to_pooled(self) -> float:
        """Federated headline metric divided by the pooled one."""
        return self.federated[self.metric] / self.pooled[self.metric]

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Comparison:
        """The comparison :meth:`to_dict` stored (a run's summary holds it)."""

        def scores(m: Mapping[str, Any]) -> dict[str, float]:
            # Strict JSON stores NaN as null.
            return {k: math.nan if v is None else float(v) for k, v in m.items()}

        return cls(
            metric=str(doc["metric"]),
            federated=scores(doc["federated"]),
            pooled=scores(doc["pooled"]),
            sites={str(k): scores(v) for k, v in doc["sites"].items()},
            failed={str(k): str(v) for k, v in doc.get("failed", {}).items()},
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the store and ``--json``."""
        return {
            "metric": self.metric,
            "federated": dict(self.federated),
            "pooled": dict(self.pooled),
            "sites": {k: dict(v) for k, v in self.sites.items()},
            "failed": dict(self.failed),
            "median_site": self.median_site,
            "ratio_to_pooled": self.ratio_to_pooled,
        }


def compare(
    ctx: SimContext,
    config: FedConfig,
    federated: Mapping[str, float],
    *,
    on_step: Callable[[str], None] | None = None,
) -> Comparison:
    """Train the pooled and site-alone baselines; score them beside ``federated``."""
    budget = config.federation.rounds * config.train.epochs
    init = ctx.task.init_params(config.federation.seed)
    failed: dict[str, str] = {}

    def train_and_score(name: str, index: int) -> dict[str, float]:
        data = ctx.data.pooled_train() if index < 0 else ctx.data.sites[index].train
        settings = TrainConfig(
            epochs=budget,
            batch_size=config.train.batch_size,
            learning_rate=config.train.learning_rate,
            seed=config.federation.seed + 1 + index,
            options=dict(config.train.options),
        )
        try:
            params = ctx.task.train(init, data, settings).params
            scores = evaluate(ctx.task, params, ctx.data.test)
        except Exception as exc:  # the user's task: any error costs this baseline
            reason = f"{type(exc).__name__}: {exc}"[:300]
            logger.warning("baseline %s failed: %s", name, reason)
            failed[name] = reason
            scores = dict.fromkeys(_METRICS, math.nan)
        if on_step is not None:
            on_step(name)
        return scores

    pooled = train_and_score("pooled", -1)
    sites = {s.name: train_and_score(s.name, i) for i, s in enumerate(ctx.data.sites)}
    return Comparison(config.evaluation.metric, dict(federated), pooled, sites, failed)
