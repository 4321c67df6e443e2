"""DP-SGD in numpy: the declared plan, a site's mechanism, one step by hand."""

from __future__ import annotations

import numpy as np
import pytest

from accord.data.arrays import ArrayData, DatasetInfo
from accord.errors import ConfigError
from accord.privacy.dpsgd import (
    OPTION_KEY,
    DpSgdPlan,
    noisy_dense_gradient,
    noisy_gradient,
    poisson_sample,
    site_mechanism,
)
from accord.privacy.noise import NoiseSource, add_gaussian
from accord.task.numpy_task import mlp, softmax_regression
from accord.task.protocol import TrainConfig

PLAN = DpSgdPlan(
    run="run-1",
    noise_multiplier=1.3,
    clip=0.5,
    sampling_rate=1.0,
    steps=1,
    delta=1e-5,
    noise_seed=11,
)


def test_plan_round_trips_and_refuses_bad_values() -> None:
    assert DpSgdPlan.from_json(PLAN.to_json()) == PLAN
    assert DpSgdPlan.of({OPTION_KEY: PLAN.to_json()}) == PLAN
    assert DpSgdPlan.of({}) is None
    with pytest.raises(ConfigError, match="unknown keys"):
        DpSgdPlan.from_json({**PLAN.to_json(), "eval": "x"})
    with pytest.raises(ConfigError, match="steps"):
        DpSgdPlan.from_json({k: v for k, v in PLAN.to_json().items() if k != "steps"})
    for key, bad in [
        ("sampling_rate", 0.0),
        ("sampling_rate", 1.0 + 1e-12),
        ("clip", 0.0),
        ("noise_multiplier", float("nan")),
        ("steps", -1),
        ("steps", 1.5),
        ("delta", 1.0),
        ("clip", True),
        ("run", 3),
        ("noise_seed", -1),
        ("noise_seed", 2**63),
        ("noise_seed", "7"),
    ]:
        with pytest.raises(ConfigError, match=key):
            DpSgdPlan.from_json({**PLAN.to_json(), key: bad})
    # Just inside the bounds.
    DpSgdPlan.from_json({**PLAN.to_json(), "sampling_rate": 1.0, "steps": 0})


def test_site_mechanism_is_batch_over_rows_and_epochs_of_steps() -> None:
    assert site_mechanism(100, batch_size=32, epochs=2) == (0.32, 8)
    assert site_mechanism(32, batch_size=32, epochs=1) == (1.0, 1)
    assert site_mechanism(31, batch_size=32, epochs=1) == (1.0, 1)  # capped at 1
    with pytest.raises(ValueError, match="at least one row"):
        site_mechanism(0, batch_size=32, epochs=1)


def test_poisson_sampling_draws_each_row_independently() -> None:
    rng = np.random.default_rng(0)
    sizes = [poisson_sample(1000, 0.1, rng).size for _ in range(200)]
    assert abs(np.mean(sizes) - 100) < 3  # expected batch q * rows
    assert np.std(sizes) > 5  # varies: not a fixed-size batch


def test_noisy_gradient_clips_each_example_then_adds_scaled_noise() -> None:
    # Two examples, two tensors; norms 5 and 0.3 (over both tensors together).
    a = np.array([[3.0, 0.0], [0.3, 0.0]])
    b = np.array([[[4.0]], [[0.0]]])
    out = noisy_gradient(
        [a, b],
        clip=1.0,
        noise_multiplier=2.0,
        expected_batch=4.0,
        rng=np.random.default_rng(5),
    )
    summed = np.array([3.0 / 5 + 0.3, 0.0, 4.0 / 5])
    expected = add_gaussian(summed, 2.0, np.random.default_rng(5)) / 4.0
    np.testing.assert_allclose(np.concatenate([o.ravel() for o in out]), expected)
    assert out[1].shape == (1, 1)


def test_dense_clipping_equals_clipping_materialised_gradients() -> None:
    rng = np.random.default_rng(3)
    a1, g1 = rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
    a2, g2 = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    per_example = [
        np.einsum("nd,nk->ndk", a1, g1),
        g1,
        np.einsum("nd,nk->ndk", a2, g2),
        g2,
    ]
    kwargs = {"clip": 0.7, "noise_multiplier": 0.9, "expected_batch": 5.0}

    dense = noisy_dense_gradient(
        [(a1, g1), (a2, g2)], rng=np.random.default_rng(8), **kwargs
    )
    plain = noisy_gradient(per_example, rng=np.random.default_rng(8), **kwargs)

    assert [d.shape for d in dense] == [(4, 3), (3,), (3, 2), (2,)]
    for d, p in zip(dense, plain, strict=True):
        np.testing.assert_allclose(d, p, rtol=1e-12, atol=1e-12)
    empty = noisy_dense_gradient(
        [(a1[:0], g1[:0])], rng=np.random.default_rng(8), **kwargs
    )
    assert [e.shape for e in empty] == [(4, 3), (3,)]  # noise alone


def test_softmax_regression_dp_step_equals_a_hand_computation() -> None:
    info = DatasetInfo("t", (3,), ("a", "b"))
    x = np.array([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0], [2.0, 2.0, 2.0]], np.float32)
    y = np.array([0, 1, 1])
    task = softmax_regression(info)
    start = task.init_params(0)
    start["w"][:] = np.array([[0.1, -0.2], [0.3, 0.0], [-0.1, 0.2]], np.float32)
    lr = 0.5
    config = TrainConfig(
        learning_rate=lr, seed=3, participant="s", options={OPTION_KEY: PLAN.to_json()}
    )

    trained = task.train(start, ArrayData(x, y), config)

    # By hand: q = 1 draws every row; per-example gradients of the cross-entropy.
    logits = x.astype(np.float64) @ start["w"] + start["b"]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    g = proba - np.eye(2)[y]
    per_example = np.concatenate(
        [np.einsum("nd,nk->ndk", x, g).reshape(3, -1), g], axis=1
    )
    norms = np.linalg.norm(per_example, axis=1)
    assert (norms > PLAN.clip).any()  # the clip bites
    clipped = per_example * np.minimum(1.0, PLAN.clip / norms)[:, None]
    noise_rng = NoiseSource(PLAN.noise_seed).generator(config.seed)
    std = PLAN.noise_multiplier * PLAN.clip
    grad = add_gaussian(clipped.sum(axis=0), std, noise_rng) / (1.0 * 3)
    np.testing.assert_allclose(
        trained.params["w"], start["w"] - lr * grad[:6].reshape(3, 2), rtol=1e-5
    )
    np.testing.assert_allclose(
        trained.params["b"], start["b"] - lr * grad[6:], rtol=1e-5, atol=1e-7
    )
    assert trained.metrics["dp_steps"] == 1.0


def test_numpy_mlp_trains_with_dp_and_is_reproducible_when_seeded() -> None:
    info = DatasetInfo("t", (4,), ("a", "b", "c"))
    rng = np.random.default_rng(1)
    data = ArrayData(
        rng.normal(size=(60, 4)).astype(np.float32), rng.integers(0, 3, 60)
    )
    task = mlp(info, hidden=5)
    plan = DpSgdPlan(
        run="r",
        noise_multiplier=1.0,
        clip=1.0,
        sampling_rate=0.2,
        steps=7,
        delta=1e-5,
        noise_seed=2,
    )
    config = TrainConfig(seed=4, options={OPTION_KEY: plan.to_json()})
    start = task.init_params(0)
    one = task.train(start, data, config)
    two = task.train(start, data, config)
    unseeded = DpSgdPlan(**{**plan.to_json(), "noise_seed": None})
    other = task.train(
        start, data, TrainConfig(seed=4, options={OPTION_KEY: unseeded.to_json()})
    )
    for name in start:
        np.testing.assert_array_equal(one.params[name], two.params[name])
        assert not np.array_equal(one.params[name], start[name])
    assert any(not np.array_equal(one.params[n], other.params[n]) for n in start)
    assert one.metrics["dp_steps"] == 7.0


def test_noise_alone_moves_the_model_on_an_empty_draw() -> None:
    info = DatasetInfo("t", (2,), ("a", "b"))
    data = ArrayData(np.ones((3, 2), np.float32), np.array([0, 1, 0]))
    tiny = DpSgdPlan(
        run="r",
        noise_multiplier=1.0,
        clip=1.0,
        sampling_rate=1e-9,
        steps=1,
        delta=1e-5,
        noise_seed=0,
    )
    task = softmax_regression(info)
    start = task.init_params(0)
    out = task.train(start, data, TrainConfig(options={OPTION_KEY: tiny.to_json()}))
    assert not np.array_equal(out.params["w"], start["w"])
    assert "train_loss" not in out.metrics  # no row was drawn
