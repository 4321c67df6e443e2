"""accord's numpy metrics agree with scikit-learn's, and say nan where undefined."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk

from accord.data.arrays import ArrayData
from accord.errors import TaskError
from accord.evaluation.metrics import accuracy, binary_auc, evaluate, log_loss, roc_auc
from accord.params import Params

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)


@st.composite
def labelled_probabilities(
    draw: st.DrawFn, *, min_classes: int = 2, ties: bool = False
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Labels and row-normalised probabilities; ``ties`` draws from a few values."""
    k = draw(st.integers(min_classes, 5))
    n = draw(st.integers(2, 60))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    if ties:
        raw = rng.integers(1, 4, (n, k)).astype(np.float64)
    else:
        raw = rng.uniform(0.01, 1.0, (n, k))
    return y, raw / raw.sum(axis=1, keepdims=True)


@SETTINGS
@given(labelled_probabilities())
def test_accuracy_matches_sklearn(
    case: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]],
) -> None:
    y, proba = case

    assert accuracy(y, proba) == pytest.approx(
        sk.accuracy_score(y, proba.argmax(axis=1))
    )


@SETTINGS
@given(labelled_probabilities())
def test_log_loss_matches_sklearn(
    case: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]],
) -> None:
    y, proba = case
    labels = np.arange(proba.shape[1])

    expected = sk.log_loss(y, proba, labels=labels)

    assert log_loss(y, proba) == pytest.approx(expected, rel=1e-12)


@SETTINGS
@given(labelled_probabilities(), st.booleans())
def test_binary_auc_matches_sklearn_with_ties(
    case: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]], use_ties: bool
) -> None:
    y, proba = case
    positive = y == 0
    scores = np.round(proba[:, 0], 1) if use_ties else proba[:, 0]
    if positive.all() or not positive.any():
        assert math.isnan(binary_auc(positive, scores))
        return

    assert binary_auc(positive, scores) == pytest.approx(
        sk.roc_auc_score(positive, scores), abs=1e-12
    )


@SETTINGS
@given(labelled_probabilities(min_classes=3, ties=True))
def test_multiclass_auc_is_the_ovr_macro_mean(
    case: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]],
) -> None:
    y, proba = case
    k = proba.shape[1]
    present = np.unique(y)
    if present.size == k:
        expected = sk.roc_auc_score(y, proba, multi_class="ovr", average="macro")
    elif present.size > 1:
        # sklearn refuses absent classes; accord averages over the defined ones
        expected = np.mean([sk.roc_auc_score(y == c, proba[:, c]) for c in present])
    else:
        expected = math.nan

    assert roc_auc(y, proba) == pytest.approx(expected, abs=1e-12, nan_ok=True)


@SETTINGS
@given(labelled_probabilities(min_classes=2))
def test_two_columns_give_binary_auc(
    case: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]],
) -> None:
    y, proba = case
    y = np.minimum(y, 1)
    proba = np.column_stack([1 - proba[:, 0], proba[:, 0]])

    assert roc_auc(y, proba) == pytest.approx(
        binary_auc(y == 1, proba[:, 1]), nan_ok=True
    )


@SETTINGS
@given(labelled_probabilities(), st.floats(0.1, 10.0))
def test_auc_is_invariant_to_monotone_transforms(
    case: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]], power: float
) -> None:
    y, proba = case
    positive = y == 0

    original = binary_auc(positive, proba[:, 0])
    transformed = binary_auc(positive, np.exp(proba[:, 0]) ** power)

    assert transformed == pytest.approx(original, abs=1e-12, nan_ok=True)


def test_perfect_and_reversed_and_tied_scores() -> None:
    positive = np.array([False, False, True, True])

    assert binary_auc(positive, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert binary_auc(positive, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert binary_auc(positive, [0.5, 0.5, 0.5, 0.5]) == 0.5


def test_undefined_metrics_are_nan() -> None:
    one_class = np.zeros(4, dtype=np.int64)
    proba = np.full((4, 2), 0.5)
    empty = np.zeros((0, 3))

    assert math.isnan(roc_auc(one_class, proba))
    assert math.isnan(binary_auc([True, False], [np.nan, 0.3]))
    assert math.isnan(accuracy(np.zeros(0, np.int64), empty))
    assert math.isnan(log_loss(np.zeros(0, np.int64), empty))


def test_log_loss_clips_certain_mistakes() -> None:
    loss = log_loss([0, 1], np.array([[0.0, 1.0], [0.0, 1.0]]))

    assert math.isfinite(loss)
    assert loss == pytest.approx(-np.log(1e-15) / 2)


def test_rejects_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="shape"):
        accuracy([0, 1, 1], np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="labels"):
        log_loss([0, 3], np.full((2, 2), 0.5))


class FixedTask:
    """A task whose predictions are given, to test :func:`evaluate` alone."""

    def __init__(self, proba: npt.NDArray[np.float64]) -> None:
        self.proba = proba

    def init_params(self, seed: int) -> Params:
        return Params({"w": np.zeros(1, np.float32)})

    def train(self, params: Params, data: ArrayData, config: Any) -> Any:
        raise NotImplementedError

    def predict(self, params: Params, x: npt.NDArray[np.float32]) -> Any:
        return self.proba


def data_with_labels(y: list[int]) -> ArrayData:
    return ArrayData(np.zeros((len(y), 2), np.float32), np.array(y, dtype=np.int64))


def test_evaluate_reports_every_metric() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    data = data_with_labels([0, 1, 1, 0])
    task = FixedTask(proba)

    scores = evaluate(task, task.init_params(0), data)

    assert scores == {
        "accuracy": 0.5,
        "auc": pytest.approx(sk.roc_auc_score(data.y, proba[:, 1])),
        "loss": pytest.approx(sk.log_loss(data.y, proba)),
        "n": 4.0,
    }


def test_evaluate_on_no_rows_is_nan() -> None:
    task = FixedTask(np.zeros((0, 2)))

    scores = evaluate(task, task.init_params(0), data_with_labels([]))

    assert scores["n"] == 0
    assert all(math.isnan(scores[k]) for k in ("accuracy", "auc", "loss"))


@pytest.mark.parametrize(
    "proba", [np.full((3, 2), 0.5), np.full((4, 1), 1.0), np.full(4, 0.5)], ids=str
)
def test_evaluate_rejects_predictions_of_the_wrong_shape(
    proba: npt.NDArray[np.float64],
) -> None:
    task = FixedTask(proba)

    with pytest.raises(TaskError, match="predict"):
        evaluate(task, task.init_params(0), data_with_labels([0, 1, 1, 0]))
