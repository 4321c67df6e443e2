"""FedBuff's staleness weights and buffered aggregate against hand-computed values."""

import math

import numpy as np
import pytest

from accord.aggregation.fedbuff import FedBuffBuffer, staleness_weight
from accord.params import Params


def _p(*values, dtype=np.float32):
    return Params({"w": np.array(values, dtype=dtype)})


@pytest.mark.parametrize(
    ("staleness", "expected"), [(0, 1.0), (3, 0.5), (8, 1 / 3), (99, 0.1)]
)
def test_sqrt_staleness_weight_by_hand(staleness, expected):
    assert staleness_weight(staleness) == pytest.approx(expected, rel=1e-15)


def test_constant_rule_and_bad_staleness():
    assert staleness_weight(7, "constant") == 1.0
    with pytest.raises(ValueError, match="at least 0"):
        staleness_weight(-1)


def test_buffer_aggregate_by_hand():
    # A = [1, 2] with 10 examples, fresh; B = [4, -2] with 30 examples, 3 stale:
    # (10 * 1 * A + 30 * 0.5 * B) / (10 + 30) = ([10, 20] + [60, -30]) / 40.
    buf = FedBuffBuffer(_p(0, 0).spec, 2)
    assert buf.add(_p(1, 2), 10, 0) == 1.0
    assert not buf.full
    assert buf.add(_p(4, -2), 30, 3) == 0.5
    assert buf.full
    out = buf.take()
    assert out["w"].dtype == np.float32
    np.testing.assert_allclose(out["w"], [1.75, -0.25], rtol=1e-7)
    assert buf.count == 0 and not buf.full  # emptied by take()


def test_fresh_updates_give_fedavg_and_the_buffer_restarts_clean():
    buf = FedBuffBuffer(_p(0.0).spec, 3)
    for value, n in ((1.0, 1), (2.0, 2), (3.0, 1)):
        buf.add(_p(value), n, 0)
    np.testing.assert_allclose(buf.take()["w"], [2.0])  # (1 + 4 + 3) / 4
    buf.add(_p(5.0), 1, 8)  # alone, 8 stale: 5 / 3
    np.testing.assert_allclose(buf.take()["w"], [5 / 3], rtol=1e-7)


def test_uniformly_stale_buffer_is_damped_not_renormalized():
    buf = FedBuffBuffer(_p(0.0).spec, 2)
    buf.add(_p(2.0), 5, 3)
    buf.add(_p(2.0), 7, 3)
    np.testing.assert_allclose(buf.take()["w"], [1.0])  # 2 * 1/sqrt(4)


def test_constant_rule_is_the_plain_weighted_mean():
    buf = FedBuffBuffer(_p(0.0).spec, 2, rule="constant")
    buf.add(_p(1.0), 1, 5)
    buf.add(_p(4.0), 3, 0)
    np.testing.assert_allclose(buf.take()["w"], [3.25])


def test_refusals():
    buf = FedBuffBuffer(_p(0.0).spec, 1)
    with pytest.raises(ValueError, match="empty"):
        buf.take()
    with pytest.raises(ValueError, match="positive"):
        buf.add(_p(1.0), 0, 0)
    with pytest.raises(ValueError, match="positive"):
        buf.add(_p(1.0), math.nan, 0)
    with pytest.raises(ValueError):
        buf.add(_p(1.0, 2.0), 1, 0)  # does not fit the model
    buf.add(_p(1.0), 1, 0)
    with pytest.raises(ValueError, match="full"):
        buf.add(_p(1.0), 1, 0)
    with pytest.raises(ValueError, match="at least one"):
        FedBuffBuffer(_p(0.0).spec, 0)


def test_max_share_caps_a_heavy_update_before_the_staleness_weight():
    # Weights 10 and 30 under a 0.5 share: 30 is capped to 10 (cap_weights), so
    # (10 * 1 * A + 10 * 0.5 * B) / 20 = ([10, 20] + [20, -10]) / 20.
    buf = FedBuffBuffer(_p(0, 0).spec, 2, max_share=0.5)
    buf.add(_p(1, 2), 10, 0)
    buf.add(_p(4, -2), 30, 3)
    np.testing.assert_allclose(buf.take()["w"], [1.5, 0.5], rtol=1e-7)
