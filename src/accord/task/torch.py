"""Adapter that federates a PyTorch ``nn.Module``.

Params are the module's floating-point ``state_dict`` entries, in ``state_dict``
order and under its names (weights, biases, and float buffers such as BatchNorm's
running statistics, which FedAvg then averages too). Non-float buffers, such as
BatchNorm's ``num_batches_tracked`` counter, are not federated: each copy of the
model keeps its own.

Copies are kept to the one that correctness needs. Training copies the incoming
params into fresh tensors (the caller's arrays are never written), assigns them to
the module (``load_state_dict(assign=True)``), trains them in place, and returns
numpy views of those same tensors; the next call assigns new tensors, so returned
params are never changed afterwards. Prediction reads the caller's arrays directly
(``torch.from_numpy``) unless they are read-only.

Training is plain minibatch optimisation on tensors built from the numpy arrays (no
``DataLoader``, no worker processes): rows are shuffled each epoch by
``torch.randperm`` with a ``torch.Generator`` seeded from ``config.seed``, and the
global CPU generator (dropout, initialisation) is seeded the same way inside
``torch.random.fork_rng`` so the caller's RNG state is left untouched. Modules are
built and trained on the CPU. The adapter
never calls ``torch.set_num_threads``: the engine that runs it decides. It never
loads pickled weights (``torch.load``).

A train task that declares record-level DP-SGD (``[privacy] level = "record"``)
is trained through Opacus instead (:mod:`accord.task.torch_dp`): each site's own
private module, optimizer and Poisson data loader are made once, on its first
round, and reused.

A round's strategy may add terms to every gradient
(:mod:`accord.task.local_strategy`): FedProx's ``mu (w - w_global)`` and SCAFFOLD's
``c - c_i``, added to each trainable parameter's ``.grad`` after the backward pass
and before the optimizer's step. Not with DP-SGD: Opacus builds the noisy gradient
inside its own step, after any such addition, so that combination is refused.

Each thread builds and keeps its own module, so one task may serve several threads.
Importing this module without torch installed raises :class:`MissingExtraError`;
``accord.task`` itself does not import it.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from accord.data.arrays import ArrayData, DatasetInfo
from accord.errors import ConfigError, MissingExtraError, TaskError
from accord.params import Array, Params, ParamSpec, TensorSpec
from accord.privacy.dpsgd import DpSgdPlan
from accord.task.local_strategy import GradientTerms, gradient_terms
from accord.task.protocol import TrainConfig, TrainResult

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise MissingExtraError(
        extra="torch", package="torch", feature="TorchTask"
    ) from exc

__all__ = ["TorchTask", "mlp"]

logger = logging.getLogger(__name__)

_NUMPY_DTYPES: dict[torch.dtype, str] = {
    torch.float16: "<f2",
    torch.float32: "<f4",
    torch.float64: "<f8",
}
#: Rows per forward pass in ``predict``, to bound activation memory.
_PREDICT_CHUNK = 4096


def _tensor(array: npt.NDArray[Any], *, copy: bool) -> torch.Tensor:
    """A tensor over ``array``: shared unless ``copy`` or the array is read-only."""
    if copy or not array.flags.writeable or not array.flags.c_contiguous:
        array = np.array(array, order="C")
    return torch.from_numpy(array)


class TorchTask:
    """A :class:`~accord.task.protocol.Task` over the module built by ``model_fn``.

    ``model_fn`` must build the same architecture on every call (a function or a
    :func:`functools.partial`, so that the task stays picklable). Each round uses a
    fresh optimizer: ``"sgd"`` (with ``momentum`` and ``weight_decay``) or
    ``"adam"`` (with ``weight_decay``), at ``config.learning_rate``.
    """

    #: Trains with record-level DP-SGD when a task declares it (Opacus).
    supports_dp_sgd = True
    #: Adds FedProx's and SCAFFOLD's gradient terms (accord.task.local_strategy).
    supports_proximal = True
    supports_scaffold = True

    def __init__(
        self,
        model_fn: Callable[[], nn.Module],
        *,
        optimizer: Literal["sgd", "adam"] = "sgd",
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        loss: Literal["cross_entropy"] = "cross_entropy",
    ) -> None:
        if optimizer not in ("sgd", "adam"):
            raise ConfigError(f"unknown optimizer {optimizer!r}; use 'sgd' or 'adam'")
        if loss != "cross_entropy":
            raise ConfigError(f"unknown loss {loss!r}; use 'cross_entropy'")
        if momentum < 0 or weight_decay < 0:
            raise ConfigError("momentum and weight_decay must not be negative")
        self.model_fn = model_fn
        self.optimizer = optimizer
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.loss = loss
        self._spec: ParamSpec | None = None
        self._local = threading.local()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_local"]  # modules are rebuilt on the other side
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    @property
    def spec(self) -> ParamSpec:
        """Names, dtypes and shapes of the federated tensors."""
        if self._spec is None:
            self._spec = _spec_of(self._module())
        return self._spec

    def init_params(self, seed: int) -> Params:
        """Params of a module freshly built with the CPU generator seeded by ``seed``.

        For a module built on the CPU this equals ``torch.manual_seed(seed)`` followed
        by ``model_fn()``.
        """
        spec = self.spec  # raises TaskError for a module accord cannot ship
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            module = self.model_fn()
        params = _export(module)
        spec.check(params)
        return params

    def train(
        self, params: Params, data: ArrayData, config: TrainConfig
    ) -> TrainResult:
        """Train from ``params`` (copied, never modified) on ``data``."""
        if config.batch_size <= 0:
            raise ConfigError("must be a positive integer", key="batch_size")
        if config.epochs < 0:
            raise ConfigError("must not be negative", key="epochs")
        x = _tensor(np.asarray(data.x, dtype=self._input_dtype()), copy=False)
        y = _tensor(np.asarray(data.y, dtype=np.int64), copy=False)
        plan = DpSgdPlan.of(config.options)
        terms = gradient_terms(config.options, params, self.spec)
        if plan is not None:
            if terms.active:
                raise ConfigError(
                    "FedProx's and SCAFFOLD's gradient terms cannot be combined with "
                    "record-level DP-SGD in the torch adapter: Opacus computes the "
                    "noisy gradient inside its optimizer step, after any term added "
                    "to .grad. Use the numpy tasks, or turn one of them off",
                    key="strategy",
                )
            return self._train_private(params, x, y, config, plan)
        module = self._load(params, copy=True)
        metrics: dict[str, float] = {}
        if len(y) and config.epochs > 0:
            module.train()
            with torch.random.fork_rng(devices=[]):
                # The CPU generator only: torch.manual_seed also seeds every
                # accelerator, which costs ~0.4 ms per call.
                torch.default_generator.manual_seed(config.seed)
                metrics["train_loss"] = self._fit(module, x, y, config, terms)
        logger.debug("trained on %d rows for %d epoch(s)", len(y), config.epochs)
        return TrainResult(_export(module), num_examples=len(y), metrics=metrics)

    def _train_private(
        self,
        params: Params,
        x: torch.Tensor,
        y: torch.Tensor,
        config: TrainConfig,
        plan: DpSgdPlan,
    ) -> TrainResult:
        """DP-SGD on this site's private module, made on its first round."""
        from accord.task.torch_dp import PrivateSite  # needs the privacy extra

        self.spec.check(params)
        sites: dict[str, PrivateSite] = self._local.__dict__.setdefault("private", {})
        site = sites.get(config.participant)
        if site is None or site.rows != len(y):
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(0)
                module = self.model_fn()
            optimizer = self._make_torch_optimizer(module, config.learning_rate)
            site = PrivateSite.make(module, optimizer, x, y)
            sites[config.participant] = site
            logger.debug("made %r's model private (Opacus)", config.participant)
        site.load(params)
        metrics: dict[str, float] = {"dp_steps": float(plan.steps)}
        if len(y):
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(config.seed)
                loss = site.fit(plan, config)
            if loss == loss:  # NaN when no step drew a row
                metrics["train_loss"] = loss
        return TrainResult(site.export(), num_examples=len(y), metrics=metrics)

    def _make_torch_optimizer(
        self, module: nn.Module, lr: float
    ) -> torch.optim.Optimizer:
        """A ``torch.optim`` optimizer (Opacus wraps only those)."""
        if self.optimizer == "adam":
            return torch.optim.Adam(
                module.parameters(), lr=lr, weight_decay=self.weight_decay
            )
        return torch.optim.SGD(
            module.parameters(),
            lr=lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
        )

    def predict(self, params: Params, x: npt.NDArray[np.float32]) -> Array:
        """Softmax probabilities ``(n, k)``, computed without gradients."""
        module = self._load(params, copy=False)
        module.eval()
        features = _tensor(np.asarray(x, dtype=self._input_dtype()), copy=False)
        with torch.inference_mode():
            chunks = [
                torch.softmax(module(features[i : i + _PREDICT_CHUNK]), dim=1)
                for i in range(0, len(features), _PREDICT_CHUNK)
            ]
        if not chunks:
            return np.zeros((0, 0), dtype=np.float32)
        proba: Array = torch.cat(chunks).numpy()
        return proba

    def _fit(
        self,
        module: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        config: TrainConfig,
        terms: GradientTerms | None = None,
    ) -> float:
        """Run the epochs; return the mean loss of the last one."""
        optimizer = self._make_optimizer(module, config.learning_rate)
        add_terms = _term_adder(module, terms)
        generator = torch.Generator().manual_seed(config.seed)
        n, size = len(y), config.batch_size
        total = torch.zeros((), dtype=torch.float64)
        for _ in range(config.epochs):
            order = torch.randperm(n, generator=generator)
            total = torch.zeros((), dtype=torch.float64)
            for start in range(0, n, size):
                batch = order[start : start + size]
                optimizer.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(module(x[batch]), y[batch])
                torch.autograd.backward(loss)  # = loss.backward(), but typed
                if add_terms is not None:
                    add_terms()
                optimizer.step()
                total += loss.detach() * len(batch)
        return float(total) / n

    def _make_optimizer(self, module: nn.Module, lr: float) -> _Optimizer:
        if self.optimizer == "adam":
            return torch.optim.Adam(
                module.parameters(), lr=lr, weight_decay=self.weight_decay
            )
        return _SGD(
            list(module.parameters()),
            lr=lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
        )

    def _module(self) -> nn.Module:
        """Build (once per thread, seed fixed, caller's RNG untouched) the module."""
        module: nn.Module | None = getattr(self._local, "module", None)
        if module is None:
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(0)
                module = self.model_fn()
            self._local.module = module
        return module

    def _load(self, params: Params, *, copy: bool) -> nn.Module:
        """Put ``params`` into this thread's module; UpdateRejected on a mismatch."""
        self.spec.check(params)
        module = self._module()
        state = module.state_dict()
        for name, array in params.items():
            state[name] = _tensor(array, copy=copy)
        module.load_state_dict(state, strict=True, assign=True)
        return module

    def _input_dtype(self) -> str:
        return self.spec.tensors[0].dtype if self.spec.tensors else "<f4"


def _term_adder(
    module: nn.Module, terms: GradientTerms | None
) -> Callable[[], None] | None:
    """A function adding the strategy's terms to each parameter's ``.grad``."""
    if terms is None or not terms.active:
        return None
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    mu = terms.mu
    anchor = {
        n: torch.from_numpy(np.array(terms.anchor[n]))
        for n, _ in named
        if terms.anchor is not None
    }
    correction = {
        n: torch.from_numpy(np.array(terms.correction[n]))
        for n, _ in named
        if terms.correction is not None
    }

    @torch.no_grad()
    def add() -> None:
        for name, p in named:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            if anchor:
                p.grad.add_(p - anchor[name], alpha=mu)
            if correction:
                p.grad.add_(correction[name])

    return add


class _Optimizer(Protocol):
    def zero_grad(self, set_to_none: bool = True) -> None: ...

    def step(self) -> None: ...


class _SGD:
    """``torch.optim.SGD``'s CPU step (no dampening, no Nesterov), bit for bit.

    Every ``torch.optim`` optimizer imports ``torch._dynamo`` the first time it is
    used, which takes seconds in each fresh process (each simulation worker). This is
    the same arithmetic in the same order as SGD's single-tensor path, the one it
    takes on the CPU: ``g += wd * p``; ``buf = g`` then ``buf = m * buf + g``;
    ``p -= lr * buf``.
    """

    def __init__(
        self,
        params: list[nn.Parameter],
        *,
        lr: float,
        momentum: float,
        weight_decay: float,
    ) -> None:
        self.params = params
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.buffers: list[torch.Tensor | None] = [None] * len(params)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.params):
            grad = p.grad
            if grad is None:
                continue
            if self.weight_decay != 0:
                grad = grad.add(p, alpha=self.weight_decay)
            if self.momentum != 0:
                buf = self.buffers[i]
                if buf is None:
                    buf = grad.detach().clone()
                    self.buffers[i] = buf
                else:
                    buf.mul_(self.momentum).add_(grad, alpha=1)
                grad = buf
            p.add_(grad, alpha=-self.lr)


def _spec_of(module: nn.Module) -> ParamSpec:
    tensors = []
    for name, value in module.state_dict().items():
        if not value.is_floating_point():
            continue
        if value.dtype not in _NUMPY_DTYPES:
            raise TaskError(
                f"{name!r} has dtype {value.dtype}; accord ships float16/32/64 "
                "parameters, so convert the module (e.g. .float()) first"
            )
        tensors.append(TensorSpec(name, _NUMPY_DTYPES[value.dtype], tuple(value.shape)))
    return ParamSpec(tuple(tensors))


def _export(module: nn.Module) -> Params:
    """The module's float state as numpy views (no copy)."""
    return Params(
        {
            name: value.detach().numpy()
            for name, value in module.state_dict().items()
            if value.is_floating_point()
        }
    )


def _build_mlp(sizes: tuple[int, ...], flatten: bool) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()] if flatten else []
    for i, (fan_in, fan_out) in enumerate(pairwise(sizes)):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(fan_in, fan_out))
    return nn.Sequential(*layers)


def mlp(
    info: DatasetInfo, *, hidden: Sequence[int] = (64,), **options: Any
) -> TorchTask:
    """Task factory: a ReLU MLP ``n_features → *hidden → n_classes``.

    The default is benchmark W1's "MLP 64-64-10" on digits (64 inputs, one hidden
    layer of 64, 10 classes): ``nn.Sequential(Linear, ReLU, Linear)``, exactly the
    model of the Flower baseline. ``hidden=(64, 64)`` adds a second hidden layer.
    ``options`` go to :class:`TorchTask`. Inputs of more than one dimension are
    flattened first; ``hidden=()`` is multinomial logistic regression.
    """
    if any(h <= 0 for h in hidden):
        raise ConfigError("hidden layer sizes must be positive", key="hidden")
    sizes = (info.n_features, *(int(h) for h in hidden), info.n_classes)
    flatten = len(info.feature_shape) > 1
    return TorchTask(functools.partial(_build_mlp, sizes, flatten), **options)
