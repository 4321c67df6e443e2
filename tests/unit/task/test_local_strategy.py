"""FedProx's and SCAFFOLD's gradient terms in the adapters, against hand-worked steps.

The example: one row ``x = [1]`` of class 0, two classes, a softmax regression
from zero weights, learning rate 1, batch 1, so each epoch is one step.

Step 1 (at w = w_global = 0): p = [0.5, 0.5], grad_logits = [-0.5, 0.5], so
w = [[0.5, -0.5]] and b = [0.5, -0.5]; FedProx's term mu (w - w_global) is 0 here.
Step 2: logits = [1, -1], p_0 = e / (e + 1/e) = 0.8807971, grad_logits =
[-0.1192029, 0.1192029]; with mu = 0.1 the term is 0.1 * [0.5, -0.5] = [0.05,
-0.05], so w = b = [0.5 + 0.1192029 - 0.05, -(...)] = [0.5692029, -0.5692029]
(without it: [0.6192029, -0.6192029]).

SCAFFOLD with the correction c - c_i = [[0.1, -0.2]] on w and [0.3, 0] on b, one
step: w = [[0.5 - 0.1, -0.5 + 0.2]] = [[0.4, -0.3]], b = [0.5 - 0.3, -0.5] =
[0.2, -0.5].
"""

from __future__ import annotations

import numpy as np
import pytest

from accord.data.arrays import ArrayData, DatasetInfo
from accord.errors import ConfigError
from accord.params import Params
from accord.task import TrainConfig
from accord.task.local_strategy import (
    CORRECTION_KEY,
    OPTION_KEY,
    LocalStrategy,
    check_task,
    gradient_terms,
)
from accord.task.numpy_task import SoftmaxRegression

INFO = DatasetInfo("one", (1,), ("a", "b"))
DATA = ArrayData(np.array([[1.0]], np.float32), np.array([0]))
P2 = 0.8807970779778823


def _zero() -> Params:
    return Params({"w": np.zeros((1, 2), np.float32), "b": np.zeros(2, np.float32)})


def _config(epochs: int, **options: object) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=1, learning_rate=1.0, options=options)


def _declared(**fields: object) -> dict[str, object]:
    return {OPTION_KEY: LocalStrategy(**fields).to_json()}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mu", "expected"), [(0.1, 0.5 + (1 - P2) - 0.05), (0.0, 0.5 + (1 - P2))]
)
def test_numpy_fedprox_matches_two_steps_worked_by_hand(mu, expected):
    task = SoftmaxRegression(INFO)

    out = task.train(_zero(), DATA, _config(2, **_declared(proximal_mu=mu))).params

    np.testing.assert_allclose(out["w"], [[expected, -expected]], rtol=1e-6)
    np.testing.assert_allclose(out["b"], [expected, -expected], rtol=1e-6)


def test_numpy_scaffold_correction_matches_one_step_worked_by_hand():
    task = SoftmaxRegression(INFO)
    correction = Params(
        {"w": np.array([[0.1, -0.2]], np.float32), "b": np.array([0.3, 0], np.float32)}
    )
    options = {**_declared(scaffold=True, run="r1"), CORRECTION_KEY: correction}

    out = task.train(_zero(), DATA, _config(1, **options)).params

    np.testing.assert_allclose(out["w"], [[0.4, -0.3]], rtol=1e-6)
    np.testing.assert_allclose(out["b"], [0.2, -0.5], rtol=1e-6)


def test_torch_fedprox_and_scaffold_match_the_same_steps():
    torch = pytest.importorskip("torch")
    from accord.task.torch import TorchTask

    task = TorchTask(lambda: torch.nn.Linear(1, 2))
    zero = Params({"weight": np.zeros((2, 1), np.float32), "bias": np.zeros(2)})
    zero = Params({n: a.astype(np.float32) for n, a in zero.items()})
    e = 0.5 + (1 - P2) - 0.05
    correction = Params(
        {
            "weight": np.array([[0.1], [-0.2]], np.float32),
            "bias": np.array([0.3, 0], np.float32),
        }
    )

    prox = task.train(zero, DATA, _config(2, **_declared(proximal_mu=0.1))).params
    scaffold = task.train(
        zero,
        DATA,
        _config(1, **_declared(scaffold=True, run="r"), **{CORRECTION_KEY: correction}),
    ).params

    np.testing.assert_allclose(prox["weight"], [[e], [-e]], rtol=1e-6)
    np.testing.assert_allclose(prox["bias"], [e, -e], rtol=1e-6)
    np.testing.assert_allclose(scaffold["weight"], [[0.4], [-0.3]], rtol=1e-6)
    np.testing.assert_allclose(scaffold["bias"], [0.2, -0.5], rtol=1e-6)


def test_sklearn_refuses_fedprox_and_scaffold_saying_why():
    pytest.importorskip("sklearn")
    from accord.task.sklearn import sgd_classifier

    task = sgd_classifier(INFO)
    params = task.init_params(0)

    with pytest.raises(ConfigError, match="compiled code with no hook"):
        task.train(params, DATA, _config(1, **_declared(proximal_mu=0.01)))
    with pytest.raises(ConfigError, match="compiled code with no hook") as info:
        check_task(task, proximal=False, scaffold=True, name="t:b")
    assert info.value.key == "strategy.scaffold"
    check_task(task, proximal=False, scaffold=False, name="t:b")  # FedAvg is fine


def test_a_numpy_task_passes_the_run_start_check():
    check_task(SoftmaxRegression(INFO), proximal=True, scaffold=True, name="t:b")


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"proximal_mu": -1e-9}, "finite number >= 0"),
        ({"proximal_mu": float("inf")}, "finite number >= 0"),
        ({"proximal_mu": True}, "must be a number"),
        ({"scaffold": 1}, "true or false"),
        ({"scaffold": True}, "run's id"),
        ({"mu": 0.1}, "unknown keys"),
        ([0.1], "not an object"),
    ],
)
def test_a_bad_declaration_is_refused_naming_what(raw, match):
    with pytest.raises(ConfigError, match=match):
        LocalStrategy.from_json(raw)


def test_a_declaration_round_trips_through_json_and_zero_is_inactive():
    declared = LocalStrategy(proximal_mu=0.01, scaffold=True, run="r", report_loss=True)

    assert LocalStrategy.from_json(declared.to_json()) == declared
    assert not LocalStrategy(proximal_mu=0.0).active
    assert LocalStrategy.of({}) == LocalStrategy()


def test_scaffold_without_the_sites_correction_is_refused():
    with pytest.raises(ConfigError, match="no correction"):
        gradient_terms(_declared(scaffold=True, run="r"), _zero(), _zero().spec)


def test_a_task_without_the_flags_is_refused_naming_the_adapters_that_can():
    with pytest.raises(ConfigError, match="numpy tasks") as info:
        check_task(object(), proximal=True, scaffold=False, name="t:b")

    assert info.value.key == "strategy.proximal_mu"
