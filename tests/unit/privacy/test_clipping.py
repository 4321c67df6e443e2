"""L2 clipping of updates and of per-example gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from accord.params import Params
from accord.privacy import clip_per_example, clip_update, l2_norm

finite32 = st.floats(-1e6, 1e6, width=32)


def _update(a: np.ndarray, b: np.ndarray) -> Params:
    return Params({"w": a.astype(np.float32), "b": b.astype(np.float32)})


def test_update_within_the_bound_is_kept_as_is():
    update = _update(np.array([3.0, 0.0]), np.array([4.0]))  # norm 5

    clipped = clip_update(update, 5.0)

    assert clipped.within and clipped.norm == 5.0
    assert clipped.update is update


def test_update_just_past_the_bound_is_scaled_to_it():
    update = _update(np.array([3.0, 0.0]), np.array([4.0]))

    clipped = clip_update(update, math.nextafter(5.0, 0.0) - 1e-6)

    assert not clipped.within
    assert l2_norm(clipped.update) <= 5.0 - 1e-6
    assert l2_norm(clipped.update) == pytest.approx(5.0, rel=1e-5)
    assert clipped.update["w"].dtype == np.float32


def test_clipping_keeps_the_direction():
    update = _update(np.array([30.0, -40.0]), np.array([0.0]))

    out = clip_update(update, 1.0).update

    np.testing.assert_allclose(out["w"], [0.6, -0.8], rtol=1e-6)


@given(arrays(np.float32, 7, elements=finite32), st.floats(1e-3, 1e3))
def test_clipped_norm_never_exceeds_the_bound(values, bound):
    update = Params({"x": values})

    out = clip_update(update, bound)

    assert l2_norm(out.update) <= bound
    assert out.within == (l2_norm(update) <= bound)


@pytest.mark.parametrize("bound", [0.0, -1.0, math.inf, math.nan])
def test_bad_bound_is_refused(bound):
    with pytest.raises(ValueError, match="clipping bound"):
        clip_update(_update(np.ones(2), np.ones(1)), bound)


def test_non_finite_update_is_refused_not_zeroed():
    with pytest.raises(ValueError, match="not finite"):
        clip_update(_update(np.array([np.inf, 0.0]), np.ones(1)), 1.0)


def test_per_example_rows_are_clipped_independently():
    grads = np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])

    out = clip_per_example(grads, 1.0)

    norms = np.linalg.norm(out, axis=1)
    assert norms[0] <= 1.0 and norms[0] == pytest.approx(1.0)
    np.testing.assert_array_equal(out[1:], grads[1:])


def test_per_example_keeps_the_trailing_shape():
    grads = np.random.default_rng(0).normal(size=(4, 2, 3)) * 10

    out = clip_per_example(grads, 0.5)

    assert out.shape == grads.shape
    assert (np.linalg.norm(out.reshape(4, -1), axis=1) <= 0.5).all()
