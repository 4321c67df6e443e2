"""Record-level DP-SGD of TorchTask through Opacus, against a hand computation."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("opacus")

from accord.data.arrays import ArrayData, DatasetInfo  # noqa: E402
from accord.privacy.dpsgd import OPTION_KEY, DpSgdPlan  # noqa: E402
from accord.task.protocol import TrainConfig  # noqa: E402
from accord.task.torch import mlp  # noqa: E402
from accord.task.torch_dp import noise_generator_seed  # noqa: E402

INFO = DatasetInfo("t", (3,), ("a", "b"))
X = np.array([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0], [2.0, 2.0, 2.0]], np.float32)
Y = np.array([0, 1, 1])


def _plan(**changes: object) -> DpSgdPlan:
    base = {
        "run": "r",
        "noise_multiplier": 0.7,
        "clip": 0.5,
        "sampling_rate": 1.0,
        "steps": 1,
        "delta": 1e-5,
        "noise_seed": 9,
    }
    return DpSgdPlan.from_json({**base, **changes})


def test_one_opacus_step_equals_clip_sum_noise_by_hand() -> None:
    task = mlp(INFO, hidden=())  # one Linear(3, 2): weight, bias
    start = task.init_params(0)
    plan = _plan()
    config = TrainConfig(
        learning_rate=0.5, seed=3, participant="s", options={OPTION_KEY: plan.to_json()}
    )

    out = task.train(start, ArrayData(X, Y), config)

    w = torch.tensor(start["0.weight"], dtype=torch.float32, requires_grad=True)
    b = torch.tensor(start["0.bias"], dtype=torch.float32, requires_grad=True)
    per_example = []
    for i in range(3):
        loss = torch.nn.functional.cross_entropy(
            torch.from_numpy(X[i : i + 1]) @ w.T + b, torch.from_numpy(Y[i : i + 1])
        )
        gw, gb = torch.autograd.grad(loss, [w, b])
        per_example.append((gw, gb))
    norms = [torch.sqrt((gw**2).sum() + (gb**2).sum()) for gw, gb in per_example]
    assert max(float(n) for n in norms) > plan.clip  # the clip bites
    factors = [torch.clamp(plan.clip / (n + 1e-6), max=1.0) for n in norms]
    sums = [
        sum(f * g[j] for f, g in zip(factors, per_example, strict=True))
        for j in range(2)
    ]
    generator = torch.Generator().manual_seed(noise_generator_seed(plan, config))
    std = plan.noise_multiplier * plan.clip
    expected = []
    for total, param in zip(sums, (w, b), strict=True):
        torch.normal(0, std, size=(1, 1), generator=generator)  # secure mode: skip 1
        noise = sum(
            torch.normal(0, std, size=param.shape, generator=generator)
            for _ in range(4)
        )
        grad = (total + noise / 2) / (plan.sampling_rate * 3)
        expected.append((param - 0.5 * grad).detach().numpy())
    np.testing.assert_allclose(out.params["0.weight"], expected[0], rtol=1e-5)
    np.testing.assert_allclose(out.params["0.bias"], expected[1], rtol=1e-5)
    assert out.metrics["dp_steps"] == 1.0


def test_the_private_model_is_made_once_per_site_and_reused() -> None:
    task = mlp(INFO, hidden=(4,))
    start = task.init_params(0)
    plan = _plan(sampling_rate=0.5, steps=3)
    data = ArrayData(X, Y)

    def run(site: str, seed: int) -> dict[str, np.ndarray]:
        config = TrainConfig(
            seed=seed, participant=site, options={OPTION_KEY: plan.to_json()}
        )
        return dict(task.train(start, data, config).params)

    first = run("a", 1)
    made = dict(task._local.private)
    again = run("a", 1)  # same site, same seeds: the same result from the same start
    run("b", 2)
    assert task._local.private["a"] is made["a"]
    assert set(task._local.private) == {"a", "b"}
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    # The returned arrays are copies: training again does not change them.
    kept = {n: a.copy() for n, a in first.items()}
    run("a", 5)
    for name in first:
        np.testing.assert_array_equal(first[name], kept[name])


def test_an_empty_poisson_draw_still_adds_noise() -> None:
    task = mlp(INFO, hidden=())
    start = task.init_params(0)
    plan = _plan(sampling_rate=1e-9, steps=2)
    out = task.train(
        start, ArrayData(X, Y), TrainConfig(options={OPTION_KEY: plan.to_json()})
    )
    assert not np.array_equal(out.params["0.weight"], start["0.weight"])
    assert "train_loss" not in out.metrics  # no row was drawn
