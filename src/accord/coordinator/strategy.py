"""A strategy: how a round's valid updates become the next global model.

It composes an aggregation rule (streaming weighted mean, or a robust rule that needs
every update) with a server optimizer (plain FedAvg is SGD with learning rate 1), as
two parts rather than a subclass per combination. ``max_weight_share`` caps each
participant's share of the round's weight under either rule
(:func:`~accord.aggregation.cap_weights`); the server optimizer refuses a step whose
model or state would not be finite, so nothing non-finite is ever kept.

Two rules need more than the round's updates, and get it here:

* ``centered_clip`` clips around the previous round's aggregate. The strategy keeps
  it in its state, next to the optimizer's (``center/<tensor>`` entries), so it is
  checkpointed with the round and a resumed run clips around the same center;
* ``fltrust`` compares every update with the coordinator's own update on a root
  dataset. The strategy is given a *root-update source*, ``root_update(global,
  round) -> update``, that it calls once a round; a coordinator without one
  (``accord coordinator`` has no root data) refuses the rule when it starts.

The coordinator calls :meth:`Strategy.begin_round` with the round's number, model
and state as each round starts; the round's accumulator takes what these two rules
need from it.

Strategies for skewed data (``docs/strategies.md``) are composed the same way:

* FedProx (``proximal_mu``) changes only local training: the strategy declares it
  with each train task (:meth:`Strategy.options`);
* SCAFFOLD (``scaffold``) keeps the coordinator's control variate ``c`` in the
  state (``scaffold.c/<tensor>`` entries, checkpointed with the round), publishes
  it with the model (:meth:`Strategy.published`), expects each update to carry
  ``delta_c`` beside ``delta_y`` (:func:`published_spec`), steps the model with the
  server optimizer on the mean ``delta_y`` and ``c`` by ``|S|/N`` times the mean
  ``delta_c`` (:mod:`accord.aggregation.scaffold`);
* q-FedAvg (``aggregation = "qfedavg"``) asks each site for its loss before
  training and folds the updates with
  :class:`~accord.aggregation.qfedavg.QFedAvgAccumulator`, with ``L`` the inverse
  of the local learning rate; any server optimizer applies the result.

``norm_bounding`` streams: updates are clipped as they arrive and folded into the
(capped) mean, so it keeps the mean's O(model) memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from accord.aggregation import (
    AggregationRule,
    CappedMeanAccumulator,
    MeanAccumulator,
    ServerAdagrad,
    ServerAdam,
    ServerOptimizer,
    ServerSGD,
    ServerYogi,
    cap_weights,
    check_params,
    make_rule,
)
from accord.aggregation.centered_clip import CenteredClip
from accord.aggregation.fltrust import FLTrust
from accord.aggregation.mean import SumBuffers
from accord.aggregation.norm_bound import NormBoundAccumulator
from accord.aggregation.qfedavg import QFedAvgAccumulator
from accord.aggregation.scaffold import (
    CONTROL,
    control_step,
    split_control,
    with_control,
    zero_control,
)
from accord.config import StrategyConfig
from accord.coordinator.round import Accumulator
from accord.errors import ConfigError
from accord.params import Params, ParamSpec, TensorSpec
from accord.task.local_strategy import OPTION_KEY, LocalStrategy

__all__ = [
    "CENTER",
    "CollectingAccumulator",
    "RootUpdate",
    "Strategy",
    "check_root_source",
    "published_spec",
    "server_optimizer",
]

#: Prefix of the centered-clipping center's entries in the strategy's state.
CENTER = "center/"

#: The coordinator's update on its root dataset, from the round's global model and
#: the round's number (which seeds its training, so that a resumed run repeats it).
RootUpdate = Callable[[Params, int], Params]


#: How far below a rule's breakdown share :func:`held_below` holds the cap.
_BELOW = 2.0**-20


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
        share = held_below(self._max_share, getattr(self._rule, "breakdown", None))
        weights = cap_weights(self._weights, share)
        return self._rule.aggregate(self._updates, list(weights))


def held_below(share: float | None, breakdown: float | None) -> float | None:
    """The weight cap a rule that breaks at ``breakdown`` can take from ``share``.

    A weighted median holds while no site has half the total weight: *strictly*
    below. A ``max_weight_share`` at or past it (the default 0.5) let one site,
    capped at exactly half, pull the median halfway to any value it sent; the cap
    is then held just below. ``share`` None (no cap, the operator's choice) is
    kept. The weighted trimmed mean declares no breakdown here: its ``beta`` is
    the operator's trade between weighting and robustness (a site above ``beta``
    of the weight is not trimmed away, docs/robustness.md).
    """
    if share is None or breakdown is None or share < breakdown:
        return share
    return breakdown * (1.0 - _BELOW)


class Strategy:
    """Aggregation rule + server optimizer, configured by ``[strategy]``.

    ``root_update`` is FLTrust's root-update source (see the module docstring);
    :class:`~accord.errors.ConfigError` if the rule needs one and none is given.
    """

    def __init__(
        self,
        config: StrategyConfig,
        *,
        root_update: RootUpdate | None = None,
        learning_rate: float = 0.05,
    ) -> None:
        self.config = config
        #: q-FedAvg's L: the inverse of the sites' learning rate (``[train]``).
        self._lipschitz = 1.0 / learning_rate
        self._rule = (
            None
            if config.aggregation in ("mean", "qfedavg")
            else make_rule(config.aggregation, **_rule_options(config))
        )
        check_root_source(config, has_root=root_update is not None)
        self._root_update = root_update
        self._round: tuple[int, Params, Params] | None = None
        #: The mean's float64 sums, reused from round to round (no page faults).
        self._sums = SumBuffers()
        self._optimizer = server_optimizer(config)

    def begin_round(self, number: int, global_params: Params, state: Params) -> None:
        """Start round ``number`` from ``global_params`` and the strategy ``state``.

        The coordinator calls it as each round begins; the round's
        :meth:`accumulator` then gives the rule what it needs from them: centered
        clipping its center (kept in ``state``), FLTrust the root update (computed
        from the model, seeded by the number).
        """
        self._round = (number, global_params, state)

    def options(self, run_id: str) -> dict[str, Any]:
        """What each train task's options declare to local training (may be empty)."""
        cfg = self.config
        declared = LocalStrategy(
            proximal_mu=cfg.proximal_mu,
            scaffold=cfg.scaffold,
            report_loss=cfg.aggregation == "qfedavg",
            run=run_id if cfg.scaffold else "",
        )
        return {OPTION_KEY: declared.to_json()} if declared.active else {}

    def published(self, params: Params, state: Params) -> Params:
        """What the sites train from: the model, with SCAFFOLD's ``c`` after it."""
        if not self.config.scaffold:
            return params
        return with_control(params, _control(state, params))

    def accumulator(self, spec: ParamSpec) -> Accumulator:
        """A fresh accumulator for the round :meth:`begin_round` started.

        ``spec`` is the updates' (:func:`published_spec`).
        """
        share = self.config.max_weight_share
        if self.config.aggregation == "qfedavg":
            q = 1.0 if self.config.q is None else self.config.q
            return QFedAvgAccumulator(
                spec, q=q, lipschitz=self._lipschitz, max_share=share
            )
        rule = self._rule
        if rule is None or rule.name == "norm_bounding":
            mean: Accumulator = (
                MeanAccumulator(spec, buffers=self._sums)
                if share is None or share >= 1.0
                else CappedMeanAccumulator(spec, share, buffers=self._sums)
            )
            if rule is None or self.config.norm_bound is None:
                return mean
            return NormBoundAccumulator(mean, self.config.norm_bound)
        if isinstance(rule, CenteredClip) and self._round is not None:
            rule = dataclasses.replace(rule, center=_center(self._round[2]))
        if isinstance(rule, FLTrust):
            if self._round is None or self._root_update is None:
                raise ValueError("fltrust needs begin_round() and a root-update source")
            number, global_params, _ = self._round
            reference = self._root_update(global_params, number)
            rule = dataclasses.replace(rule, reference=reference)
        return CollectingAccumulator(rule, share)

    def init_state(self, params: Params) -> Params:
        """Initial strategy state, as Params so that it checkpoints."""
        state: Params = self._optimizer.init(params).to_params()
        if isinstance(self._rule, CenteredClip):
            zeros = Params({n: np.zeros_like(a) for n, a in params.items()})
            return _with_center(state, zeros)
        if self.config.scaffold:
            return _with_prefix(state, CONTROL, zero_control(params))
        return state

    def apply(
        self,
        global_params: Params,
        delta: Params,
        state: Params,
        *,
        fraction: float = 1.0,
    ) -> tuple[Params, Params]:
        """Next global model and state from the round's aggregate delta.

        ``fraction`` is the share of the federation whose updates the aggregate
        holds (SCAFFOLD's ``|S|/N``). Raises
        :class:`~accord.errors.AggregateRejected` (naming the check and the
        tensor) when the new model or state would not be finite, or the step
        overflowed; ``global_params`` and ``state`` are then still the ones to keep.
        """
        own = Params(
            {
                k: a
                for k, a in state.items()
                if not k.startswith(CENTER) and not k.startswith(CONTROL)
            }
        )
        model_delta, delta_c = split_control(delta)
        opt_state = self._optimizer.state_from_params(own)
        new_params, new_state = self._optimizer.apply(
            global_params, model_delta, opt_state
        )
        packed: Params = new_state.to_params()
        if isinstance(self._rule, CenteredClip):
            packed = _with_center(packed, delta)
        if self.config.scaffold:
            if delta_c is None:
                raise ValueError("a SCAFFOLD aggregate without its delta_c")
            c = control_step(_control(state, global_params), delta_c, fraction=fraction)
            check_params(c, what="control variate")
            packed = _with_prefix(packed, CONTROL, c)
        return new_params, packed


def server_optimizer(config: StrategyConfig) -> ServerOptimizer[Any]:
    """The optimizer ``[strategy] server_optimizer`` names, at ``server_lr``."""
    name, lr = config.server_optimizer, config.server_lr
    if name == "adam":
        return ServerAdam(lr=lr)
    if name == "yogi":
        return ServerYogi(lr=lr)
    if name == "adagrad":
        return ServerAdagrad(lr=lr)
    return ServerSGD(lr=lr, momentum=config.server_momentum)


def check_root_source(config: StrategyConfig, *, has_root: bool) -> None:
    """:class:`~accord.errors.ConfigError` if the rule needs a root set, none given.

    ``accord coordinator`` calls it before it listens, so that a deployment that
    cannot run FLTrust says so at once rather than once the sites are connected.
    """
    if config.aggregation == "fltrust" and not has_root:
        raise ConfigError(
            "fltrust needs a root dataset at the coordinator to compute its own "
            "update each round; `accord simulate` draws one from the central test "
            "set ([strategy] root_examples), a deployed coordinator has none. "
            "Choose another rule (docs/robustness.md)",
            key="strategy.aggregation",
        )


def published_spec(config: StrategyConfig, spec: ParamSpec) -> ParamSpec:
    """The structure of the published model and of each update under ``config``.

    The model's own, followed with SCAFFOLD by a ``scaffold.c/`` copy of each tensor
    (``c`` in what is published, ``delta_c`` in what comes back).
    """
    if not config.scaffold:
        return spec
    return ParamSpec(
        (
            *spec.tensors,
            *(TensorSpec(CONTROL + t.name, t.dtype, t.shape) for t in spec.tensors),
        )
    )


def _control(state: Params, like: Params) -> Params:
    """SCAFFOLD's ``c`` from the strategy's state (it must be there)."""
    c = Params(
        {k[len(CONTROL) :]: a for k, a in state.items() if k.startswith(CONTROL)}
    )
    like.spec.check(c)
    return c


def _with_prefix(state: Params, prefix: str, extra: Params) -> Params:
    return Params([*state.items(), *((prefix + k, a) for k, a in extra.items())])


def _center(state: Params) -> Params | None:
    center = {k[len(CENTER) :]: a for k, a in state.items() if k.startswith(CENTER)}
    return Params(center) if center else None


def _with_center(state: Params, center: Params) -> Params:
    return Params([*state.items(), *((CENTER + k, a) for k, a in center.items())])


def _rule_options(config: StrategyConfig) -> dict[str, Any]:
    """The ``make_rule`` options of the configured rule, from ``[strategy]``."""
    rule = config.aggregation
    if rule in ("trimmed_mean", "weighted_trimmed_mean"):
        return {"beta": config.trim}
    if rule in ("krum", "bulyan"):
        return {"attackers": config.attackers}
    if rule == "multi_krum":
        return {"attackers": config.attackers, "select": config.select}
    if rule == "centered_clip":
        return {"tau": config.tau, "iterations": config.iterations or 3}
    if rule == "geometric_median":
        options: dict[str, Any] = {"max_iterations": config.iterations or 1000}
        if config.tolerance is not None:
            options["tolerance"] = config.tolerance
        if config.smoothing is not None:
            options["smoothing"] = config.smoothing
        return options
    if rule == "norm_bounding":
        return {"bound": config.norm_bound}
    return {}
