"""DP-FedAvg's aggregation: clip, uniform sum, noise once, divide by the selected."""

from __future__ import annotations

import numpy as np
import pytest

from accord.aggregation import DpMeanAccumulator
from accord.errors import UpdateRejected
from accord.params import Params
from accord.privacy import NoiseSource, grid_step


def update(*values: float) -> Params:
    return Params({"w": np.array(values, dtype=np.float32)})


def accumulator(
    *, z: float = 0.0, clip: float = 1.0, denominator: int = 2, seed: int = 0
) -> DpMeanAccumulator:
    return DpMeanAccumulator(
        update(0, 0).spec,
        clip=clip,
        noise_multiplier=z,
        denominator=denominator,
        rng=NoiseSource(seed=seed).generator(1),
    )


def test_without_noise_it_is_the_uniform_mean_of_clipped_updates():
    # Arrange: one update inside the clip, one far outside it
    acc = accumulator(clip=1.0, denominator=2)

    # Act: weights (example counts) must not matter
    acc.add(update(0.6, 0.0), 1000.0)
    acc.add(update(0.0, 30.0), 1.0)
    out = acc.result()

    # Assert: (0.6, 0) + (0, 1) over the 2 selected
    np.testing.assert_allclose(out["w"], [0.3, 0.5], rtol=1e-6)
    assert out["w"].dtype == np.float32
    assert (acc.count, acc.within) == (2, 1)


def test_the_denominator_is_the_number_selected_not_the_number_received():
    acc = accumulator(clip=10.0, denominator=4)
    acc.add(update(2.0, 4.0), 1.0)
    np.testing.assert_allclose(acc.result()["w"], [0.5, 1.0])


def test_noise_has_std_multiplier_times_clip_over_denominator():
    spec = Params({"w": np.zeros(50_000, np.float32)}).spec
    acc = DpMeanAccumulator(
        spec,
        clip=0.5,
        noise_multiplier=2.0,
        denominator=4,
        rng=NoiseSource(seed=3).generator(1),
    )
    acc.add(Params({"w": np.zeros(50_000, np.float32)}), 1.0)

    noise = acc.result()["w"].astype(np.float64)

    assert noise.std() == pytest.approx(2.0 * 0.5 / 4, rel=0.02)
    # snapped: the noised sum lies on the grid of its noise (then / 4)
    step = grid_step(1.0) / 4
    np.testing.assert_allclose(np.round(noise / step) * step, noise, atol=1e-9)


def test_seeded_noise_is_reproducible_and_differs_by_seed():
    def run(seed: int) -> np.ndarray:
        acc = accumulator(z=1.0, seed=seed)
        acc.add(update(0.1, 0.2), 1.0)
        acc.add(update(0.3, -0.2), 1.0)
        return acc.result()["w"]

    np.testing.assert_array_equal(run(5), run(5))
    assert not np.array_equal(run(5), run(6))


def test_the_noised_mean_is_released_once():
    acc = accumulator(z=1.0)
    acc.add(update(0.1, 0.2), 1.0)
    acc.result()
    with pytest.raises(RuntimeError, match="once"):
        acc.result()
    with pytest.raises(RuntimeError, match="released"):
        acc.add(update(0.1, 0.2), 1.0)


def test_a_misshapen_update_is_refused_and_the_sum_unchanged():
    acc = accumulator()
    acc.add(update(0.2, 0.2), 1.0)
    with pytest.raises(UpdateRejected):
        acc.add(update(1.0, 1.0, 1.0), 1.0)
    assert acc.count == 1
    np.testing.assert_allclose(acc.result()["w"], [0.1, 0.1])


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"clip": 0.0}, "clip"),
        ({"denominator": 0}, "denominator"),
        ({"z": -1.0}, "noise"),
    ],
)
def test_bad_settings_are_refused(changes, match):
    with pytest.raises(ValueError, match=match):
        accumulator(**changes)


def test_empty_round_has_no_mean():
    with pytest.raises(ValueError, match="no update"):
        accumulator().result()
