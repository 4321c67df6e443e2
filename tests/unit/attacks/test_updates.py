"""Update attacks: each formula, the ALIE z of the paper, the min-max/sum search."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.attacks.updates import (
    UpdateAttack,
    alie,
    alie_backdoor,
    alie_z,
    ipm,
    min_max,
    min_sum,
)


def _honest(seed: int = 0, n: int = 8, d: int = 20) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.5, 1.0, size=(n, d))


@pytest.mark.parametrize(
    ("n", "f", "z"),
    [(10, 2, 0.2533), (50, 12, 0.5828), (20, 0, -0.1257)],
)
def test_alie_z_is_the_papers_z_max(n: int, f: int, z: float) -> None:
    # s = floor(n/2 + 1) - f; z = Phi^-1((n - s) / n), Baruch et al. 2019, sec. 3
    assert alie_z(n, f) == pytest.approx(z, abs=1e-3)


def test_alie_z_refuses_more_attackers_than_participants() -> None:
    with pytest.raises(ValueError, match="0 <= f <= n"):
        alie_z(3, 4)


def test_alie_is_mean_plus_z_std_per_coordinate() -> None:
    honest = _honest()

    out = alie(honest, z=1.5)

    np.testing.assert_allclose(out, honest.mean(0) + 1.5 * honest.std(0))


def test_ipm_is_minus_epsilon_times_the_mean() -> None:
    honest = _honest()

    np.testing.assert_allclose(ipm(honest, epsilon=0.1), -0.1 * honest.mean(0))


def _sq(rows: np.ndarray, point: np.ndarray) -> np.ndarray:
    return np.asarray(((rows - point) ** 2).sum(axis=1))


def _bound(honest: np.ndarray, how: str) -> float:
    d2 = ((honest[:, None, :] - honest[None, :, :]) ** 2).sum(-1)
    return float((d2.max(1) if how == "max" else d2.sum(1)).max())


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    direction=st.sampled_from(["unit_vec", "std", "sign"]),
)
def test_min_max_stays_within_the_honest_spread_and_is_nearly_maximal(
    seed: int, direction: str
) -> None:
    honest = _honest(seed)
    mean = honest.mean(0)

    out = min_max(honest, direction=direction, tolerance=1e-6)  # type: ignore[arg-type]

    bound = _bound(honest, "max")
    assert _sq(honest, out).max() <= bound * (1 + 1e-9)
    # a little further along the same direction breaks the bound
    step = out - mean
    assert np.linalg.norm(step) > 0
    assert _sq(honest, mean + step * 1.01).max() > bound


def test_min_sum_stays_within_the_honest_sum_of_distances() -> None:
    honest = _honest(3)

    out = min_sum(honest, direction="unit_vec")

    assert _sq(honest, out).sum() <= _bound(honest, "sum") * (1 + 1e-9)
    assert _sq(honest, honest.mean(0) + (out - honest.mean(0)) * 1.01).sum() > _bound(
        honest, "sum"
    )


def test_min_max_with_identical_honest_updates_sends_their_mean() -> None:
    honest = np.ones((4, 6))

    np.testing.assert_allclose(min_max(honest), np.ones(6))


def test_sign_flip_scaling_and_their_defaults() -> None:
    own = _honest(1, n=2)
    rng = np.random.default_rng(0)

    flipped = UpdateAttack("sign_flip").craft(own, own[:0], n_round=10, rng=rng)
    boosted = UpdateAttack("scaling").craft(own, own[:0], n_round=10, rng=rng)
    scaled = UpdateAttack("scaling", scale=3.0).craft(own, own[:0], n_round=10, rng=rng)

    np.testing.assert_allclose(flipped, -own)
    np.testing.assert_allclose(boosted, 10 * own)  # model replacement: n / eta, eta=1
    np.testing.assert_allclose(scaled, 3 * own)


def test_gaussian_is_seeded_and_has_the_asked_spread() -> None:
    own = np.zeros((1, 20_000))
    attack = UpdateAttack("gaussian", noise_std=2.0)

    a = attack.craft(own, own[:0], n_round=5, rng=np.random.default_rng(4))
    b = attack.craft(own, own[:0], n_round=5, rng=np.random.default_rng(4))

    np.testing.assert_array_equal(a, b)
    assert a.std() == pytest.approx(2.0, rel=0.03)


def test_omniscient_attackers_all_send_the_crafted_vector_from_the_honest() -> None:
    honest, own = _honest(5), _honest(6, n=2)

    out = UpdateAttack("alie").craft(
        own, honest, n_round=10, rng=np.random.default_rng()
    )

    expected = honest.mean(0) + alie_z(10, 2) * honest.std(0)
    np.testing.assert_allclose(out, np.tile(expected, (2, 1)))


def test_without_honest_updates_omniscient_attacks_use_their_own() -> None:
    own = _honest(7, n=3)

    out = UpdateAttack("ipm", epsilon=2.0).craft(
        own, own[:0], n_round=3, rng=np.random.default_rng()
    )

    np.testing.assert_allclose(out[0], -2.0 * own.mean(0))


def test_a_data_attack_leaves_the_update_as_trained() -> None:
    own = _honest(8, n=2)

    out = UpdateAttack("label_flip").craft(
        own, own, n_round=4, rng=np.random.default_rng()
    )

    np.testing.assert_array_equal(out, own)


def test_an_unknown_kind_is_refused_not_sent_as_is() -> None:
    with pytest.raises(ValueError, match="unknown attack kind 'zero'"):
        UpdateAttack("zero")


def test_alie_backdoor_projects_each_own_update_into_the_honest_box() -> None:
    # Baruch et al.'s backdooring attack, projection form: mean +- z std per coordinate
    honest = _honest(8)
    mean, std = honest.mean(0), honest.std(0)
    inside = mean + 0.1 * std  # already within the box: unchanged
    above, below = mean + 5 * std, mean - 5 * std
    own = np.stack([inside, above, below])

    out = alie_backdoor(own, honest, z=0.5)

    np.testing.assert_array_equal(out[0], inside)
    np.testing.assert_allclose(out[1], mean + 0.5 * std)
    np.testing.assert_allclose(out[2], mean - 0.5 * std)
    assert (np.abs(out - mean) <= 0.5 * std + 1e-12).all()


def test_alie_with_a_backdoor_sends_each_site_its_projected_update() -> None:
    honest, own = _honest(9), _honest(10, n=2) * 4.0

    out = UpdateAttack("alie", backdoor=True).craft(
        own, honest, n_round=10, rng=np.random.default_rng()
    )

    z = alie_z(10, 2)
    want = np.clip(
        own, honest.mean(0) - z * honest.std(0), honest.mean(0) + z * honest.std(0)
    )
    np.testing.assert_array_equal(out, want)
    assert not np.array_equal(out[0], out[1])  # not copies: each its own backdoor
