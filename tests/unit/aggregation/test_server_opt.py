from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from accord.aggregation import AdamState, ServerAdam, ServerSGD, SGDState
from accord.errors import ConfigError, UpdateRejected
from accord.params import Params

finite32 = st.floats(width=32, min_value=-(2.0**100), max_value=2.0**100)


def pair(seed: int = 0, dtype=np.float32) -> tuple[Params, Params]:
    rng = np.random.default_rng(seed)
    shapes = {"conv.weight": (3, 4), "conv.bias": (4,), "scale": ()}
    g = Params({n: rng.standard_normal(s).astype(dtype) for n, s in shapes.items()})
    d = Params(
        {n: (0.1 * rng.standard_normal(s)).astype(dtype) for n, s in shapes.items()}
    )
    return g, d


@settings(max_examples=50, deadline=None)
@given(
    g=hnp.arrays(np.float32, st.integers(0, 20), elements=finite32),
    data=st.data(),
)
def test_sgd_lr_one_is_global_plus_delta_exactly(g, data):
    # Arrange
    d = data.draw(hnp.arrays(np.float32, g.shape, elements=finite32))
    glob, delta = Params({"w": g}), Params({"w": d})
    opt = ServerSGD()
    # Act
    new, state = opt.apply(glob, delta, opt.init(glob))
    # Assert
    assert new["w"].dtype == np.float32
    np.testing.assert_array_equal(new["w"], g + d, strict=True)
    assert state.step == 1


def test_sgd_with_lr_and_momentum_matches_hand_computation():
    g, d = pair()
    opt = ServerSGD(lr=0.5, momentum=0.9)
    state = opt.init(g)
    params = g
    velocity = {n: np.zeros_like(a) for n, a in g.items()}
    expected = {n: a.copy() for n, a in g.items()}

    for _ in range(3):
        params, state = opt.apply(params, d, state)
        for n in expected:
            velocity[n] = np.float32(0.9) * velocity[n] + d[n]
            expected[n] = expected[n] + np.float32(0.5) * velocity[n]

    for n in expected:
        assert params[n].dtype == np.float32
        np.testing.assert_allclose(params[n], expected[n], rtol=1e-6)
    assert state.step == 3


def test_adam_matches_hand_computation():
    g, d = pair(1)
    lr, b1, b2, eps = 0.01, 0.9, 0.99, 1e-3
    opt = ServerAdam(lr=lr, beta1=b1, beta2=b2, eps=eps)
    state = opt.init(g)
    params = g
    x = {n: a.astype(np.float64) for n, a in g.items()}
    m = {n: np.zeros_like(a) for n in g for a in [x[n]]}
    v = {n: np.full_like(a, eps**2) for n in g for a in [x[n]]}
    deltas = [d, d.scale(-2.0), d.scale(0.5)]

    for delta in deltas:
        params, state = opt.apply(params, delta, state)
        for n in x:
            dd = delta[n].astype(np.float64)
            m[n] = b1 * m[n] + (1 - b1) * dd
            v[n] = b2 * v[n] + (1 - b2) * dd**2
            x[n] = x[n] + lr * m[n] / (np.sqrt(v[n]) + eps)

    for n in x:
        assert params[n].dtype == np.float32
        np.testing.assert_allclose(params[n], x[n], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(state.m[n], m[n], rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(state.v[n], v[n], rtol=1e-5, atol=1e-12)
    assert state.step == 3


@pytest.mark.parametrize("opt", [ServerSGD(lr=0.3, momentum=0.5), ServerAdam()])
def test_apply_mutates_nothing(opt):
    g, d = pair(2)
    state = opt.init(g)
    before = (g.digest(), d.digest(), state.to_params().digest())

    opt.apply(g, d, state)

    assert (g.digest(), d.digest(), state.to_params().digest()) == before


@pytest.mark.parametrize(
    "opt", [ServerSGD(), ServerSGD(lr=0.1, momentum=0.9), ServerAdam(lr=0.1)]
)
def test_state_round_trips_through_params_and_bytes(opt):
    g, d = pair(3)
    _, state = opt.apply(g, d, opt.init(g))
    packed = state.to_params()
    assert all(a.dtype.kind == "f" for a in packed.values())

    restored = opt.state_from_params(packed.spec.view(packed.spec.pack(packed)))

    assert restored.step == state.step == 1
    assert restored.to_params().digest() == packed.digest()
    new_a, _ = opt.apply(g, d, state)
    new_b, _ = opt.apply(g, d, restored)
    assert new_a.digest() == new_b.digest()


def test_state_classes_restore_themselves():
    g, _ = pair()
    sgd = SGDState(4, None)
    adam = ServerAdam().init(g)

    assert SGDState.from_params(sgd.to_params()) == sgd
    assert AdamState.from_params(adam.to_params()).step == 0


def test_float64_models_stay_float64():
    g, d = pair(4, np.float64)

    new, state = ServerAdam().apply(g, d, ServerAdam().init(g))

    assert all(a.dtype == np.float64 for a in new.values())
    assert all(a.dtype == np.float64 for a in state.v.values())


@pytest.mark.parametrize(
    ("factory", "key"),
    [
        (lambda: ServerSGD(lr=0), "lr"),
        (lambda: ServerSGD(lr=float("nan")), "lr"),
        (lambda: ServerSGD(momentum=1.0), "momentum"),
        (lambda: ServerAdam(beta1=1.0), "beta1"),
        (lambda: ServerAdam(beta2=-0.1), "beta2"),
        (lambda: ServerAdam(eps=0), "eps"),
    ],
)
def test_invalid_hyperparameters_raise_config_error(factory, key):
    with pytest.raises(ConfigError) as info:
        factory()
    assert info.value.key == key


def test_mismatched_inputs_are_rejected():
    g, d = pair()
    other, _ = pair(dtype=np.float64)
    opt = ServerAdam()

    with pytest.raises(UpdateRejected):
        opt.apply(g, other, opt.init(g))
    with pytest.raises(ValueError, match="does not match the model"):
        opt.apply(g, d, opt.init(other))
    with pytest.raises(ValueError, match="step"):
        SGDState.from_params(Params({"velocity/w": np.zeros(2)}))
    with pytest.raises(ValueError, match="unexpected entry"):
        AdamState.from_params(Params({"step": np.array(1.0), "q/w": np.zeros(2)}))
