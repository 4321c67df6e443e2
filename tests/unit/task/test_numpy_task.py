"""The pure-numpy tasks: hand-written gradients, options and input checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pytest

from accord.data.arrays import ArrayData, DatasetInfo
from accord.errors import ConfigError, DatasetError
from accord.params import Params
from accord.task import TrainConfig
from accord.task.numpy_task import NumpyMLP, SoftmaxRegression, mlp, softmax_regression

if TYPE_CHECKING:
    from conftest import Split

F64 = npt.NDArray[np.float64]


def mean_cross_entropy(logits: F64, y: npt.NDArray[np.int64]) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_proba = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_proba[np.arange(len(y)), y].mean())


def softmax_loss(p: dict[str, F64], x: F64, y: npt.NDArray[np.int64]) -> float:
    return mean_cross_entropy(x @ p["w"] + p["b"], y)


def mlp_loss(p: dict[str, F64], x: F64, y: npt.NDArray[np.int64]) -> float:
    hidden = np.maximum(x @ p["w1"] + p["b1"], 0.0)
    return mean_cross_entropy(hidden @ p["w2"] + p["b2"], y)


def numerical_gradient(
    loss: Callable[[dict[str, F64], F64, npt.NDArray[np.int64]], float],
    params: Params,
    data: ArrayData,
    eps: float = 1e-6,
) -> dict[str, F64]:
    """Central differences of ``loss`` in float64, one coordinate at a time."""
    point = {n: a.astype(np.float64) for n, a in params.items()}
    x = data.x.astype(np.float64)
    grads: dict[str, F64] = {}
    for name, value in point.items():
        grad = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            original = value[index]
            value[index] = original + eps
            up = loss(point, x, data.y)
            value[index] = original - eps
            down = loss(point, x, data.y)
            value[index] = original
            grad[index] = (up - down) / (2 * eps)
        grads[name] = grad
    return grads


@pytest.mark.parametrize(
    ("build", "loss"),
    [
        (lambda info: softmax_regression(info), softmax_loss),
        (lambda info: mlp(info, hidden=6), mlp_loss),
    ],
    ids=["softmax", "mlp"],
)
def test_one_full_batch_step_follows_the_gradient(
    build: Callable[[DatasetInfo], SoftmaxRegression | NumpyMLP],
    loss: Callable[[dict[str, F64], F64, npt.NDArray[np.int64]], float],
) -> None:
    info = DatasetInfo("small", (8,), tuple("abcd"))
    rng = np.random.default_rng(0)
    data = ArrayData(
        rng.normal(size=(24, 8)).astype(np.float32), rng.integers(0, 4, 24)
    )
    task = build(info)
    start = Params(
        {n: rng.normal(0, 0.5, a.shape) for n, a in task.init_params(0).items()}
    ).astype(np.float32)

    step = task.train(
        start, data, TrainConfig(epochs=1, batch_size=24, learning_rate=1)
    )

    expected = numerical_gradient(loss, start, data)
    for name, grad in expected.items():
        np.testing.assert_allclose(start[name] - step.params[name], grad, atol=2e-5)


def test_weight_decay_shrinks_weights_but_not_biases(digits: Split) -> None:
    plain, decayed = mlp(digits.info), mlp(digits.info, weight_decay=0.5)
    initial = plain.init_params(0)
    config = TrainConfig(epochs=3, seed=1)

    a = plain.train(initial, digits.train, config).params
    b = decayed.train(initial, digits.train, config).params

    assert np.linalg.norm(b["w1"]) < 0.8 * np.linalg.norm(a["w1"])
    assert np.linalg.norm(b["w2"]) < 0.8 * np.linalg.norm(a["w2"])


def test_reports_the_last_epochs_training_loss(digits: Split) -> None:
    task = softmax_regression(digits.info)
    initial = task.init_params(0)

    one = task.train(initial, digits.train, TrainConfig(epochs=1)).metrics
    five = task.train(initial, digits.train, TrainConfig(epochs=5)).metrics

    assert 0 < five["train_loss"] < one["train_loss"] < np.log(10)


def test_mlp_init_is_uniform_in_the_fan_in_bound(digits: Split) -> None:
    params = mlp(digits.info, hidden=50).init_params(0)

    assert np.abs(params["w1"]).max() <= 1 / np.sqrt(64)
    assert np.abs(params["w2"]).max() <= 1 / np.sqrt(50)
    assert params["w1"].std() > 0.5 / np.sqrt(64 * 3)


def test_features_of_several_dimensions_are_flattened(digits: Split) -> None:
    info = DatasetInfo("images", (8, 8), digits.info.class_names)
    task = mlp(info, hidden=16)
    images = ArrayData(digits.train.x.reshape(-1, 8, 8), digits.train.y)

    result = task.train(task.init_params(0), images, TrainConfig(epochs=2))

    assert task.predict(result.params, images.x[:5]).shape == (5, 10)


def test_rejects_features_of_another_shape(digits: Split) -> None:
    task = softmax_regression(digits.info)
    wrong = ArrayData(digits.train.x[:, :10], digits.train.y)

    with pytest.raises(DatasetError, match="rebuild"):
        task.train(task.init_params(0), wrong, TrainConfig())
    with pytest.raises(DatasetError):
        task.predict(task.init_params(0), wrong.x)


def test_rejects_labels_outside_the_classes(digits: Split) -> None:
    task = softmax_regression(digits.info)
    wrong = ArrayData(digits.train.x, digits.train.y + 1)

    with pytest.raises(DatasetError, match=r"\[0, 10\)"):
        task.train(task.init_params(0), wrong, TrainConfig())


@pytest.mark.parametrize(
    "config", [TrainConfig(batch_size=0), TrainConfig(epochs=-1)], ids=str
)
def test_rejects_invalid_config(config: TrainConfig, digits: Split) -> None:
    task = softmax_regression(digits.info)

    with pytest.raises(ConfigError):
        task.train(task.init_params(0), digits.train, config)


def test_rejects_an_empty_hidden_layer(digits: Split) -> None:
    with pytest.raises(ConfigError, match="hidden"):
        mlp(digits.info, hidden=0)
