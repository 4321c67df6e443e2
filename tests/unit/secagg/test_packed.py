"""Quantized values packed several to a ring word survive masking exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.secagg.local import run_local_round
from accord.secagg.messages import Stage
from accord.secagg.packed import PackedEncoding


def test_hand_computed_masked_sum_of_three_sites(kit):
    # Arrange: 8-bit fields, 3 sites -> m = 255 // 6 = 42, scale = 42 / clip.
    # Values chosen so w * x * scale is an integer (rounding exact) but one.
    enc = PackedEncoding(8, clip=1.0, participants=3)
    assert (enc.levels, enc.per_word, enc.words(5)) == (42, 4, 3)
    a = np.array([1.0, -1.0, 0.0, 0.5, 2.0])  # weight 1; the last clipped to 1
    b = np.array([-1.0, -1.0, 1.0, 0.0, 0.5])  # weight 0.5: 0.25 * 42 = 10.5
    c = np.array([0.3, -0.7, 0.1, 0.9, -0.2])  # weight 0: all zero
    qa, clipped = enc.quantize([a], 1.0, np.random.default_rng(0))
    assert clipped == 1
    assert qa.tolist() == [42, -42, 0, 21, 42]
    wa = enc.encode_parts([a], 1.0, np.random.default_rng(0)).words
    # Fields are q + m, low byte first: 84, 0, 42, 63 | 84, then padding m.
    assert int(wa[0]) == 84 + (0 << 8) + (42 << 16) + (63 << 24)
    assert int(wa[1]) == 84 + (42 << 8) + (42 << 16) + (42 << 24)
    qb, _ = enc.quantize([b], 0.5, np.random.default_rng(1))
    assert qb.tolist()[:4] == [-21, -21, 21, 0]
    assert qb[4] in (10, 11)
    wb = enc.encode_parts([b], 0.5, np.random.default_rng(1)).words
    wc = enc.encode_parts([c], 0.0, np.random.default_rng(2)).words
    identities = kit.make_identities(3)
    cfg = kit.make_config(identities, enc.words(5))
    inputs = dict(zip(identities, [wa, wb, wc], strict=True))
    # Act: mask, sum in the ring (masks cancel), unmask
    run = run_local_round(cfg, identities, inputs)
    summed = enc.integers(run.result.total, 3)
    weighted, weight = enc.decode(run.result.total, 3, 5)
    # Assert: 42 - 21, -42 - 21, 0 + 21, 21 + 0, 42 + (10 or 11); padding 0
    assert summed.tolist() == [21, -63, 21, 21, 42 + int(qb[4]), 0, 0, 0]
    np.testing.assert_allclose(weighted, summed[:5] / 42)
    assert weight == pytest.approx(1.5, abs=enc.weight_bound)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(3, 7),
    size=st.integers(1, 40),
    bits=st.sampled_from([4, 8, 16]),
    seed=st.integers(0, 2**16),
    leaver=st.booleans(),
)
def test_unmasked_sum_is_the_exact_sum_of_the_quantized_integers(
    kit, n, size, bits, seed, leaver
):
    # Arrange: each site quantizes its weighted update, then masks the packed words
    rng = np.random.default_rng(seed)
    enc = PackedEncoding(bits, clip=0.5, participants=n)
    identities = kit.make_identities(n, seed)
    ids = list(identities)
    cfg = kit.make_config(identities, enc.words(size), threshold=n - 1)
    ints, inputs = {}, {}
    for p in ids:
        x, w = rng.normal(0, 0.4, size), float(rng.uniform(0, 1))
        ints[p], _ = enc.quantize([x], w, np.random.default_rng([seed, len(p)]))
        inputs[p] = enc.encode_parts([x], w, np.random.default_rng([seed, len(p)]))
        inputs[p] = inputs[p].words
    drop = {Stage.SHARE_KEYS: [ids[0]]} if leaver else None
    # Act
    run = run_local_round(cfg, identities, inputs, drop=drop)
    # Assert: to the unit, for exactly the contributors
    in_sum = run.result.contributors
    expected = sum(ints[p] for p in in_sum)
    got = enc.integers(run.result.total, len(in_sum))
    np.testing.assert_array_equal(got[:size], expected)
    assert not got[size:].any()


@pytest.mark.parametrize(("bits", "sites"), [(8, 128), (4, 8), (4, 10), (16, 40_000)])
def test_a_roster_whose_sum_would_overflow_the_field_is_refused(bits, sites):
    with pytest.raises(
        ValueError, match=r"would overflow its field.*at most \d+ sites"
    ):
        PackedEncoding(bits, clip=1.0, participants=sites)


@pytest.mark.parametrize(("bits", "sites"), [(8, 127), (4, 7), (16, 32_767)])
def test_the_largest_roster_that_fits_is_accepted(bits, sites):
    enc = PackedEncoding(bits, clip=1.0, participants=sites)
    assert enc.levels == 1
    assert sites * 2 * enc.levels < 2**bits


def test_a_sum_no_honest_inputs_give_is_refused():
    enc = PackedEncoding(8, clip=1.0, participants=3)
    forged = np.array([0xFFFFFFFF, 0], dtype=np.uint32)
    with pytest.raises(ValueError, match="exceeds what the contributors"):
        enc.integers(forged, 3)


def test_non_finite_values_and_weights_out_of_range_are_refused():
    enc = PackedEncoding(8, clip=1.0, participants=3)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="NaN or infinity"):
        enc.encode_parts([np.array([np.nan])], 1.0, rng)
    with pytest.raises(ValueError, match="outside"):
        enc.encode_parts([np.zeros(3)], 1.5, rng)


def test_quantization_is_unbiased():
    enc = PackedEncoding(8, clip=1.0, participants=10)  # m = 12: coarse units
    x = np.full(20_000, 0.037)
    q, _ = enc.quantize([x], 1.0, np.random.default_rng(3))
    assert set(np.unique(q).tolist()) == {0, 1}
    assert q.mean() / enc.scale == pytest.approx(0.037, rel=0.03)
