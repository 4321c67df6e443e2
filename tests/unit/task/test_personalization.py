"""Fine-tuning personalization at the site: what it trains, scores and refuses."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from accord.config import config_from_mapping
from accord.data.arrays import ArrayData
from accord.errors import ConfigError, TaskError
from accord.evaluation.metrics import evaluate
from accord.params import Params
from accord.task.numpy_task import softmax_regression
from accord.task.personalization import (
    FineTune,
    finetune_seed,
    is_personalized,
    personalized_scores,
)
from accord.task.protocol import TrainConfig, TrainResult
from accord.task.strategy_site import StrategySite

SETTING = FineTune(epochs=2, batch_size=32, learning_rate=0.05, seed=0)


def _config(personalization: dict[str, Any], **extra: Any) -> Any:
    return config_from_mapping(
        {
            "data": {"dataset": "digits"},
            "task": {"factory": "accord.task.numpy_task:softmax_regression"},
            "train": {"learning_rate": 0.1, "batch_size": 16},
            "personalization": personalization,
            **extra,
        }
    )


def _one_class(split: Any, label: int) -> tuple[ArrayData, ArrayData]:
    """A site that sees one digit only, in training and holdout."""
    keep_tr, keep_te = split.train.y == label, split.test.y == label
    return (
        ArrayData(split.train.x[keep_tr], split.train.y[keep_tr]),
        ArrayData(split.test.x[keep_te], split.test.y[keep_te]),
    )


def test_the_setting_follows_the_config_and_is_off_by_default():
    assert FineTune.of(_config({})) is None
    on = FineTune.of(_config({"method": "finetune", "epochs": 3}))
    own_lr = FineTune.of(_config({"method": "finetune", "learning_rate": 0.01}))

    assert on == FineTune(epochs=3, batch_size=16, learning_rate=0.1, seed=0)
    assert own_lr is not None and own_lr.learning_rate == 0.01


@pytest.mark.parametrize(
    ("personalization", "key"),
    [
        ({"method": "finetune", "epochs": 0}, "personalization.epochs"),
        ({"method": "finetune", "epochs": 1001}, "personalization.epochs"),
        ({"method": "finetune", "learning_rate": 0.0}, "personalization.learning_rate"),
        ({"method": "fedavg"}, "personalization.method"),
        ({"method": "ditto", "lambda": -1.0}, "personalization.lambda"),
        ({"method": "fedper", "private": []}, "personalization"),
        ({"method": "finetune", "head": ["w"]}, "personalization.head"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(personalization, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _config(personalization)


def test_the_largest_epoch_count_is_accepted():
    assert FineTune.of(_config({"method": "finetune", "epochs": 1000})) is not None


def test_personalization_without_federated_evaluation_is_refused():
    with pytest.raises(ConfigError, match="federated = true"):
        _config({"method": "finetune"}, evaluation={"federated": False})


def test_the_seed_is_stable_and_differs_by_site_and_round():
    assert finetune_seed(0, 3, "a") == finetune_seed(0, 3, "a")
    assert len({finetune_seed(0, 3, "a"), finetune_seed(0, 3, "b")}) == 2
    assert finetune_seed(0, 3, "a") != finetune_seed(0, 4, "a")
    assert finetune_seed(1, 3, "a") != finetune_seed(0, 3, "a")
    assert 0 <= finetune_seed(2**40, 10**6, "x" * 200) < 2**63


def test_a_skewed_site_scores_better_with_its_own_model(digits):
    task = softmax_regression(digits.info)
    glob = task.train(
        task.init_params(0), digits.train, TrainConfig(epochs=1, seed=0)
    ).params
    before = {n: a.copy() for n, a in glob.items()}
    train, holdout = _one_class(digits, 3)

    scores = personalized_scores(
        task,
        glob,
        train=train,
        holdout=holdout,
        setting=SETTING,
        round_number=5,
        participant="site-3",
    )
    plain = evaluate(task, glob, holdout)

    assert sorted(scores) == [
        "personalized_accuracy",
        "personalized_auc",
        "personalized_loss",
    ]
    assert all(is_personalized(k) for k in scores)
    assert scores["personalized_loss"] < plain["loss"]
    assert scores["personalized_accuracy"] >= plain["accuracy"]
    # the global model is left as it was (the site trains a copy)
    assert all(np.array_equal(before[n], glob[n]) for n in glob)


def test_the_same_inputs_give_the_same_scores(digits):
    task = softmax_regression(digits.info)
    glob = task.init_params(0)
    train, holdout = _one_class(digits, 7)

    def score() -> dict[str, float]:
        return personalized_scores(
            task,
            glob,
            train=train,
            holdout=holdout,
            setting=SETTING,
            round_number=1,
            participant="s",
        )

    assert score() == score()


def test_no_training_rows_scores_the_global_model(digits):
    task = softmax_regression(digits.info)
    glob = task.init_params(0)
    empty = ArrayData(digits.train.x[:0], digits.train.y[:0])

    scores = personalized_scores(
        task,
        glob,
        train=empty,
        holdout=digits.test,
        setting=SETTING,
        round_number=1,
        participant="s",
    )

    assert scores["personalized_loss"] == evaluate(task, glob, digits.test)["loss"]


def test_the_strategy_wrapper_is_fine_tuned_as_the_plain_task(digits, tmp_path):
    task = softmax_regression(digits.info)
    glob = task.init_params(0)
    train, holdout = _one_class(digits, 1)
    kwargs: dict[str, Any] = {
        "train": train,
        "holdout": holdout,
        "setting": SETTING,
        "round_number": 2,
        "participant": "s",
    }
    site = StrategySite(task, state_dir=tmp_path)

    wrapped = personalized_scores(site, glob, **kwargs)

    assert wrapped == personalized_scores(task, glob, **kwargs)


class _Shrinking:
    """A task whose training drops a tensor: what fine-tuning must refuse."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def init_params(self, seed: int) -> Params:
        return self.inner.init_params(seed)

    def train(self, params: Params, data: ArrayData, config: TrainConfig) -> Any:
        first = next(iter(params))
        return TrainResult(Params({first: params[first]}), len(data))

    def predict(self, params: Params, x: npt.NDArray[np.float32]) -> Any:
        return self.inner.predict(params, x)


def test_a_task_that_returns_a_different_model_is_a_task_error(digits):
    task = _Shrinking(softmax_regression(digits.info))

    with pytest.raises(TaskError, match="same names and shapes"):
        personalized_scores(
            task,
            task.init_params(0),
            train=digits.train,
            holdout=digits.test,
            setting=SETTING,
            round_number=1,
            participant="s",
        )


@pytest.mark.parametrize(
    ("epochs", "batch", "lr"), [(0, 1, 0.1), (1, 0, 0.1), (1, 1, 0.0), (1, 1, np.nan)]
)
def test_a_setting_out_of_range_is_refused(epochs, batch, lr):
    with pytest.raises(ValueError):
        FineTune(epochs=epochs, batch_size=batch, learning_rate=lr, seed=0)


@pytest.mark.parametrize(
    ("personalization", "extra", "says"),
    [
        ({"method": "ditto", "private": ["w"]}, {}, "private is FedPer's setting"),
        ({"method": "fedper", "private": [" "]}, {}, "empty pattern"),
        (
            {"method": "fedper", "private": ["w"]},
            {"strategy": {"scaffold": True}},
            "do not compose",
        ),
        (
            {"method": "ditto"},
            {"evaluation": {"federated": False}},
            "federated evaluation",
        ),
    ],
)
def test_fedper_and_ditto_settings_that_cannot_work_are_refused(
    personalization, extra, says
):
    with pytest.raises(ConfigError, match=says):
        _config(personalization, **extra)


def test_ditto_lambda_keeps_its_toml_name_through_the_stored_config():
    config = _config({"method": "ditto", "lambda": 0.25})

    stored = config.to_json_dict()
    again = type(config).model_validate({**stored, "base_dir": "."})

    assert stored["personalization"]["lambda"] == 0.25
    assert again.personalization.lam == 0.25
