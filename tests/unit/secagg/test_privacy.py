"""What the coordinator sees of a participant is indistinguishable from uniform noise.

Two classical tests, each at significance 0.001 with fixed seeds (the round's secrets
come from a seeded entropy source, so the outcome is deterministic): a chi-square
test over the 256 byte values, and a Kolmogorov-Smirnov test of the uint32 words
against the uniform distribution on [0, 2^32). The same tests must reject the
unmasked encoded update, or they would prove nothing.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from accord.secagg.encoding import FixedPointEncoding

WORDS = 1 << 16


def chi_square_bytes(raw: bytes) -> tuple[float, float]:
    """Statistic and the 0.999 critical value (Wilson-Hilferty) for 255 dof."""
    counts = np.bincount(np.frombuffer(raw, dtype=np.uint8), minlength=256)
    expected = len(raw) / 256
    stat = float(((counts - expected) ** 2 / expected).sum())
    dof, z = 255, 3.090232  # z of the 0.999 quantile
    critical = dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3
    return stat, critical


def ks_uniform(words: np.ndarray) -> tuple[float, float]:
    """KS statistic against Uniform[0, 2^32) and its 0.001 critical value."""
    u = np.sort(words.astype(np.float64) / 2**32)
    n = u.size
    grid = np.arange(1, n + 1) / n
    stat = float(max((grid - u).max(), (u - (grid - 1 / n)).max()))
    return stat, 1.949 / math.sqrt(n)


@pytest.fixture(scope="module")
def seen(make_harness):
    """A round's encoded updates, and the masked inputs the coordinator received."""
    h = make_harness(n=4, size=WORDS, threshold=3, seed=11)
    enc = FixedPointEncoding(clip=1.0, participants=4)
    rng = np.random.default_rng(11)
    h.inputs = {
        p: enc.encode(rng.normal(0, 0.01, WORDS - 1), 1.0, rng) for p in h.parts
    }
    deliveries = h.share(h.advertise())
    masked = {p: h.parts[p].masked_input(deliveries[p], h.inputs[p]) for p in h.parts}
    return h, masked


def test_masked_input_passes_uniformity_tests(seen):
    h, masked = seen
    for msg in masked.values():
        stat, critical = chi_square_bytes(msg.vector)
        assert stat < critical
        d, d_critical = ks_uniform(np.frombuffer(msg.vector, "<u4"))
        assert d < d_critical


def test_the_same_tests_reject_an_unmasked_update(seen):
    h, _ = seen
    raw = h.inputs["site00"]
    stat, critical = chi_square_bytes(raw.tobytes())
    assert stat > 10 * critical
    d, d_critical = ks_uniform(raw)
    assert d > 10 * d_critical


def test_sum_of_masked_inputs_is_uniform_until_unmasked(seen):
    # Pairwise masks cancel in the sum, but the self-masks keep it hidden until the
    # unmasking stage: a coordinator that adds inputs early learns nothing either.
    h, masked = seen
    total = np.zeros(WORDS, np.uint32)
    for msg in masked.values():
        np.add(total, np.frombuffer(msg.vector, "<u4"), out=total)
    stat, critical = chi_square_bytes(total.tobytes())
    assert stat < critical
    d, d_critical = ks_uniform(total)
    assert d < d_critical
