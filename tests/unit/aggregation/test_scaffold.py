"""SCAFFOLD's control-variate maths against a small example worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from accord.aggregation.scaffold import (
    CONTROL,
    control_step,
    site_control_step,
    split_control,
    with_control,
    zero_control,
)
from accord.errors import UpdateRejected
from accord.params import Params


def p(**arrays: object) -> Params:
    return Params({k: np.asarray(v, np.float32) for k, v in arrays.items()})


def test_site_step_is_option_two_worked_by_hand():
    # c_i = 0.1, c = 0.3, y - x = -0.4 after K = 4 steps at lr 0.05 (K lr = 0.2):
    # c_i+ = 0.1 - 0.3 + 0.4 / 0.2 = 1.8 and delta_c = 1.8 - 0.1 = 1.7.
    c_i, c, update = p(w=[0.1, 0.0]), p(w=[0.3, 0.0]), p(w=[-0.4, 0.0])

    new, delta = site_control_step(c_i, c, update, steps=4, lr=0.05)

    np.testing.assert_allclose(new["w"], [1.8, 0.0], rtol=1e-6)
    np.testing.assert_allclose(delta["w"], [1.7, 0.0], rtol=1e-6)
    assert new["w"].dtype == delta["w"].dtype == np.float32


def test_coordinator_step_scales_the_mean_by_the_answering_share():
    # c = 0.3, mean delta_c = 1.7, 5 of 10 sites answered: 0.3 + 0.5 * 1.7 = 1.15.
    new = control_step(p(w=0.3), p(w=1.7), fraction=0.5)

    assert float(new["w"]) == pytest.approx(1.15, rel=1e-6)


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.0000001])
def test_coordinator_step_refuses_shares_outside_zero_one(fraction):
    with pytest.raises(ValueError, match="share"):
        control_step(p(w=0.3), p(w=1.7), fraction=fraction)


def test_one_step_is_the_least_and_lr_must_be_positive():
    c = p(w=0.0)
    site_control_step(c, c, c, steps=1, lr=1e-9)
    with pytest.raises(ValueError, match="at least one local step"):
        site_control_step(c, c, c, steps=0, lr=0.1)
    with pytest.raises(ValueError, match="learning rate"):
        site_control_step(c, c, c, steps=1, lr=0.0)


def test_control_rides_with_the_model_and_splits_back():
    model = p(w=[1.0, 2.0], b=0.5)
    control = p(w=[0.1, 0.2], b=0.3)

    extended = with_control(model, control)
    back, got = split_control(extended)

    assert list(extended) == ["w", "b", CONTROL + "w", CONTROL + "b"]
    assert back.digest() == model.digest()
    assert got is not None and got.digest() == control.digest()
    assert split_control(model)[1] is None
    assert zero_control(model)["w"].tolist() == [0.0, 0.0]


def test_a_control_part_that_does_not_fit_the_model_is_refused():
    bad = Params({"w": np.zeros(2, np.float32), CONTROL + "w": np.zeros(3, np.float32)})

    with pytest.raises(UpdateRejected):
        split_control(bad)
