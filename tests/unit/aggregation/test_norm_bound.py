"""Norm bounding: the batch rule scales in cache what the streaming path copies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from accord.aggregation import NormBounding, weighted_mean
from accord.aggregation.gram import CHUNK, squared_norm, squared_norms
from accord.aggregation.norm_bound import bound_norm
from accord.params import Params


def _updates(seed: int, n: int, dtype: type[np.floating]) -> list[Params]:
    rng = np.random.default_rng(seed)
    # three tensors, one longer than a chunk, so chunks and blocks are crossed
    return [
        Params(
            {
                "a": (rng.standard_normal(3 * CHUNK + 17) * rng.uniform(0.1, 9)).astype(
                    dtype
                ),
                "b": rng.standard_normal((5, 7)).astype(dtype),
                "c": rng.standard_normal(1).astype(dtype),
            }
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_batch_rule_equals_clipping_copies_then_the_mean_bit_for_bit(dtype, seed):
    # Arrange: a bound at the median norm, so some updates are clipped and some not
    updates = _updates(seed, 7, dtype)
    norms = [math.sqrt(squared_norm(u)) for u in updates]
    bound = sorted(norms)[3]
    weights = [float(w) for w in np.random.default_rng(seed).integers(1, 500, 7)]

    # Act
    batch = NormBounding(bound=bound).aggregate(updates, weights)
    copies = [bound_norm(u, bound) for u in updates]
    expected = weighted_mean([c for c, _ in copies], weights)

    # Assert
    assert sum(scaled for _, scaled in copies) == 3
    for name in expected:
        assert batch[name].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(batch[name], expected[name])


def test_squared_norms_in_one_pass_equal_each_alone_and_numpy():
    updates = _updates(3, 5, np.float32)

    together = squared_norms(updates, workers=2)

    for u, value in zip(updates, together, strict=True):
        assert value == squared_norm(u, workers=1)
        exact = math.fsum(float(v) ** 2 for a in u.values() for v in a.reshape(-1))
        assert value == pytest.approx(exact, rel=1e-12)


def test_a_clipped_update_has_the_bound_as_its_norm_and_keeps_its_direction():
    (update,) = _updates(4, 1, np.float32)
    norm = math.sqrt(squared_norm(update))

    clipped, scaled = bound_norm(update, norm / 4)
    kept, unscaled = bound_norm(update, norm * 2)

    assert scaled and not unscaled and kept is update
    assert math.sqrt(squared_norm(clipped)) == pytest.approx(norm / 4, rel=1e-6)
    np.testing.assert_allclose(clipped["a"] * 4, update["a"], rtol=1e-5)
