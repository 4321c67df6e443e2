"""Ditto at the site: the personal step against a hand-computed example.

One row ``x = (1, 2)`` of class 0, two classes, softmax regression. The personal
model starts at ``v = 0`` (so the predictions are uniform, ``p = (1/2, 1/2)``), the
global model is ``w = 1`` everywhere, ``lr = 0.5``, ``lambda = 0.5``. By hand:

* cross-entropy gradient: ``dW = x^T (p - e_0) = [[-1/2, 1/2], [-1, 1]]``,
  ``db = (-1/2, 1/2)``;
* proximal term ``lambda (v - w) = -1/2`` in every entry;
* ``v' = v - lr (grad + prox)``: ``W' = [[1/2, 0], [3/4, -1/4]]``,
  ``b' = (1/2, 0)``.
"""

from __future__ import annotations

import numpy as np
import pytest

from accord.data.arrays import ArrayData, DatasetInfo
from accord.errors import ConfigError
from accord.params import Params
from accord.task import TrainConfig
from accord.task.ditto import DittoSite
from accord.task.numpy_task import softmax_regression
from accord.task.personal_state import MemoryStore
from accord.task.sklearn import sgd_classifier

INFO = DatasetInfo("two", (2,), ("a", "b"))
ROW = ArrayData(np.array([[1.0, 2.0]], np.float32), np.array([0]))
CONFIG = TrainConfig(
    epochs=1, batch_size=1, learning_rate=0.5, round=1, participant="s"
)
GLOBAL = Params({"w": np.ones((2, 2), np.float32), "b": np.ones(2, np.float32)})
ZERO = Params({"w": np.zeros((2, 2), np.float32), "b": np.zeros(2, np.float32)})


def test_the_personal_step_matches_the_hand_computed_one():
    store = MemoryStore()
    store.save("s", 0, ZERO)
    site = DittoSite(softmax_regression(INFO), lam=0.5, store=store)

    site.train(GLOBAL, ROW, CONFIG)

    own = store.load("s", like=GLOBAL, before=2)
    assert own is not None
    np.testing.assert_allclose(own["w"], [[0.5, 0.0], [0.75, -0.25]], atol=1e-6)
    np.testing.assert_allclose(own["b"], [0.5, 0.0], atol=1e-6)


def test_the_global_update_is_plain_fedavg_and_lambda_zero_is_local_training():
    store = MemoryStore()
    store.save("s", 0, ZERO)
    task = softmax_regression(INFO)
    site = DittoSite(task, lam=0.0, store=store)

    sent = site.train(GLOBAL, ROW, CONFIG)

    plain_global = task.train(GLOBAL, ROW, CONFIG).params
    plain_local = task.train(ZERO, ROW, CONFIG).params
    for name in GLOBAL:
        np.testing.assert_array_equal(sent.params[name], plain_global[name])
        own = store.load("s", like=GLOBAL, before=2)
        assert own is not None
        np.testing.assert_array_equal(own[name], plain_local[name])


def test_a_site_without_a_personal_model_starts_it_from_the_global_one():
    store = MemoryStore()
    site = DittoSite(softmax_regression(INFO), lam=0.5, store=store)

    assert site.personal_model(GLOBAL, "s") is GLOBAL
    site.train(GLOBAL, ROW, CONFIG)

    own = store.load("s", like=GLOBAL, before=2)
    # v = w: the proximal term is zero, so the first step is plain SGD from w
    expected = softmax_regression(INFO).train(GLOBAL, ROW, CONFIG).params
    assert own is not None
    np.testing.assert_allclose(own["w"], expected["w"], atol=1e-7)


def test_a_task_without_the_proximal_term_is_refused_with_the_reason():
    with pytest.raises(ConfigError, match="Ditto") as caught:
        DittoSite(sgd_classifier(INFO), lam=0.1, store=MemoryStore())

    assert caught.value.key == "personalization.method"


@pytest.mark.parametrize("lam", [-0.1, float("nan"), float("inf")])
def test_a_bad_lambda_is_refused(lam: float):
    with pytest.raises(ConfigError, match="lambda"):
        DittoSite(softmax_regression(INFO), lam=lam, store=MemoryStore())


def test_the_torch_adapter_takes_the_same_personal_step():
    torch = pytest.importorskip("torch")
    from accord.task.torch import TorchTask

    task = TorchTask(lambda: torch.nn.Linear(2, 2))
    # torch's Linear keeps W as (out, in): the hand-computed W, transposed
    glob = Params({"weight": np.ones((2, 2), np.float32), "bias": np.ones(2)})
    glob = glob.astype(np.float32)
    store = MemoryStore()
    store.save("s", 0, Params({n: np.zeros_like(a) for n, a in glob.items()}))
    site = DittoSite(task, lam=0.5, store=store)

    site.train(glob, ROW, CONFIG)

    own = store.load("s", like=glob, before=2)
    assert own is not None
    np.testing.assert_allclose(own["weight"], [[0.5, 0.75], [0.0, -0.25]], atol=1e-6)
    np.testing.assert_allclose(own["bias"], [0.5, 0.0], atol=1e-6)
