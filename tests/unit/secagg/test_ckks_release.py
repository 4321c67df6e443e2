"""A site releases a CKKS sum flooded with noise and rounded, never exactly.

The noise is seeded here (``normal=``) so that each test is deterministic; the
sites' own source, ``os.urandom``, is checked for its distribution alone.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tenseal")

from accord.secagg.ckks import CkksAggregator, CkksParticipant, decrypt_sum  # noqa: E402
from accord.secagg.ckks_keys import KeyHolder  # noqa: E402
from accord.secagg.ckks_release import (  # noqa: E402
    FLOOD_SIGMA,
    PRECISION,
    RELEASE_STEP,
    release,
    system_normal,
)
from accord.secagg.ckks_session import ckks_decrypt, decode_sum  # noqa: E402

SIZE = 20_000


@pytest.fixture(scope="module")
def keys() -> KeyHolder:
    return KeyHolder.create()


@pytest.fixture(scope="module")
def summed(keys: KeyHolder):
    """An encrypted sum of 10 uploads, their plain sum and the exact decryption."""
    rng = np.random.default_rng(7)
    participant = CkksParticipant(keys.secret_context)
    aggregator = CkksAggregator(keys.public_context, SIZE)
    plain = np.zeros(SIZE + 1)
    for i in range(10):
        x, w = rng.uniform(-1, 1, SIZE), float(rng.uniform(0.001, 1.0))
        aggregator.add(f"site{i}", participant.encrypt(x, w))
        plain[:-1] += w * x
        plain[-1] += w
    blob = aggregator.result()
    weighted, weight = decrypt_sum(keys.secret_context, blob, SIZE)
    return blob, plain, np.append(weighted, weight)


def seeded(seed: int):
    return np.random.default_rng(seed).standard_normal


def test_the_released_sum_is_within_the_documented_precision(keys, summed):
    blob, plain, _ = summed

    reply = ckks_decrypt(keys.secret_context, blob, SIZE, normal=seeded(1))

    weighted, weight = decode_sum(reply, SIZE)
    released = np.append(weighted, weight)
    assert np.abs(released - plain).max() < PRECISION
    # On the grid: every released value is a whole number of steps.
    steps = released / RELEASE_STEP
    assert np.array_equal(steps, np.round(steps))


def test_the_release_is_flooded_not_the_exact_decryption(keys, summed):
    blob, plain, exact = summed

    reply = ckks_decrypt(keys.secret_context, blob, SIZE, normal=seeded(2))

    weighted, weight = decode_sum(reply, SIZE)
    added = np.append(weighted, weight) - exact
    # The noise has FLOOD_SIGMA's spread (rounding adds step / sqrt(12) at most)
    # and swamps the decryption error it hides (measured: exact - plain).
    assert added.std() == pytest.approx(FLOOD_SIGMA, rel=0.03)
    assert abs(added.mean()) < 5 * FLOOD_SIGMA / np.sqrt(SIZE)
    assert added.std() > 20 * (exact - plain).std()


def test_each_release_draws_fresh_noise(keys, summed):
    blob, plain, _ = summed

    first = decode_sum(ckks_decrypt(keys.secret_context, blob, SIZE), SIZE)[0]
    second = decode_sum(ckks_decrypt(keys.secret_context, blob, SIZE), SIZE)[0]

    # The system source, not a fixed seed: both land on the same grid point only
    # where the two draws fall within one step (about 2% of the values).
    assert np.mean(first != second) > 0.95
    assert np.abs(first - plain[:-1]).max() < PRECISION


def test_rounding_and_noise_at_the_bounds():
    zero = np.zeros(4)
    # Noise of exactly half a step below and above: rounds to the grid points.
    below = release(
        zero, normal=lambda n: np.full(n, -0.49 * RELEASE_STEP / FLOOD_SIGMA)
    )
    above = release(
        zero, normal=lambda n: np.full(n, 0.51 * RELEASE_STEP / FLOOD_SIGMA)
    )
    assert np.array_equal(below, zero)
    assert np.array_equal(above, np.full(4, RELEASE_STEP))
    with pytest.raises(ValueError, match="NaN or infinity"):
        release(np.array([0.0, np.inf]), normal=seeded(0))
    with pytest.raises(ValueError, match="NaN or infinity"):
        release(np.array([np.nan]), normal=seeded(0))


def test_the_system_source_is_standard_normal():
    samples = system_normal(200_001)

    assert samples.shape == (200_001,) and np.isfinite(samples).all()
    # Bounds of about 10 standard errors: wrong only if the source is.
    assert abs(samples.mean()) < 10 / np.sqrt(samples.size)
    assert samples.std() == pytest.approx(1.0, abs=0.01)
    assert np.mean(np.abs(samples) < 1.0) == pytest.approx(0.6827, abs=0.01)
    assert system_normal(0).shape == (0,)
    with pytest.raises(ValueError):
        system_normal(-1)
