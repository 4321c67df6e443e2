"""Shared fixtures for the task tests: real bundled datasets and every adapter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split

from accord.data.arrays import ArrayData, DatasetInfo
from accord.task import Task
from accord.task.numpy_task import mlp as numpy_mlp
from accord.task.numpy_task import softmax_regression
from accord.task.sklearn import logistic_regression, sgd_classifier


@dataclass(frozen=True)
class Split:
    """A standardized train/test split of a bundled scikit-learn dataset."""

    info: DatasetInfo
    train: ArrayData
    test: ArrayData


def load_split(name: str) -> Split:
    loader = {"digits": load_digits, "breast_cancer": load_breast_cancer}[name]
    x, y = loader(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=y
    )
    mean, std = x_tr.mean(axis=0), x_tr.std(axis=0)
    std[std == 0] = 1.0
    info = DatasetInfo(name, (x.shape[1],), tuple(str(c) for c in np.unique(y)))
    return Split(
        info,
        ArrayData(((x_tr - mean) / std).astype(np.float32), y_tr.astype(np.int64)),
        ArrayData(((x_te - mean) / std).astype(np.float32), y_te.astype(np.int64)),
    )


@pytest.fixture(scope="session")
def digits() -> Split:
    return load_split("digits")


@pytest.fixture(scope="session")
def breast_cancer() -> Split:
    return load_split("breast_cancer")


@dataclass(frozen=True)
class Adapter:
    """How to build one kind of task, and whether its training uses the seed."""

    build: Callable[[DatasetInfo], Task]
    uses_seed: bool = True


def _torch_mlp(info: DatasetInfo) -> Task:
    pytest.importorskip("torch")
    from accord.task.torch import mlp

    return mlp(info, hidden=(32,))


ADAPTERS = [
    pytest.param(Adapter(softmax_regression), id="numpy-softmax"),
    pytest.param(Adapter(lambda info: numpy_mlp(info, hidden=32)), id="numpy-mlp"),
    pytest.param(Adapter(sgd_classifier), id="sklearn-sgd"),
    # lbfgs is deterministic: the seed has nothing to change
    pytest.param(Adapter(logistic_regression, uses_seed=False), id="sklearn-logreg"),
    pytest.param(Adapter(_torch_mlp), id="torch-mlp", marks=pytest.mark.torch),
]


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest) -> Adapter:
    """Each task adapter in turn (torch ones skipped without torch)."""
    adapter: Adapter = request.param
    return adapter
