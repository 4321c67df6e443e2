"""Tasks in plain numpy: multinomial logistic regression and a one-hidden-layer MLP.

They let accord run, be tested and be demonstrated with no machine-learning framework
installed, and they are fast enough for tabular sites of thousands of rows: every step
is a few vectorised float32 matrix products on a minibatch, with gradients written by
hand (the models are small enough that automatic differentiation would only add a
dependency).

Training is minibatch SGD with the learning rate, batch size and epochs of the
:class:`TrainConfig`; rows are shuffled each epoch by ``np.random.default_rng(seed)``,
so the same parameters, data and config always give bit-identical results. The
optional L2 ``weight_decay`` applies to weight matrices only, not to biases.

A round's strategy may add terms to every gradient
(:mod:`accord.task.local_strategy`): FedProx's ``mu (w - w_global)`` and
SCAFFOLD's correction ``c - c_i``. They are computed from the weights before each
step and applied with it (``w -= lr (grad + terms)``), in plain SGD and in DP-SGD
alike (the terms depend on the weights and public values only, so they add no
privacy cost).

A train task that declares record-level DP-SGD (a
:class:`~accord.privacy.dpsgd.DpSgdPlan` in its options, ``[privacy] level =
"record"``) runs the declared number of steps instead of epochs: each step draws a
Poisson sample of the rows at the declared rate (from ``config.seed``), computes
each sampled row's gradient norm and clips it (written by hand, like the plain
step's; for dense layers the clipped sum is two matrix products, never the
per-example gradients themselves), and adds Gaussian noise from
:class:`~accord.privacy.noise.NoiseSource`
(:func:`~accord.privacy.dpsgd.noisy_dense_gradient`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from accord.data.arrays import ArrayData, DatasetInfo
from accord.errors import ConfigError, DatasetError
from accord.params import Params, ParamSpec, TensorSpec
from accord.privacy.dpsgd import DpSgdPlan, noisy_dense_gradient, poisson_sample
from accord.privacy.noise import NoiseSource
from accord.task.local_strategy import GradientTerms, gradient_terms
from accord.task.protocol import TrainConfig, TrainResult

__all__ = ["NumpyMLP", "SoftmaxRegression", "mlp", "softmax_regression"]

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
FloatT = TypeVar("FloatT", bound=npt.NDArray[np.floating[Any]])
Weights = dict[str, F32]
#: One SGD step on a batch (features, labels, one-hot labels, learning rate):
#: updates the weights in place and returns the summed loss of the batch.
Step = Callable[[Weights, F32, I64, F32, float], float]
#: A batch's dense layers as (inputs, per-example output gradients), in spec order
#: (features, labels, one-hot labels in), and the batch's summed loss.
PerExample = Callable[[Weights, F32, I64, F32], tuple[list[tuple[F32, F32]], float]]
_TINY = np.float32(1e-30)


def _features(info: DatasetInfo, x: npt.NDArray[np.float32]) -> F32:
    """``x`` as a float32 ``(n, d)`` matrix, checked against the dataset's shape."""
    if tuple(x.shape[1:]) != info.feature_shape:
        raise DatasetError(
            f"features have shape {tuple(x.shape[1:])} per row, but the task was "
            f"built for {info.feature_shape}; rebuild it from this dataset's info"
        )
    return np.ascontiguousarray(x.reshape(len(x), info.n_features), dtype=np.float32)


def _labels(info: DatasetInfo, y: npt.NDArray[np.int64]) -> I64:
    labels = np.asarray(y, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= info.n_classes):
        raise DatasetError(
            f"labels must be class indices in [0, {info.n_classes}), got "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
    return labels


def _softmax_inplace(logits: FloatT) -> FloatT:
    """Row-wise softmax, overwriting ``logits``."""
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


def _output_gradient(proba: F32, y: I64, one_hot: F32) -> tuple[F32, float]:
    """Turn softmax output into d(mean cross-entropy)/d(logits), in place.

    Also returns the batch's summed cross-entropy. Subtracting a precomputed one-hot
    matrix is several times cheaper than fancy-index assignment on small batches.
    """
    picked = proba[np.arange(y.size), y]
    np.maximum(picked, _TINY, out=picked)
    loss_sum = -float(np.log(picked, out=picked).sum())
    proba -= one_hot
    proba /= np.float32(y.size)
    return proba, loss_sum


def _strategy_terms(terms: GradientTerms) -> Callable[[Weights], dict[str, F32]]:
    """The strategy's additions to each tensor's gradient at the current weights."""
    mu = np.float32(terms.mu)
    anchor = (
        None
        if terms.anchor is None
        else {n: np.asarray(a, np.float32) for n, a in terms.anchor.items()}
    )
    correction = (
        None
        if terms.correction is None
        else {n: np.asarray(a, np.float32) for n, a in terms.correction.items()}
    )

    def added(weights: Weights) -> dict[str, F32]:
        out: dict[str, F32] = {}
        for name, w in weights.items():
            term = np.zeros_like(w)
            if anchor is not None:
                term += mu * (w - anchor[name])
            if correction is not None:
                term += correction[name]
            out[name] = term
        return out

    return added


def _run_sgd(
    weights: Weights,
    x: F32,
    y: I64,
    n_classes: int,
    config: TrainConfig,
    step: Step,
    terms: Callable[[Weights], dict[str, F32]] | None = None,
) -> float:
    """Run ``config.epochs`` of shuffled minibatch SGD; mean loss of the last epoch.

    ``terms``: the strategy's gradient terms, taken at the weights before each step.
    """
    rng = np.random.default_rng(config.seed)
    n, size = len(y), config.batch_size
    one_hot = np.eye(n_classes, dtype=np.float32)[y]
    rate = np.float32(config.learning_rate)
    loss = float("nan")
    for _ in range(config.epochs):
        perm = rng.permutation(n)
        xs, ys, hs = x[perm], y[perm], one_hot[perm]
        total = 0.0
        for start in range(0, n, size):
            end = start + size
            added = None if terms is None else terms(weights)
            total += step(
                weights,
                xs[start:end],
                ys[start:end],
                hs[start:end],
                config.learning_rate,
            )
            if added is not None:
                for name, term in added.items():
                    weights[name] -= rate * term
        loss = total / n
    return loss


def _example_gradient(proba: F32, y: I64, one_hot: F32) -> tuple[F32, float]:
    """Each row's d(cross-entropy)/d(logits) (not averaged), and the summed loss."""
    picked = np.maximum(proba[np.arange(y.size), y], _TINY)
    loss_sum = -float(np.log(picked).sum())
    proba -= one_hot
    return proba, loss_sum


def _run_dp_sgd(
    spec: ParamSpec,
    weights: Weights,
    data: tuple[F32, I64, F32],
    config: TrainConfig,
    plan: DpSgdPlan,
    per_example: PerExample,
    decay: Callable[[Weights], dict[str, F32]],
    terms: Callable[[Weights], dict[str, F32]] | None = None,
) -> float:
    """Run the declared DP-SGD steps; mean loss over the rows they sampled."""
    x, y, one_hot = data
    sampler = np.random.default_rng(config.seed)
    noise = NoiseSource(plan.noise_seed).generator(config.seed)
    expected = plan.sampling_rate * len(y)
    names = [t.name for t in spec.tensors]
    rate = np.float32(config.learning_rate)
    total, seen = 0.0, 0
    for _ in range(plan.steps):
        rows = poisson_sample(len(y), plan.sampling_rate, sampler)
        layers, loss = per_example(weights, x[rows], y[rows], one_hot[rows])
        total, seen = total + loss, seen + rows.size
        noisy = noisy_dense_gradient(
            layers,
            clip=plan.clip,
            noise_multiplier=plan.noise_multiplier,
            expected_batch=expected,
            rng=noise,
        )
        penalties = decay(weights)
        added = {} if terms is None else terms(weights)
        for name, g in zip(names, noisy, strict=True):
            step = g.astype(np.float32)
            if name in penalties:
                step += penalties[name]
            if name in added:
                step += added[name]
            weights[name] -= rate * step
    return total / seen if seen else float("nan")


def _train(
    spec: ParamSpec,
    info: DatasetInfo,
    params: Params,
    data: ArrayData,
    config: TrainConfig,
    step: Step,
    per_example: PerExample | None = None,
    decay: Callable[[Weights], dict[str, F32]] | None = None,
) -> TrainResult:
    """Shared ``train``: validate, copy the weights, run SGD, wrap the result."""
    if config.batch_size <= 0:
        raise ConfigError("must be a positive integer", key="batch_size")
    if config.epochs < 0:
        raise ConfigError("must not be negative", key="epochs")
    spec.check(params)
    weights: Weights = {n: np.array(a, dtype=np.float32) for n, a in params.items()}
    x, y = _features(info, data.x), _labels(info, data.y)
    metrics: dict[str, float] = {}
    declared = gradient_terms(config.options, params, spec)
    terms = _strategy_terms(declared) if declared.active else None
    plan = DpSgdPlan.of(config.options)
    if plan is not None and len(y):
        assert per_example is not None and decay is not None  # both tasks give them
        one_hot = np.eye(info.n_classes, dtype=np.float32)[y]
        loss = _run_dp_sgd(
            spec, weights, (x, y, one_hot), config, plan, per_example, decay, terms
        )
        if loss == loss:  # NaN when no step drew a row
            metrics["train_loss"] = loss
        metrics["dp_steps"] = float(plan.steps)
    elif len(y) and config.epochs > 0:
        metrics["train_loss"] = _run_sgd(
            weights, x, y, info.n_classes, config, step, terms
        )
    logger.debug("trained on %d rows for %d epoch(s)", len(y), config.epochs)
    return TrainResult(Params(weights), num_examples=len(y), metrics=metrics)


class SoftmaxRegression:
    """Multinomial logistic regression; params ``w`` ``(d, k)`` and ``b`` ``(k,)``.

    A binary problem is two classes (``k = 2``), so predictions always have one
    column per class. Initial weights are zero whatever the seed (the loss is convex).
    """

    #: Trains with record-level DP-SGD when a task declares it.
    supports_dp_sgd = True
    #: Adds FedProx's and SCAFFOLD's gradient terms (accord.task.local_strategy).
    supports_proximal = True
    supports_scaffold = True

    def __init__(self, info: DatasetInfo, *, weight_decay: float = 0.0) -> None:
        self.info = info
        self.weight_decay = float(weight_decay)
        d, k = info.n_features, info.n_classes
        self.spec = ParamSpec(
            (TensorSpec("w", "<f4", (d, k)), TensorSpec("b", "<f4", (k,)))
        )

    def init_params(self, seed: int) -> Params:
        """Zero weights and biases (``seed`` is accepted for the protocol)."""
        return Params(
            {t.name: np.zeros(t.shape, np.float32) for t in self.spec.tensors}
        )

    def train(
        self, params: Params, data: ArrayData, config: TrainConfig
    ) -> TrainResult:
        """Minibatch SGD from ``params`` (which are copied, never modified)."""
        return _train(
            self.spec,
            self.info,
            params,
            data,
            config,
            self._step,
            self._per_example,
            self._decay,
        )

    def predict(
        self, params: Params, x: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.floating[Any]]:
        """Class probabilities, float32 ``(n, k)``."""
        self.spec.check(params)
        logits = _features(self.info, x) @ params["w"] + params["b"]
        return _softmax_inplace(logits)

    def _step(
        self, weights: Weights, xb: F32, yb: I64, one_hot: F32, lr: float
    ) -> float:
        w, b = weights["w"], weights["b"]
        grad, loss = _output_gradient(_softmax_inplace(xb @ w + b), yb, one_hot)
        grad_w = xb.T @ grad
        if self.weight_decay:
            grad_w += np.float32(self.weight_decay) * w
        w -= np.float32(lr) * grad_w
        b -= np.float32(lr) * grad.sum(axis=0)
        return loss

    def _per_example(
        self, weights: Weights, xb: F32, yb: I64, one_hot: F32
    ) -> tuple[list[tuple[F32, F32]], float]:
        w, b = weights["w"], weights["b"]
        grad, loss = _example_gradient(_softmax_inplace(xb @ w + b), yb, one_hot)
        return [(xb, grad)], loss

    def _decay(self, weights: Weights) -> dict[str, F32]:
        if not self.weight_decay:
            return {}
        return {"w": np.float32(self.weight_decay) * weights["w"]}


class NumpyMLP:
    """A multilayer perceptron with one hidden ReLU layer of ``hidden`` units.

    Params ``w1`` ``(d, h)``, ``b1`` ``(h,)``, ``w2`` ``(h, k)``, ``b2`` ``(k,)``.
    Initialised like PyTorch's ``nn.Linear``: uniform in ``±1/sqrt(fan_in)``.
    """

    #: Trains with record-level DP-SGD when a task declares it.
    supports_dp_sgd = True
    #: Adds FedProx's and SCAFFOLD's gradient terms (accord.task.local_strategy).
    supports_proximal = True
    supports_scaffold = True

    def __init__(
        self, info: DatasetInfo, *, hidden: int = 64, weight_decay: float = 0.0
    ) -> None:
        if hidden <= 0:
            raise ConfigError("must be a positive integer", key="hidden")
        self.info = info
        self.weight_decay = float(weight_decay)
        d, k = info.n_features, info.n_classes
        self.spec = ParamSpec(
            (
                TensorSpec("w1", "<f4", (d, hidden)),
                TensorSpec("b1", "<f4", (hidden,)),
                TensorSpec("w2", "<f4", (hidden, k)),
                TensorSpec("b2", "<f4", (k,)),
            )
        )

    def init_params(self, seed: int) -> Params:
        """Random weights, deterministic in ``seed``."""
        rng = np.random.default_rng(seed)
        d, h = self.spec.tensors[0].shape
        out: dict[str, F32] = {}
        for t in self.spec.tensors:
            bound = 1.0 / np.sqrt(d if t.name.endswith("1") else h)
            out[t.name] = rng.uniform(-bound, bound, t.shape).astype(np.float32)
        return Params(out)

    def train(
        self, params: Params, data: ArrayData, config: TrainConfig
    ) -> TrainResult:
        """Minibatch SGD from ``params`` (which are copied, never modified)."""
        return _train(
            self.spec,
            self.info,
            params,
            data,
            config,
            self._step,
            self._per_example,
            self._decay,
        )

    def predict(
        self, params: Params, x: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.floating[Any]]:
        """Class probabilities, float32 ``(n, k)``."""
        self.spec.check(params)
        hidden = _features(self.info, x) @ params["w1"] + params["b1"]
        np.maximum(hidden, 0.0, out=hidden)
        return _softmax_inplace(hidden @ params["w2"] + params["b2"])

    def _step(
        self, weights: Weights, xb: F32, yb: I64, one_hot: F32, lr: float
    ) -> float:
        w1, b1, w2, b2 = weights["w1"], weights["b1"], weights["w2"], weights["b2"]
        pre = xb @ w1 + b1
        hidden = np.maximum(pre, 0.0)
        logits = hidden @ w2 + b2
        grad_out, loss = _output_gradient(_softmax_inplace(logits), yb, one_hot)
        grad_hidden = grad_out @ w2.T
        np.multiply(grad_hidden, pre > 0.0, out=grad_hidden)  # ReLU's derivative
        grad_w2 = hidden.T @ grad_out
        grad_w1 = xb.T @ grad_hidden
        if self.weight_decay:
            decay = np.float32(self.weight_decay)
            grad_w1 += decay * w1
            grad_w2 += decay * w2
        rate = np.float32(lr)
        w1 -= rate * grad_w1
        b1 -= rate * grad_hidden.sum(axis=0)
        w2 -= rate * grad_w2
        b2 -= rate * grad_out.sum(axis=0)
        return loss

    def _per_example(
        self, weights: Weights, xb: F32, yb: I64, one_hot: F32
    ) -> tuple[list[tuple[F32, F32]], float]:
        w1, b1, w2, b2 = weights["w1"], weights["b1"], weights["w2"], weights["b2"]
        pre = xb @ w1 + b1
        hidden = np.maximum(pre, 0.0)
        out, loss = _example_gradient(_softmax_inplace(hidden @ w2 + b2), yb, one_hot)
        grad_hidden = (out @ w2.T) * (pre > 0.0)
        return [(xb, grad_hidden), (hidden, out)], loss

    def _decay(self, weights: Weights) -> dict[str, F32]:
        if not self.weight_decay:
            return {}
        decay = np.float32(self.weight_decay)
        return {"w1": decay * weights["w1"], "w2": decay * weights["w2"]}


def softmax_regression(
    info: DatasetInfo, *, weight_decay: float = 0.0
) -> SoftmaxRegression:
    """Task factory: :class:`SoftmaxRegression` for ``info``."""
    return SoftmaxRegression(info, weight_decay=weight_decay)


def mlp(info: DatasetInfo, *, hidden: int = 64, weight_decay: float = 0.0) -> NumpyMLP:
    """Task factory: :class:`NumpyMLP` with ``hidden`` units for ``info``."""
    return NumpyMLP(info, hidden=hidden, weight_decay=weight_decay)
