"""The distributed-noise encoding: clip, noise share, no wraparound, site checks."""

import json
import math
from dataclasses import asdict, replace

import numpy as np
import pytest

from accord.privacy.skellam import sample_skellam, tail_bound
from accord.secagg.noised import MAX_SHARE, WRAP_FAILURE, DistributedNoise
from accord.secagg.session import SecureJob

INT31 = 2**31 - 1
SITES, THRESHOLD, VALUES = 5, 4, 64


def make_plan(**overrides) -> DistributedNoise:
    args = {
        "clip": 0.5,
        "noise_multiplier": 1.0,
        "participants": SITES,
        "threshold": THRESHOLD,
        "values": VALUES,
        **overrides,
    }
    return DistributedNoise.plan(**args)


def share_at(plan: DistributedNoise, scale: float) -> float:
    units = plan.clip * scale
    share = (plan.noise_multiplier * (units + math.sqrt(plan.values))) ** 2 / 2
    return share / plan.threshold


def worst_sum(plan: DistributedNoise, scale: float) -> float:
    """Largest |coordinate| of the noised sum of every site, but for 2^-40."""
    units = plan.clip * scale
    share = share_at(plan, scale)
    noise = tail_bound(
        plan.participants * share, coordinates=plan.values, failure=WRAP_FAILURE
    )
    return plan.participants * (units + 1) + noise


def ring_sum(vectors) -> np.ndarray:
    total = np.zeros_like(vectors[0])
    for v in vectors:
        total += v  # uint32 arithmetic wraps, as the masks' ring does
    return total


def test_with_many_sites_the_scale_is_the_largest_that_cannot_wrap():
    # 1000 sites: the ring's room, not the share's cap, bounds the scale
    plan = make_plan(participants=1000, threshold=667)
    assert math.log2(plan.scale).is_integer()
    assert plan.noise_share == pytest.approx(share_at(plan, plan.scale))
    assert share_at(plan, 2 * plan.scale) <= MAX_SHARE
    assert worst_sum(plan, plan.scale) <= INT31
    assert worst_sum(plan, 2 * plan.scale) > INT31  # the next one could wrap


def test_with_few_sites_the_share_stays_where_the_sampler_is_accurate():
    plan = make_plan()
    assert worst_sum(plan, plan.scale) <= INT31
    assert plan.noise_share <= MAX_SHARE < share_at(plan, 2 * plan.scale)
    # A unit is still far below the noise (std about z * clip per coordinate).
    assert 1 / plan.scale < plan.noise_multiplier * plan.clip * 1e-5


def test_the_summed_noise_reaches_the_target_for_any_survivor_set_from_t():
    # Arrange: the target is the central mechanism's variance (z * l2)^2
    plan = make_plan()
    l2, _ = plan.sensitivity
    target_mu = (plan.noise_multiplier * l2) ** 2 / 2

    # Act / Assert: every sum the protocol unmasks carries at least the target
    assert plan.summed_noise(THRESHOLD) == pytest.approx(target_mu, rel=1e-12)
    for k in range(THRESHOLD, SITES + 1):
        assert plan.summed_noise(k) >= target_mu * (1 - 1e-12)
    assert plan.summed_noise(THRESHOLD - 1) < target_mu * 0.8


def test_the_decoded_noise_of_t_sites_has_the_target_variance():
    # Arrange: t sites send zero updates of many values
    plan = make_plan(values=20_000)
    vectors = [
        plan.encode(
            np.zeros(plan.values),
            np.random.default_rng(i),
            np.random.default_rng(99 + i),
        )[0]
        for i in range(THRESHOLD)
    ]

    # Act
    noise, count = plan.decode(ring_sum(vectors))

    # Assert: variance 2 * t * share / scale^2, within 5 % (standard error ~1 %)
    expected = 2 * plan.summed_noise(THRESHOLD) / plan.scale**2
    assert count == THRESHOLD
    assert noise.var() == pytest.approx(expected, rel=0.05)
    assert abs(noise.mean()) < 5 * math.sqrt(expected / plan.values)


def test_every_site_at_the_clip_in_one_coordinate_does_not_wrap():
    # Arrange: all sites push one coordinate to +clip (its largest value), with
    # their noise; the exact sum is SITES * clip
    plan = make_plan()
    update = np.zeros(VALUES)
    update[0] = plan.clip
    vectors = [
        plan.encode(update, np.random.default_rng(i), np.random.default_rng(50 + i))[0]
        for i in range(SITES)
    ]

    # Act
    total, count = plan.decode(ring_sum(vectors))

    # Assert: the sum is near SITES * clip (noise of std about z * clip), not
    # wrapped to a negative number
    std = math.sqrt(2 * plan.summed_noise(SITES)) / plan.scale
    assert count == SITES
    assert abs(total[0] - SITES * plan.clip) < 6 * std
    assert total[0] > 0


def test_the_ring_sum_is_the_exact_integer_sum_of_clipped_rounded_noised_values():
    # Arrange: an update above the clip is scaled down to it (L2)
    plan = make_plan()
    x = np.random.default_rng(5).normal(size=VALUES)
    assert np.linalg.norm(x) > plan.clip

    # Act
    words, clipped = plan.encode(x, np.random.default_rng(1), np.random.default_rng(2))

    # Assert: recompute the same integers independently
    rounding, noise = np.random.default_rng(1), np.random.default_rng(2)
    scaled = x * (plan.clip / np.linalg.norm(x)) * plan.scale
    ints = np.floor(scaled + rounding.random(VALUES)).astype(np.int64)
    ints += sample_skellam(plan.noise_share, VALUES, noise)
    assert clipped
    assert words.dtype == np.uint32 and words[-1] == 1
    assert np.array_equal(words[:-1].view(np.int32).astype(np.int64), ints)


def test_an_update_within_the_clip_is_not_clipped():
    plan = make_plan()
    x = np.full(VALUES, plan.clip / math.sqrt(VALUES) * 0.99)
    _, clipped = plan.encode(x, np.random.default_rng(1), np.random.default_rng(2))
    assert not clipped


def test_bad_updates_are_refused():
    plan = make_plan()
    with pytest.raises(ValueError, match="NaN"):
        plan.encode(
            np.full(VALUES, np.nan), np.random.default_rng(), np.random.default_rng()
        )
    with pytest.raises(ValueError, match="64 values"):
        plan.encode(np.zeros(3), np.random.default_rng(), np.random.default_rng())


def test_too_many_sites_or_values_for_32_bits_are_refused():
    with pytest.raises(ValueError, match="no fixed-point scale"):
        make_plan(participants=2000, threshold=1500, values=10**11)
    with pytest.raises(ValueError, match="no fixed-point scale"):
        make_plan(noise_multiplier=1e4)


def test_the_declared_plan_is_accepted_and_a_smaller_share_is_refused():
    plan = make_plan()
    assert plan.refusal() is None
    less = replace(plan, noise_share=plan.noise_share * 0.99)
    assert "below" in (less.refusal() or "")
    more = replace(plan, noise_share=plan.noise_share * 1.5)
    assert more.refusal() is None  # more noise is the site's loss, not a risk
    wider = replace(plan, scale=plan.scale * 2)
    assert "wrap" in (wider.refusal() or "")


def job(**overrides) -> SecureJob:
    plan = make_plan()
    args = {
        "run_id": "r",
        "round_number": 1,
        "roster": tuple(f"s{i}" for i in range(SITES)),
        "vector_size": VALUES + 1,
        "threshold": THRESHOLD,
        "degree": SITES - 1,
        "clip": 1.0,
        "max_examples": 100,
        "noise": plan,
        **overrides,
    }
    return SecureJob(**args)


def test_a_job_with_noise_round_trips_and_a_tampered_share_is_refused():
    # Arrange
    sent = job(noise_seed=3)
    raw = json.loads(sent.to_json())

    # Act / Assert: what travels comes back equal
    assert SecureJob.from_json(sent.to_json()) == sent
    raw["noise"]["noise_share"] *= 0.5
    with pytest.raises(ValueError, match="below"):
        SecureJob.from_json(json.dumps(raw))


def test_a_job_whose_noise_is_planned_for_another_round_is_refused():
    plan = asdict(make_plan())
    with pytest.raises(ValueError, match="threshold"):
        job(threshold=5)
    with pytest.raises(ValueError, match="model size"):
        job(vector_size=VALUES + 2, noise=DistributedNoise(**{**plan, "values": 64}))
    with pytest.raises(ValueError, match="noise seed"):
        job(noise=None, noise_seed=1)
