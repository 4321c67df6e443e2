"""FedYogi and FedAdagrad against steps worked by hand, and their shared contract."""

from __future__ import annotations

import numpy as np
import pytest

from accord.aggregation import AdamState, ServerAdagrad, ServerYogi
from accord.errors import AggregateRejected, ConfigError
from accord.params import Params

# One scalar tensor, lr 0.1, b1 0.9, b2 0.99, tau 1e-3, from x = 1 with the deltas
# 0.5, -0.5, 0.01. Worked by hand (m, v, x after each step):
# Yogi:    v0 = 1e-6;  d² = 0.25 > v: v = 1e-6 + 0.01 * 0.25 = 0.002501, m = 0.05,
#          x = 1 + 0.1 * 0.05 / (sqrt(0.002501) + 0.001) = 1.0980199980004;
#          v = 0.002501 + 0.0025 = 0.005001, m = -0.005, x = 1.091048223117105;
#          d² = 1e-4 < v: v = 0.005001 - 0.01 * 1e-4 = 0.005 (v shrinks),
#          m = -0.0035, x = 1.0861674995040767.
# Adagrad: v = 1e-6 + 0.25 = 0.250001, x = 1.00998001999998; v = 0.500001,
#          x = 1.009273912511687; v = 0.500101, x = 1.0087796866201095.
DELTAS = (0.5, -0.5, 0.01)
YOGI = (
    (0.05, 0.002501, 1.0980199980004),
    (-0.005, 0.005001, 1.091048223117105),
    (-0.0035, 0.005, 1.0861674995040767),
)
ADAGRAD = (
    (0.05, 0.250001, 1.00998001999998),
    (-0.005, 0.500001, 1.009273912511687),
    (-0.0035, 0.500101, 1.0087796866201095),
)


@pytest.mark.parametrize(
    ("opt", "expected"),
    [(ServerYogi(lr=0.1), YOGI), (ServerAdagrad(lr=0.1), ADAGRAD)],
    ids=["yogi", "adagrad"],
)
def test_three_steps_match_the_hand_computation(opt, expected):
    # Arrange
    params = Params({"x": np.array(1.0)})
    state = opt.init(params)
    # Act / Assert
    for d, (m, v, x) in zip(DELTAS, expected, strict=True):
        params, state = opt.apply(params, Params({"x": np.array(d)}), state)
        assert float(state.m["x"]) == pytest.approx(m, rel=1e-12, abs=1e-15)
        assert float(state.v["x"]) == pytest.approx(v, rel=1e-12)
        assert float(params["x"]) == pytest.approx(x, rel=1e-12)
    assert state.step == 3


def test_yogi_and_adagrad_differ_from_each_other_on_a_float32_model():
    g = Params({"w": np.ones(3, np.float32)})
    d = Params({"w": np.array([0.5, -0.5, 0.0], np.float32)})

    yogi, _ = ServerYogi().apply(g, d, ServerYogi().init(g))
    ada, _ = ServerAdagrad().apply(g, d, ServerAdagrad().init(g))

    assert yogi["w"].dtype == ada["w"].dtype == np.float32
    assert yogi["w"][2] == ada["w"][2] == 1.0  # a zero delta moves nothing
    assert not np.allclose(yogi["w"], ada["w"])


@pytest.mark.parametrize(
    "opt", [ServerYogi(), ServerAdagrad()], ids=["yogi", "adagrad"]
)
def test_state_checkpoints_and_restores_to_the_same_next_step(opt):
    g = Params({"w": np.array([1.0, 2.0], np.float32)})
    d = Params({"w": np.array([0.25, -1.0], np.float32)})
    _, state = opt.apply(g, d, opt.init(g))
    packed = state.to_params()

    restored = opt.state_from_params(packed.spec.view(packed.spec.pack(packed)))

    assert isinstance(restored, AdamState)
    assert opt.apply(g, d, restored)[0].digest() == opt.apply(g, d, state)[0].digest()


@pytest.mark.parametrize(
    "opt", [ServerYogi(), ServerAdagrad()], ids=["yogi", "adagrad"]
)
def test_an_overflowing_step_is_refused_and_mutates_nothing(opt):
    g = Params({"w": np.array([1.0], np.float32)})
    huge = Params({"w": np.array([3e38], np.float32)})  # d² overflows float32
    state = opt.init(g)
    before = state.to_params().digest()

    with pytest.raises(AggregateRejected, match="not finite|NaN|infinite"):
        opt.apply(g, huge, state)

    assert state.to_params().digest() == before


@pytest.mark.parametrize(
    ("factory", "key"),
    [
        (lambda: ServerYogi(lr=0), "lr"),
        (lambda: ServerYogi(beta1=1.0), "beta1"),
        (lambda: ServerYogi(beta2=1.0), "beta2"),
        (lambda: ServerYogi(eps=0.0), "eps"),
        (lambda: ServerAdagrad(lr=float("inf")), "lr"),
        (lambda: ServerAdagrad(beta1=-0.01), "beta1"),
        (lambda: ServerAdagrad(eps=-1e-3), "eps"),
    ],
)
def test_invalid_hyperparameters_name_the_key(factory, key):
    with pytest.raises(ConfigError) as info:
        factory()
    assert info.value.key == key


def test_values_just_inside_the_bounds_are_accepted():
    yogi = ServerYogi(beta1=0.0, beta2=0.999999, eps=1e-12)
    adagrad = ServerAdagrad(beta1=0.999999, eps=1e-12)

    assert (yogi.beta1, yogi.beta2, yogi.eps) == (0.0, 0.999999, 1e-12)
    assert (adagrad.beta1, adagrad.eps) == (0.999999, 1e-12)
