"""The scikit-learn adapter: shapes, settings it passes on, and its fallbacks."""

from __future__ import annotations

import functools
import pickle
import sys
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pytest
from sklearn.linear_model import Perceptron, RidgeClassifier, SGDClassifier

from accord.errors import ConfigError, MissingExtraError, TaskError
from accord.task import TrainConfig
from accord.task.sklearn import (
    SklearnLinearTask,
    logistic_regression,
    sgd_classifier,
)

if TYPE_CHECKING:
    from conftest import Split


def test_binary_params_have_one_row(breast_cancer: Split) -> None:
    task = sgd_classifier(breast_cancer.info)

    params = task.train(task.init_params(0), breast_cancer.train, TrainConfig()).params

    assert params["coef"].shape == (1, 30)
    assert params["intercept"].shape == (1,)


def test_multiclass_params_have_one_row_per_class(digits: Split) -> None:
    task = logistic_regression(digits.info)

    params = task.train(task.init_params(0), digits.train, TrainConfig()).params

    assert params["coef"].shape == (10, 64)
    assert params["intercept"].shape == (10,)


def test_sgd_uses_the_configured_learning_rate(digits: Split) -> None:
    task = sgd_classifier(digits.info)
    initial = task.init_params(0)

    slow = task.train(initial, digits.train, TrainConfig(learning_rate=0.001))
    fast = task.train(initial, digits.train, TrainConfig(learning_rate=0.1))

    assert np.linalg.norm(slow.params["coef"]) < np.linalg.norm(fast.params["coef"])


def test_an_explicit_eta0_wins_over_the_config(digits: Split) -> None:
    task = sgd_classifier(digits.info, eta0=0.01)
    initial = task.init_params(0)

    a = task.train(initial, digits.train, TrainConfig(learning_rate=0.001)).params
    b = task.train(initial, digits.train, TrainConfig(learning_rate=0.1)).params

    assert a.digest() == b.digest()


def test_epochs_of_partial_fit_shuffle_differently(digits: Split) -> None:
    task = sgd_classifier(digits.info)
    initial = task.init_params(0)
    one = task.train(initial, digits.train, TrainConfig(epochs=1, seed=5)).params

    # Two rounds of one epoch with the same seed repeat one order; two epochs do not.
    repeated = task.train(one, digits.train, TrainConfig(epochs=1, seed=5)).params
    two = task.train(initial, digits.train, TrainConfig(epochs=2, seed=5)).params

    assert repeated.digest() != two.digest()


def test_more_solver_iterations_fit_better(digits: Split) -> None:
    task = logistic_regression(digits.info)
    initial = task.init_params(0)

    few = task.train(initial, digits.train, TrainConfig(epochs=2)).params
    many = task.train(initial, digits.train, TrainConfig(epochs=20)).params

    proba_few = task.predict(few, digits.train.x)
    proba_many = task.predict(many, digits.train.x)
    rows = np.arange(len(digits.train))
    true_few = proba_few[rows, digits.train.y]
    true_many = proba_many[rows, digits.train.y]
    assert np.log(true_many).mean() > np.log(true_few).mean()


def test_convergence_warnings_stay_inside(digits: Split) -> None:
    task = logistic_regression(digits.info)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = task.train(task.init_params(0), digits.train, TrainConfig(epochs=1))

    assert [str(w.message) for w in caught] == []
    assert result.num_examples == len(digits.train)


def test_site_with_a_single_class(breast_cancer: Split) -> None:
    task = logistic_regression(breast_cancer.info)
    site = breast_cancer.train.subset(np.flatnonzero(breast_cancer.train.y == 1))

    result = task.train(task.init_params(0), site, TrainConfig(epochs=3))

    proba = task.predict(result.params, breast_cancer.test.x)
    assert proba[:, 1].mean() > 0.5


def test_hinge_loss_falls_back_to_a_softmax_of_scores(digits: Split) -> None:
    task = sgd_classifier(digits.info, loss="hinge")
    params = task.train(task.init_params(0), digits.train, TrainConfig()).params

    proba = task.predict(params, digits.test.x)

    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    estimator = SGDClassifier(loss="hinge")
    estimator.coef_ = params["coef"].astype(np.float64)
    estimator.intercept_ = params["intercept"].astype(np.float64)
    estimator.classes_ = np.arange(10)
    np.testing.assert_array_equal(
        proba.argmax(axis=1), estimator.predict(digits.test.x)
    )


def test_binary_scores_become_two_columns(breast_cancer: Split) -> None:
    task = SklearnLinearTask(Perceptron, breast_cancer.info)

    params = task.train(task.init_params(0), breast_cancer.train, TrainConfig()).params
    proba = task.predict(params, breast_cancer.test.x)

    assert proba.shape == (len(breast_cancer.test), 2)
    assert (proba.argmax(axis=1) == breast_cancer.test.y).mean() > 0.9


def test_rejects_estimators_that_cannot_continue(digits: Split) -> None:
    task = SklearnLinearTask(RidgeClassifier, digits.info)

    with pytest.raises(TaskError, match="partial_fit nor warm_start"):
        task.train(task.init_params(0), digits.train, TrainConfig())


def test_task_pickles(digits: Split) -> None:
    task = sgd_classifier(digits.info, alpha=1e-3)
    copy = pickle.loads(pickle.dumps(task))

    first = task.train(task.init_params(0), digits.train, TrainConfig()).params
    second = copy.train(copy.init_params(0), digits.train, TrainConfig()).params

    assert isinstance(task.estimator_factory, functools.partial)
    assert first.digest() == second.digest()


def test_missing_sklearn_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, digits: Split
) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.linear_model", None)

    with pytest.raises(MissingExtraError, match=r"accord\[sklearn\]"):
        sgd_classifier(digits.info)


def test_refuses_averaged_sgd(digits: Split) -> None:
    with pytest.raises(ConfigError, match="average"):
        sgd_classifier(digits.info, average=True)
