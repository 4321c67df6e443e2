"""Secure Gaussian noise: fresh by default, reproducible with a seed, snapped."""

from __future__ import annotations

import math

import numpy as np
import pytest

from accord.params import Params
from accord.privacy import NoiseSource, add_gaussian, grid_step


def test_unseeded_sources_never_repeat():
    a = NoiseSource().generator(1).normal(size=8)
    b = NoiseSource().generator(1).normal(size=8)
    assert not np.array_equal(a, b)
    assert not NoiseSource().seeded


def test_seeded_source_repeats_per_key_and_differs_across_keys():
    source = NoiseSource(seed=11)
    first = source.generator(3).normal(size=8)

    again = NoiseSource(seed=11).generator(3).normal(size=8)
    other_round = source.generator(4).normal(size=8)

    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other_round)
    assert source.seeded


def test_seeded_noise_differs_from_selection_stream_of_the_same_seed():
    # the DP noise must not be the stream selection derives from the run seed
    plain = np.random.default_rng([11, 3]).normal(size=4)
    assert not np.array_equal(NoiseSource(seed=11).generator(3).normal(size=4), plain)


def test_noise_has_the_requested_spread():
    rng = NoiseSource(seed=0).generator(0)
    noise = add_gaussian(np.zeros(200_000), 2.5, rng)
    assert noise.std() == pytest.approx(2.5, rel=0.01)
    assert abs(noise.mean()) < 0.02


def test_noised_values_lie_on_the_grid():
    rng = NoiseSource(seed=1).generator(0)
    step = grid_step(0.3)

    out = add_gaussian(np.full(1000, 0.123456789), 0.3, rng)

    assert step == math.ldexp(1.0, -1 - 20)  # ceil(log2 0.3) = -1
    np.testing.assert_array_equal(np.round(out / step) * step, out)
    assert len(np.unique(out % step)) == 1


def test_params_keep_names_and_shapes():
    params = Params({"a": np.zeros((2, 3), np.float32), "b": np.ones(4, np.float32)})

    out = add_gaussian(params, 1.0, NoiseSource(seed=2).generator(0))

    assert out.spec.names == ("a", "b")
    assert out["a"].shape == (2, 3) and out["a"].dtype == np.float64


def test_zero_noise_is_identity_and_negative_refused():
    x = np.arange(3.0)
    np.testing.assert_array_equal(add_gaussian(x, 0.0, np.random.default_rng()), x)
    with pytest.raises(ValueError, match="standard deviation"):
        add_gaussian(x, -1e-9, np.random.default_rng())
    with pytest.raises(ValueError, match="seed"):
        NoiseSource(seed=-1)
