"""Adapter that federates scikit-learn linear classifiers.

A linear model's state is its ``coef_`` and ``intercept_``; accord ships them as the
params ``coef`` and ``intercept`` (float32 on the wire). Their shape follows
scikit-learn: ``(1, d)`` and ``(1,)`` for two classes, ``(k, d)`` and ``(k,)`` for
more. Each call builds a fresh estimator from the factory, sets those attributes, and:

- if the estimator has ``partial_fit`` (``SGDClassifier``, ``Perceptron``), runs
  ``config.epochs`` passes of it with every class of the dataset declared, so a site
  that lacks some classes still trains the full model;
- otherwise (``LogisticRegression``) fits with ``warm_start=True`` and
  ``max_iter=config.epochs``. ``fit`` learns its classes from the labels, so classes
  missing locally are added as one all-zero row each with sample weight 0: they
  shape the model without contributing to its loss.

A few local iterations are what federated training intends, so the adapter silences
scikit-learn's ``ConvergenceWarning`` around fitting. Randomness comes from
``numpy.random.RandomState(config.seed)``, which also makes every epoch of
``partial_fit`` shuffle differently (an integer seed would repeat the same order).

Prediction uses ``predict_proba``; estimators without it (``SGDClassifier`` with
hinge loss, ``Perceptron``) fall back to a softmax of ``decision_function``, with
the binary score ``s`` read as the logits ``(0, s)``. Those are monotone scores, not
calibrated probabilities: fine for accuracy and AUC, not for log loss.

FedProx and SCAFFOLD are refused (:data:`STRATEGY_REFUSAL`): both change every
gradient step, and scikit-learn's solvers (``partial_fit``'s SGD loop and
``fit``'s lbfgs) take their steps in compiled code with no hook to add a term to
the gradient; their only penalty is L2 towards zero, not towards the global model.

scikit-learn is imported only when a task is built or used, so that this module
imports without it; a missing install raises :class:`MissingExtraError`.
"""

from __future__ import annotations

import functools
import importlib
import logging
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from accord.data.arrays import ArrayData, DatasetInfo
from accord.errors import ConfigError, DatasetError, MissingExtraError, TaskError
from accord.params import Params, ParamSpec, TensorSpec
from accord.task.local_strategy import LocalStrategy
from accord.task.protocol import TrainConfig, TrainResult

__all__ = [
    "STRATEGY_REFUSAL",
    "SklearnLinearTask",
    "logistic_regression",
    "sgd_classifier",
]

#: Why the scikit-learn adapter cannot train with FedProx or SCAFFOLD.
STRATEGY_REFUSAL = (
    "scikit-learn's solvers take their gradient steps in compiled code with no hook "
    "to add a term (their only penalty is L2 towards zero, not towards the global "
    "model), so the adapter can add neither FedProx's proximal term nor SCAFFOLD's "
    "correction; use FedAvg, FedAdam, FedYogi or q-FedAvg with this task"
)

logger = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]


def _import(module: str, feature: str) -> ModuleType:
    """Import a scikit-learn submodule, naming the extra to install if it is missing."""
    try:
        return importlib.import_module(f"sklearn.{module}")
    except ImportError as exc:
        raise MissingExtraError(
            extra="sklearn", package="scikit-learn", feature=feature
        ) from exc


class SklearnLinearTask:
    """A :class:`~accord.task.protocol.Task` over a scikit-learn linear classifier.

    ``estimator_factory`` returns a new, unfitted estimator each time it is called
    (a class, or a :func:`functools.partial` of one so the task stays picklable).
    ``learning_rate_param`` names an estimator parameter that receives
    ``config.learning_rate`` at each round (``"eta0"`` for ``SGDClassifier``), or
    ``None`` to leave the estimator's own setting.
    """

    #: Why FedProx and SCAFFOLD are refused (read by the run-start check).
    strategy_refusal = STRATEGY_REFUSAL

    def __init__(
        self,
        estimator_factory: Callable[[], Any],
        info: DatasetInfo,
        *,
        learning_rate_param: str | None = None,
    ) -> None:
        if info.n_classes < 2:
            raise ConfigError("a classifier needs at least two classes", key="classes")
        self.estimator_factory = estimator_factory
        self.info = info
        self.learning_rate_param = learning_rate_param
        rows = 1 if info.n_classes == 2 else info.n_classes
        self.spec = ParamSpec(
            (
                TensorSpec("coef", "<f4", (rows, info.n_features)),
                TensorSpec("intercept", "<f4", (rows,)),
            )
        )

    def init_params(self, seed: int) -> Params:
        """All-zero coefficients, as scikit-learn starts (``seed`` is unused)."""
        return Params(
            {t.name: np.zeros(t.shape, np.float32) for t in self.spec.tensors}
        )

    def train(
        self, params: Params, data: ArrayData, config: TrainConfig
    ) -> TrainResult:
        """Fit from ``params`` on ``data``; ``params`` are copied, never modified."""
        if config.epochs < 0:
            raise ConfigError("must not be negative", key="epochs")
        declared = LocalStrategy.of(config.options)
        if declared.proximal_mu > 0 or declared.scaffold:
            raise ConfigError(STRATEGY_REFUSAL, key="strategy")
        estimator = self._estimator(params)
        x, y = self._features(data.x), self._labels(data.y)
        if len(y) and config.epochs > 0:
            estimator.set_params(random_state=np.random.RandomState(config.seed))
            if self.learning_rate_param is not None:
                estimator.set_params(**{self.learning_rate_param: config.learning_rate})
            convergence = _import("exceptions", "SklearnLinearTask").ConvergenceWarning
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", convergence)
                self._fit(estimator, x, y, config.epochs)
        logger.debug("fitted on %d rows for %d epoch(s)", len(y), config.epochs)
        result = Params(
            {
                "coef": np.asarray(estimator.coef_, np.float32).reshape(
                    self.spec.tensors[0].shape
                ),
                "intercept": np.asarray(estimator.intercept_, np.float32).reshape(-1),
            }
        )
        self._check_output(result)
        return TrainResult(result, num_examples=len(y))

    def predict(self, params: Params, x: npt.NDArray[np.float32]) -> F64:
        """Class probabilities, ``(n, n_classes)``; see the module docstring."""
        estimator = self._estimator(params)
        estimator.classes_ = np.arange(self.info.n_classes)
        features = self._features(x)
        if hasattr(estimator, "predict_proba"):
            return np.asarray(estimator.predict_proba(features), np.float64)
        scores = np.asarray(estimator.decision_function(features), np.float64)
        if scores.ndim == 1:
            scores = np.stack([np.zeros_like(scores), scores], axis=1)
        scores -= scores.max(axis=1, keepdims=True)
        np.exp(scores, out=scores)
        proba: F64 = scores / scores.sum(axis=1, keepdims=True)
        return proba

    def _estimator(self, params: Params) -> Any:
        """A fresh estimator holding (float64 copies of) ``params``."""
        self.spec.check(params)
        estimator = self.estimator_factory()
        estimator.coef_ = np.array(params["coef"], dtype=np.float64)
        estimator.intercept_ = np.array(params["intercept"], dtype=np.float64)
        return estimator

    def _fit(
        self, estimator: Any, x: F64, y: npt.NDArray[np.int64], epochs: int
    ) -> None:
        classes = np.arange(self.info.n_classes)
        if hasattr(estimator, "partial_fit"):
            for _ in range(epochs):
                estimator.partial_fit(x, y, classes=classes)
            return
        names = estimator.get_params()
        if "warm_start" not in names or "max_iter" not in names:
            raise TaskError(
                f"{type(estimator).__name__} has neither partial_fit nor warm_start; "
                "SklearnLinearTask needs one of them to continue from global params"
            )
        estimator.set_params(warm_start=True, max_iter=epochs)
        missing = np.setdiff1d(classes, y)
        x_all = np.vstack([x, np.zeros((missing.size, x.shape[1]))])
        y_all = np.concatenate([y, missing])
        weights = np.concatenate([np.ones(len(y)), np.zeros(missing.size)])
        estimator.fit(x_all, y_all, sample_weight=weights)

    def _features(self, x: npt.NDArray[np.float32]) -> F64:
        if tuple(x.shape[1:]) != self.info.feature_shape:
            raise DatasetError(
                f"features have shape {tuple(x.shape[1:])} per row, but the task was "
                f"built for {self.info.feature_shape}; rebuild it from this dataset"
            )
        return np.asarray(x, dtype=np.float64).reshape(len(x), self.info.n_features)

    def _labels(self, y: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        labels = np.asarray(y, dtype=np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= self.info.n_classes):
            raise DatasetError(
                f"labels must be class indices in [0, {self.info.n_classes})"
            )
        return labels

    def _check_output(self, result: Params) -> None:
        try:
            self.spec.check(result)
        except ValueError as exc:
            raise TaskError(f"the estimator produced unexpected params: {exc}") from exc


def sgd_classifier(info: DatasetInfo, **options: Any) -> SklearnLinearTask:
    """Task factory: ``SGDClassifier(**options)`` for ``info``.

    Defaults to ``loss="log_loss"`` (so it predicts probabilities) and a constant
    learning rate taken from ``config.learning_rate``, unless ``eta0`` is given:
    scikit-learn's ``"optimal"`` schedule would restart at every round. ``average``
    is refused: the running average would restart at every round too, and
    scikit-learn cannot continue it from given coefficients.
    """
    if options.get("average"):
        raise ConfigError(
            "averaged SGD cannot continue from the global model; leave it off",
            key="average",
        )
    linear = _import("linear_model", "sgd_classifier")
    settings: dict[str, Any] = {"loss": "log_loss", "learning_rate": "constant"}
    settings.update(options)
    factory = functools.partial(linear.SGDClassifier, **settings)
    rate_param = None if "eta0" in options else "eta0"
    return SklearnLinearTask(factory, info, learning_rate_param=rate_param)


def logistic_regression(info: DatasetInfo, **options: Any) -> SklearnLinearTask:
    """Task factory: ``LogisticRegression(warm_start=True, **options)`` for ``info``.

    Each round runs ``config.epochs`` iterations of the solver (lbfgs by default)
    from the global coefficients; ``config.learning_rate`` is not used.
    """
    linear = _import("linear_model", "logistic_regression")
    settings: dict[str, Any] = {"warm_start": True, **options}
    factory = functools.partial(linear.LogisticRegression, **settings)
    return SklearnLinearTask(factory, info)
