"""The Task contract, checked for every adapter (see ``conftest.ADAPTERS``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from accord.data.arrays import ArrayData
from accord.errors import UpdateRejected
from accord.evaluation.metrics import evaluate
from accord.params import Params
from accord.task import Task, TrainConfig

if TYPE_CHECKING:  # fixtures' types, defined in this folder's conftest.py
    from conftest import Adapter, Split

CONFIG = TrainConfig(epochs=5, batch_size=32, learning_rate=0.05, seed=3)


def read_only(params: Params) -> Params:
    """The same params as read-only views onto one packed buffer, as received."""
    return params.spec.view(bytes(params.spec.pack(params)))


@pytest.mark.parametrize(
    ("dataset", "threshold"), [("digits", 0.88), ("breast_cancer", 0.9)]
)
def test_learns(
    adapter: Adapter, dataset: str, threshold: float, request: pytest.FixtureRequest
) -> None:
    split: Split = request.getfixturevalue(dataset)
    task = adapter.build(split.info)
    initial = task.init_params(0)

    result = task.train(initial, split.train, CONFIG)

    scores = evaluate(task, result.params, split.test)
    assert scores["accuracy"] >= threshold
    assert scores["auc"] > 0.95
    assert scores["loss"] < evaluate(task, initial, split.test)["loss"]
    assert scores["n"] == len(split.test)
    assert result.num_examples == len(split.train)


def test_is_a_task(adapter: Adapter, digits: Split) -> None:
    assert isinstance(adapter.build(digits.info), Task)


def test_same_seed_gives_bit_identical_params(adapter: Adapter, digits: Split) -> None:
    task = adapter.build(digits.info)
    initial = task.init_params(0)

    first = task.train(initial, digits.train, CONFIG).params
    second = adapter.build(digits.info).train(initial, digits.train, CONFIG).params

    assert first.digest() == second.digest()


def test_another_seed_gives_other_params(adapter: Adapter, digits: Split) -> None:
    if not adapter.uses_seed:
        pytest.skip("this adapter's training does not depend on the seed")
    task = adapter.build(digits.info)
    initial = task.init_params(0)
    other = TrainConfig(epochs=CONFIG.epochs, seed=CONFIG.seed + 1)

    first = task.train(initial, digits.train, CONFIG).params
    second = task.train(initial, digits.train, other).params

    assert first.digest() != second.digest()


def test_init_params_are_deterministic_float32(adapter: Adapter, digits: Split) -> None:
    task = adapter.build(digits.info)

    params = task.init_params(7)

    assert params.digest() == adapter.build(digits.info).init_params(7).digest()
    assert all(a.dtype == np.float32 for a in params.values())


def test_train_leaves_inputs_untouched(adapter: Adapter, digits: Split) -> None:
    task = adapter.build(digits.info)
    initial = task.init_params(1).copy()
    before = initial.digest()
    x_before, y_before = digits.train.x.copy(), digits.train.y.copy()

    task.train(initial, digits.train, CONFIG)

    assert initial.digest() == before
    np.testing.assert_array_equal(digits.train.x, x_before)
    np.testing.assert_array_equal(digits.train.y, y_before)


def test_accepts_read_only_params(adapter: Adapter, digits: Split) -> None:
    task = adapter.build(digits.info)
    initial = task.init_params(1)
    received = read_only(initial)

    trained = task.train(received, digits.train, CONFIG).params
    proba = task.predict(received, digits.test.x)

    assert trained.digest() == task.train(initial, digits.train, CONFIG).params.digest()
    np.testing.assert_array_equal(proba, task.predict(initial, digits.test.x))


def test_returned_params_are_not_changed_by_later_calls(
    adapter: Adapter, digits: Split
) -> None:
    task = adapter.build(digits.info)
    first = task.train(task.init_params(0), digits.train, CONFIG).params
    digest = first.digest()

    task.train(first, digits.train, CONFIG)
    task.predict(first, digits.test.x)

    assert first.digest() == digest


def test_zero_epochs_round_trips_params(adapter: Adapter, digits: Split) -> None:
    task = adapter.build(digits.info)
    trained = task.train(task.init_params(0), digits.train, CONFIG).params

    again = task.train(trained, digits.train, TrainConfig(epochs=0)).params

    assert again.digest() == trained.digest()
    assert again.spec == trained.spec


def test_no_rows_leaves_params_unchanged(adapter: Adapter, digits: Split) -> None:
    task = adapter.build(digits.info)
    initial = task.init_params(0)
    empty = digits.train.subset(np.arange(0))

    result = task.train(initial, empty, CONFIG)

    assert result.num_examples == 0
    assert result.params.digest() == initial.digest()


def test_predict_returns_probabilities(adapter: Adapter, breast_cancer: Split) -> None:
    task = adapter.build(breast_cancer.info)
    params = task.train(task.init_params(0), breast_cancer.train, CONFIG).params

    proba = np.asarray(task.predict(params, breast_cancer.test.x))

    assert proba.shape == (len(breast_cancer.test), 2)
    assert (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def test_rejects_params_of_another_shape(adapter: Adapter, digits: Split) -> None:
    task = adapter.build(digits.info)
    good = task.init_params(0)
    name = next(iter(good))
    bad = Params({n: (a[:-1] if n == name else a) for n, a in good.items()})

    with pytest.raises(UpdateRejected, match=name):
        task.train(bad, digits.train, CONFIG)
    with pytest.raises(UpdateRejected, match=name):
        task.predict(bad, digits.test.x)


def test_rejects_missing_or_mistyped_params(adapter: Adapter, digits: Split) -> None:
    task = adapter.build(digits.info)
    good = task.init_params(0)
    missing = Params(list(good.items())[1:])

    with pytest.raises(UpdateRejected, match="missing"):
        task.train(missing, digits.train, CONFIG)
    with pytest.raises(UpdateRejected, match="dtype"):
        task.train(good.astype(np.float64), digits.train, CONFIG)


def test_trains_on_a_site_missing_classes(adapter: Adapter, digits: Split) -> None:
    task = adapter.build(digits.info)
    initial = task.init_params(0)
    site = digits.train.subset(np.flatnonzero(digits.train.y < 5))

    result = task.train(initial, site, CONFIG)

    assert result.params.spec == initial.spec
    assert result.params.all_finite()
    proba = np.asarray(task.predict(result.params, digits.test.x))
    assert proba.shape == (len(digits.test), 10)
    seen = digits.test.y < 5
    assert (proba[seen].argmax(axis=1) == digits.test.y[seen]).mean() > 0.85


def test_single_row_batches(adapter: Adapter, breast_cancer: Split) -> None:
    task = adapter.build(breast_cancer.info)
    few = ArrayData(breast_cancer.train.x[:7], breast_cancer.train.y[:7])

    result = task.train(task.init_params(0), few, TrainConfig(batch_size=1))

    assert result.num_examples == 7
    assert result.params.all_finite()
