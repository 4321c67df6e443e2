"""A strategy: how a round's valid updates become the next global model.

It composes an aggregation rule (streaming weighted mean, or a robust rule that needs
every update) with a server optimizer (plain FedAvg is SGD with learning rate 1), as
two parts rather than a subclass per combination. ``max_weight_share`` caps each
participant's share of the round's weight under either rule
(:func:`~accord.aggregation.cap_weights`); the server optimizer refuses a step whose
model or state would not be finite, so nothing non-finite is ever kept.
"""

from __future__ import annotations

from typing import Any

from accord.aggregation import (
    AggregationRule,
    CappedMeanAccumulator,
    MeanAccumulator,
    ServerAdam,
    ServerOptimizer,
    ServerSGD,
    cap_weights,
    make_rule,
)
from accord.config import StrategyConfig
from accord.coordinator.round import Accumulator
from accord.params import Params, ParamSpec

__all__ = ["CollectingAccumulator", "Strategy"]


class CollectingAccumulator:
    """Keeps a copy of every update for rules that need them all (median, trimmed)."""

    def __init__(self, rule: AggregationRule, max_share: float | None = None) -> None:
        self._rule = rule
        self._max_share = max_share
        self._updates: list[Params] = []
        self._weights: list[float] = []

    def add(self, update: Params, weight: float) -> None:
        """Copy the update: the executor may reuse its buffer once this returns."""
        self._updates.append(update.copy())
        self._weights.append(weight)

    def result(self) -> Params:
        """Apply the rule to every collected update."""
        weights = cap_weights(self._weights, self._max_share)
        return self._rule.aggregate(self._updates, list(weights))


class Strategy:
    """Aggregation rule + server optimizer, configured by ``[strategy]``."""

    def __init__(self, config: StrategyConfig) -> None:
        self.config = config
        self._rule = (
            None
            if config.aggregation == "mean"
            else make_rule(config.aggregation, **_rule_options(config))
        )
        self._optimizer: ServerOptimizer[Any] = (
            ServerAdam(lr=config.server_lr)
            if config.server_optimizer == "adam"
            else ServerSGD(lr=config.server_lr, momentum=config.server_momentum)
        )

    def accumulator(self, spec: ParamSpec) -> Accumulator:
        """A fresh accumulator for one round."""
        share = self.config.max_weight_share
        if self._rule is not None:
            return CollectingAccumulator(self._rule, share)
        if share is None or share >= 1.0:
            return MeanAccumulator(spec)
        return CappedMeanAccumulator(spec, share)

    def init_state(self, params: Params) -> Params:
        """Initial server-optimizer state, as Params so that it checkpoints."""
        state: Params = self._optimizer.init(params).to_params()
        return state

    def apply(
        self, global_params: Params, delta: Params, state: Params
    ) -> tuple[Params, Params]:
        """Next global model and optimizer state from the round's aggregate delta.

        Raises :class:`~accord.errors.AggregateRejected` (naming the check and the
        tensor) when the new model or state would not be finite, or the step
        overflowed; ``global_params`` and ``state`` are then still the ones to keep.
        """
        opt_state = self._optimizer.state_from_params(state)
        new_params, new_state = self._optimizer.apply(global_params, delta, opt_state)
        packed: Params = new_state.to_params()
        return new_params, packed


def _rule_options(config: StrategyConfig) -> dict[str, float]:
    return {"beta": config.trim} if config.aggregation == "trimmed_mean" else {}
