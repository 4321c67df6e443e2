"""The PyTorch adapter: W1 parity, state_dict mapping, RNG hygiene, threads."""

from __future__ import annotations

import pickle
import threading
from typing import TYPE_CHECKING

import numpy as np
import pytest

from accord.data.arrays import ArrayData, DatasetInfo
from accord.errors import ConfigError, TaskError
from accord.params import Params
from accord.task import TrainConfig

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from torch import nn  # noqa: E402

from accord.task.torch import TorchTask, mlp  # noqa: E402

if TYPE_CHECKING:
    from conftest import Split

W1 = TrainConfig(epochs=1, batch_size=32, learning_rate=0.05, seed=11)


def flower_model() -> nn.Module:
    """The model of the Flower W1 baseline (shared/peers/flower/w_digits.py)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def flower_epoch(model: nn.Module, data: ArrayData, seed: int) -> None:
    """One local epoch exactly as the Flower W1 client trains."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    for start in range(0, len(order), 32):
        batch = order[start : start + 32]
        optimizer.zero_grad()
        nn.CrossEntropyLoss()(model(x[batch]), y[batch]).backward()
        optimizer.step()


def as_params(model: nn.Module) -> Params:
    return Params({n: t.detach().numpy().copy() for n, t in model.state_dict().items()})


def test_default_mlp_is_the_w1_model_bit_for_bit(digits: Split) -> None:
    task = mlp(digits.info)
    reference = flower_model()

    initial = task.init_params(0)
    trained = task.train(initial, digits.train, W1).params
    flower_epoch(reference, digits.train, seed=W1.seed)

    assert initial.digest() == as_params(flower_model()).digest()
    assert trained.digest() == as_params(reference).digest()


def test_hidden_sizes_add_layers(digits: Split) -> None:
    params = mlp(digits.info, hidden=(64, 64)).init_params(0)

    assert list(params) == [f"{i}.{k}" for i in (0, 2, 4) for k in ("weight", "bias")]
    assert params["4.weight"].shape == (10, 64)


def test_multidimensional_features_are_flattened(digits: Split) -> None:
    info = DatasetInfo("images", (8, 8), digits.info.class_names)
    task = mlp(info, hidden=(16,))
    images = ArrayData(digits.train.x.reshape(-1, 8, 8), digits.train.y)

    params = task.train(task.init_params(0), images, W1).params

    assert task.predict(params, images.x[:3]).shape == (3, 10)


def batchnorm_model() -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10)
    )


def test_float_buffers_are_params_and_counters_stay_local(digits: Split) -> None:
    task = TorchTask(batchnorm_model)
    initial = task.init_params(0)

    trained = task.train(initial, digits.train, W1).params

    assert "1.running_mean" in initial and "1.running_var" in initial
    assert "1.num_batches_tracked" not in initial
    assert not np.array_equal(trained["1.running_mean"], initial["1.running_mean"])


def test_training_leaves_the_callers_rng_alone(digits: Split) -> None:
    task = TorchTask(
        lambda: nn.Sequential(nn.Linear(64, 32), nn.Dropout(0.5), nn.Linear(32, 10))
    )
    state = torch.get_rng_state()

    first = task.train(task.init_params(0), digits.train, W1).params
    second = task.train(task.init_params(0), digits.train, W1).params

    assert torch.equal(torch.get_rng_state(), state)
    assert first.digest() == second.digest()  # dropout masks come from the seed


@pytest.mark.parametrize(
    "options",
    [{"optimizer": "adam"}, {"momentum": 0.9, "weight_decay": 1e-4}],
    ids=["adam", "sgd-momentum"],
)
def test_optimizers_learn_deterministically(
    options: dict[str, object], digits: Split
) -> None:
    task = mlp(digits.info, **options)
    config = TrainConfig(
        epochs=3, learning_rate=0.01 if "optimizer" in options else 0.05
    )

    first = task.train(task.init_params(0), digits.train, config).params
    second = task.train(task.init_params(0), digits.train, config).params

    proba = task.predict(first, digits.test.x)
    assert (proba.argmax(axis=1) == digits.test.y).mean() > 0.9
    assert first.digest() == second.digest()


def test_sgd_with_momentum_and_decay_equals_torch_optim_bit_for_bit(
    digits: Split,
) -> None:
    """accord's SGD avoids torch.optim (which imports torch._dynamo, seconds per
    process) but must give exactly what torch.optim.SGD gives."""
    task = mlp(digits.info, momentum=0.9, weight_decay=1e-4)
    config = TrainConfig(epochs=2, batch_size=32, learning_rate=0.05, seed=5)
    reference = flower_model()
    optimizer = torch.optim.SGD(
        reference.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4
    )
    x, y = torch.from_numpy(digits.train.x), torch.from_numpy(digits.train.y)
    generator = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(config.seed)
        for _ in range(config.epochs):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(order), 32):
                batch = order[start : start + 32]
                optimizer.zero_grad()
                nn.functional.cross_entropy(reference(x[batch]), y[batch]).backward()
                optimizer.step()

    trained = task.train(task.init_params(0), digits.train, config).params

    assert trained.digest() == as_params(reference).digest()


def test_threads_give_the_same_results_as_one(digits: Split) -> None:
    task = mlp(digits.info)
    initial = task.init_params(0)
    configs = [TrainConfig(epochs=2, seed=s) for s in range(4)]
    expected = [task.train(initial, digits.train, c).params.digest() for c in configs]
    results: dict[int, str] = {}

    def run(i: int) -> None:
        results[i] = task.train(initial, digits.train, configs[i]).params.digest()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert [results[i] for i in range(4)] == expected


def test_task_pickles_and_trains_the_same(digits: Split) -> None:
    task = mlp(digits.info)
    task.train(task.init_params(0), digits.train, W1)  # builds a module to drop
    copy = pickle.loads(pickle.dumps(task))

    a = task.train(task.init_params(0), digits.train, W1).params
    b = copy.train(copy.init_params(0), digits.train, W1).params

    assert a.digest() == b.digest()


def test_returned_params_share_no_memory_with_inputs(digits: Split) -> None:
    task = mlp(digits.info)
    initial = task.init_params(0)

    trained = task.train(initial, digits.train, W1).params

    for name in initial:
        assert not np.shares_memory(initial[name], trained[name])


@pytest.mark.parametrize(
    "options",
    [{"optimizer": "rmsprop"}, {"loss": "mse"}, {"momentum": -1.0}],
    ids=["optimizer", "loss", "momentum"],
)
def test_rejects_unknown_settings(options: dict[str, object], digits: Split) -> None:
    with pytest.raises(ConfigError):
        mlp(digits.info, **options)


def test_rejects_bfloat16_modules(digits: Split) -> None:
    task = TorchTask(lambda: nn.Linear(64, 10).to(torch.bfloat16))

    with pytest.raises(TaskError, match="bfloat16"):
        task.init_params(0)
