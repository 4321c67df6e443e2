"""Server optimizers: how the coordinator turns the mean update into the next model.

Following Reddi et al., "Adaptive Federated Optimization" (ICLR 2021), the aggregated
update ``mean_delta = mean(local - global)`` is treated as a pseudo-gradient step.
FedAvg is :class:`ServerSGD` with ``lr=1`` (``new = global + mean_delta``); FedAvgM adds
``momentum``; FedAdam, FedYogi and FedAdagrad are :class:`ServerAdam`,
:class:`ServerYogi` and :class:`ServerAdagrad`. The three adaptive ones share one step
(:func:`_adaptive_step`: first moment, then ``lr m / (sqrt(v) + tau)``) and differ
only in the second-moment rule they pass it, a plain function each, so there is no
class hierarchy. Any aggregation rule composes with any optimizer:
``ServerAdam(lr=0.01).apply(g, coordinate_trimmed_mean(deltas), s)``.

In the style of fedjax, state is explicit and immutable: ``init(params) -> state`` and
``apply(global, mean_delta, state) -> (new_global, new_state)``; nothing is mutated, so
a round can be retried or replayed. States convert to :class:`~accord.params.Params`
(``to_params`` / ``from_params``) so checkpoints store them like any model. Arithmetic
happens in each tensor's own dtype: float32 in, float32 out.

Nothing overflows silently: a step whose new model or state has a NaN or an infinite
value (a huge but finite delta overflows float32 in ``global + delta`` or in FedAdam's
``delta²``) raises :class:`~accord.errors.AggregateRejected` naming the tensor, and
the caller keeps the model and state it passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from accord.aggregation.integrity import check_params
from accord.errors import ConfigError, UpdateRejected
from accord.params import Array, Params, ParamSpec

__all__ = [
    "AdamState",
    "SGDState",
    "ServerAdagrad",
    "ServerAdam",
    "ServerOptimizer",
    "ServerSGD",
    "ServerYogi",
]

S = TypeVar("S")
_STEP = "step"


class ServerOptimizer(Protocol[S]):
    """Applies the aggregated update to the global model, threading explicit state."""

    def init(self, params: Params) -> S:
        """The state before the first round, for a model shaped like ``params``."""
        ...

    def apply(
        self, global_params: Params, mean_delta: Params, state: S
    ) -> tuple[Params, S]:
        """The next global model and state; ``mean_delta`` is mean(local - global)."""
        ...

    def state_from_params(self, params: Params) -> S:
        """Rebuild a state from its ``to_params()`` form (e.g. from a checkpoint)."""
        ...


def _check_structure(spec: ParamSpec, params: Params, what: str) -> None:
    try:
        spec.check(params)
    except UpdateRejected as exc:
        raise ValueError(
            f"the optimizer {what} does not match the model ({exc.reason}); was it "
            "restored from another run's checkpoint?"
        ) from exc


def _pack(step: int, groups: Mapping[str, Params]) -> Params:
    arrays: dict[str, Array] = {_STEP: np.array(float(step))}
    for prefix, group in groups.items():
        arrays.update({f"{prefix}/{name}": a for name, a in group.items()})
    return Params(arrays)


def _unpack(params: Params, prefixes: tuple[str, ...]) -> tuple[int, dict[str, Params]]:
    if _STEP not in params or params[_STEP].shape != ():
        raise ValueError("optimizer state has no scalar 'step' entry")
    step = float(params[_STEP])
    if not step.is_integer() or step < 0:
        raise ValueError(f"optimizer state has step {step}; expected an integer >= 0")
    groups: dict[str, dict[str, Array]] = {p: {} for p in prefixes}
    for key, array in params.items():
        prefix, _, name = key.partition("/")
        if key == _STEP:
            continue
        if prefix not in groups or not name:
            raise ValueError(f"unexpected entry {key!r} in optimizer state")
        groups[prefix][name] = array
    return int(step), {p: Params(g) for p, g in groups.items()}


def _checked(new: Params, state: Params) -> None:
    """Refuse a step that left a NaN or an infinity in the model or the state."""
    check_params(new, what="model")
    check_params(state, what="optimizer state")


def _zeros_like(params: Params, fill: float = 0.0) -> Params:
    return Params({n: np.full_like(a, fill) for n, a in params.items()})


@dataclass(frozen=True, slots=True)
class SGDState:
    """Rounds applied so far and, with momentum, the velocity."""

    step: int
    velocity: Params | None = None

    def to_params(self) -> Params:
        """As Params: ``step`` (0-d float64) and ``velocity/<name>``."""
        return _pack(
            self.step, {} if self.velocity is None else {"velocity": self.velocity}
        )

    @classmethod
    def from_params(cls, params: Params) -> SGDState:
        """Inverse of :meth:`to_params`."""
        step, groups = _unpack(params, ("velocity",))
        velocity = groups["velocity"]
        return cls(step, velocity if len(velocity) else None)


@dataclass(frozen=True, slots=True)
class ServerSGD:
    """FedAvg / FedAvgM: ``new = global + lr * v``, ``v = momentum * v + mean_delta``.

    Without momentum ``v`` is just ``mean_delta``; ``lr=1`` then gives FedAvg exactly.
    """

    lr: float = 1.0
    momentum: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"must be a positive number, got {self.lr!r}", key="lr")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(
                f"must be in [0, 1), got {self.momentum!r}", key="momentum"
            )

    def init(self, params: Params) -> SGDState:
        """Step 0; a zero velocity if momentum is used."""
        return SGDState(0, _zeros_like(params) if self.momentum > 0 else None)

    def state_from_params(self, params: Params) -> SGDState:
        """Rebuild the state from :meth:`SGDState.to_params` output."""
        return SGDState.from_params(params)

    def apply(
        self, global_params: Params, mean_delta: Params, state: SGDState
    ) -> tuple[Params, SGDState]:
        """One server step; with ``lr=1`` and no momentum, exactly global + delta."""
        spec = global_params.spec
        spec.check(mean_delta)
        with np.errstate(over="ignore", invalid="ignore"):  # checked below
            new, velocity = self._step(global_params, mean_delta, state)
        out = SGDState(state.step + 1, velocity)
        _checked(new, out.to_params())
        return new, out

    def _step(
        self, global_params: Params, mean_delta: Params, state: SGDState
    ) -> tuple[Params, Params | None]:
        spec = global_params.spec
        step = mean_delta
        velocity = None
        if self.momentum > 0:
            if state.velocity is None:
                raise ValueError("momentum is set but the state has no velocity")
            _check_structure(spec, state.velocity, "velocity")
            velocity = Params(
                {
                    n: self.momentum * state.velocity[n] + d
                    for n, d in mean_delta.items()
                }
            )
            step = velocity
        if self.lr == 1.0:  # exact: no multiply by 1
            new = Params({n: g + step[n] for n, g in global_params.items()})
        else:
            new = Params({n: g + self.lr * step[n] for n, g in global_params.items()})
        return new, velocity


@dataclass(frozen=True, slots=True)
class AdamState:
    """Rounds applied so far, first moment ``m`` and second moment ``v``."""

    step: int
    m: Params
    v: Params

    def to_params(self) -> Params:
        """As Params: ``step`` (0-d float64), ``m/<name>`` and ``v/<name>``."""
        return _pack(self.step, {"m": self.m, "v": self.v})

    @classmethod
    def from_params(cls, params: Params) -> AdamState:
        """Inverse of :meth:`to_params`."""
        step, groups = _unpack(params, ("m", "v"))
        return cls(step, groups["m"], groups["v"])


#: A second-moment rule: ``(v, d) -> new v``, elementwise on one tensor.
SecondMoment = Callable[[Array, Array], Array]


def _adam_moment(beta2: float) -> SecondMoment:
    """Adam: ``v = b2 v + (1 - b2) d²`` (an exponential average of ``d²``)."""
    return lambda v, d: beta2 * v + (1 - beta2) * np.square(d)


def _yogi_moment(beta2: float) -> SecondMoment:
    """Yogi: ``v = v - (1 - b2) d² sign(v - d²)``: additive, so ``v`` moves slowly."""

    def moment(v: Array, d: Array) -> Array:
        d2 = np.square(d)
        return v - (1 - beta2) * d2 * np.sign(v - d2)

    return moment


def _adagrad_moment(v: Array, d: Array) -> Array:
    """Adagrad: ``v = v + d²`` (the sum of every round's squares)."""
    return v + np.square(d)


def _check_adaptive(lr: float, beta1: float, beta2: float, eps: float) -> None:
    if not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"must be a positive number, got {lr!r}", key="lr")
    for key, beta in (("beta1", beta1), ("beta2", beta2)):
        if not 0.0 <= beta < 1.0:
            raise ConfigError(f"must be in [0, 1), got {beta!r}", key=key)
    if not (math.isfinite(eps) and eps > 0):
        raise ConfigError(f"must be a positive number, got {eps!r}", key="eps")


def _adaptive_step(
    global_params: Params,
    mean_delta: Params,
    state: AdamState,
    *,
    lr: float,
    beta1: float,
    eps: float,
    moment: SecondMoment,
) -> tuple[Params, AdamState]:
    """One step of Reddi et al.'s Algorithm 2 with the given second-moment rule.

    ``m = b1 m + (1 - b1) d``, ``v = moment(v, d)``,
    ``new = global + lr m / (sqrt(v) + eps)``; checked finite before it is returned.
    """
    spec = global_params.spec
    spec.check(mean_delta)
    _check_structure(spec, state.m, "first moment")
    _check_structure(spec, state.v, "second moment")
    with np.errstate(over="ignore", invalid="ignore"):  # checked below
        m = Params(
            {n: beta1 * state.m[n] + (1 - beta1) * d for n, d in mean_delta.items()}
        )
        v = Params({n: moment(state.v[n], d) for n, d in mean_delta.items()})
        new = Params(
            {n: g + lr * m[n] / (np.sqrt(v[n]) + eps) for n, g in global_params.items()}
        )
    out = AdamState(state.step + 1, m, v)
    _checked(new, out.to_params())
    return new, out


@dataclass(frozen=True, slots=True)
class ServerAdam:
    """FedAdam (Reddi et al., Algorithm 2), on the pseudo-gradient ``mean_delta``.

    ``m = b1 m + (1 - b1) d``, ``v = b2 v + (1 - b2) d²``,
    ``new = global + lr m / (sqrt(v) + eps)``. As in the paper there is no bias
    correction, ``eps`` (their τ) controls the degree of adaptivity, the defaults are
    their recommended ``b1 = 0.9, b2 = 0.99, τ = 1e-3``, and ``v`` starts at ``τ²``.
    """

    lr: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.99
    eps: float = 1e-3

    def __post_init__(self) -> None:
        _check_adaptive(self.lr, self.beta1, self.beta2, self.eps)

    def init(self, params: Params) -> AdamState:
        """Step 0, ``m = 0``, ``v = eps²``."""
        return AdamState(0, _zeros_like(params), _zeros_like(params, self.eps**2))

    def state_from_params(self, params: Params) -> AdamState:
        """Rebuild the state from :meth:`AdamState.to_params` output."""
        return AdamState.from_params(params)

    def apply(
        self, global_params: Params, mean_delta: Params, state: AdamState
    ) -> tuple[Params, AdamState]:
        """One FedAdam step; returns the new model and a new state."""
        return _adaptive_step(
            global_params,
            mean_delta,
            state,
            lr=self.lr,
            beta1=self.beta1,
            eps=self.eps,
            moment=_adam_moment(self.beta2),
        )


@dataclass(frozen=True, slots=True)
class ServerYogi:
    """FedYogi (Reddi et al., Algorithm 2): Adam with Yogi's additive second moment.

    ``v = v - (1 - b2) d² sign(v - d²)``: ``v`` grows or shrinks by at most
    ``(1 - b2) d²`` a round, so one round of large updates does not wipe out what
    it learnt of the scale (Zaheer et al. 2018). Defaults as the paper's:
    ``b1 = 0.9, b2 = 0.99, τ = 1e-3``, ``v`` starting at ``τ²``, no bias correction.
    """

    lr: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.99
    eps: float = 1e-3

    def __post_init__(self) -> None:
        _check_adaptive(self.lr, self.beta1, self.beta2, self.eps)

    def init(self, params: Params) -> AdamState:
        """Step 0, ``m = 0``, ``v = eps²``."""
        return AdamState(0, _zeros_like(params), _zeros_like(params, self.eps**2))

    def state_from_params(self, params: Params) -> AdamState:
        """Rebuild the state from :meth:`AdamState.to_params` output."""
        return AdamState.from_params(params)

    def apply(
        self, global_params: Params, mean_delta: Params, state: AdamState
    ) -> tuple[Params, AdamState]:
        """One FedYogi step; returns the new model and a new state."""
        return _adaptive_step(
            global_params,
            mean_delta,
            state,
            lr=self.lr,
            beta1=self.beta1,
            eps=self.eps,
            moment=_yogi_moment(self.beta2),
        )


@dataclass(frozen=True, slots=True)
class ServerAdagrad:
    """FedAdagrad (Reddi et al., Algorithm 2): ``v = v + d²``, with momentum ``b1``.

    No ``beta2``: the second moment is the running sum of squares, so steps shrink
    as rounds accumulate. Defaults as the paper's: ``b1 = 0.9, τ = 1e-3``, ``v``
    starting at ``τ²``.
    """

    lr: float = 0.01
    beta1: float = 0.9
    eps: float = 1e-3

    def __post_init__(self) -> None:
        _check_adaptive(self.lr, self.beta1, 0.0, self.eps)

    def init(self, params: Params) -> AdamState:
        """Step 0, ``m = 0``, ``v = eps²``."""
        return AdamState(0, _zeros_like(params), _zeros_like(params, self.eps**2))

    def state_from_params(self, params: Params) -> AdamState:
        """Rebuild the state from :meth:`AdamState.to_params` output."""
        return AdamState.from_params(params)

    def apply(
        self, global_params: Params, mean_delta: Params, state: AdamState
    ) -> tuple[Params, AdamState]:
        """One FedAdagrad step; returns the new model and a new state."""
        return _adaptive_step(
            global_params,
            mean_delta,
            state,
            lr=self.lr,
            beta1=self.beta1,
            eps=self.eps,
            moment=_adagrad_moment,
        )
