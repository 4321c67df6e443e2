"""Property tests shared by every robust rule (issue 10's acceptance list).

Seeded hypothesis examples: each rule equals the mean when all updates agree;
median and trimmed mean (unweighted and weighted) stay within the honest range under
the attackers they tolerate; Krum, Multi-Krum and Bulyan choose honest updates under
their bounds; weight-aware rules treat weight 2 as the same update given twice.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from accord.aggregation import (
    RULE_NAMES,
    CenteredClip,
    FLTrust,
    GeometricMedian,
    NormBounding,
    WeightedMedian,
    WeightedTrimmedMean,
    coordinate_median,
    coordinate_trimmed_mean,
    make_rule,
    multi_krum,
    weighted_mean,
    weighted_median,
    weighted_trimmed_mean,
)
from accord.aggregation.bulyan import bulyan
from accord.aggregation.krum import krum_attackers
from accord.params import Params

SEED = 10


def params_from(rows: np.ndarray, shapes: list[tuple[int, ...]]) -> list[Params]:
    """One Params per row of ``rows``, cut into tensors of ``shapes``."""
    out = []
    for row in rows:
        arrays, start = {}, 0
        for i, shape in enumerate(shapes):
            size = int(np.prod(shape, dtype=np.int64))
            arrays[f"t{i}"] = row[start : start + size].reshape(shape)
            start += size
        out.append(Params(arrays))
    return out


def flat(params: Params) -> np.ndarray:
    return np.concatenate([a.reshape(-1).astype(np.float64) for a in params.values()])


def rule_for(name: str, agreed: Params) -> object:
    """The rule with options that make it the mean on agreeing updates."""
    if name == "fltrust":  # the root update agrees too
        return FLTrust(reference=agreed)
    if name == "norm_bounding":  # a bound above the updates' norm
        return NormBounding(bound=1e30)
    return make_rule(name)


shapes_st = st.lists(
    st.lists(st.integers(1, 6), min_size=0, max_size=2).map(tuple),
    min_size=1,
    max_size=3,
)


@seed(SEED)
@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(RULE_NAMES),
    n=st.integers(3, 12),
    shapes=shapes_st,
    weights_seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([np.float32, np.float64, np.float16]),
)
def test_every_rule_is_the_mean_when_all_updates_agree(
    name, n, shapes, weights_seed, dtype
):
    # Arrange: n copies of one update, weights from example counts
    rng = np.random.default_rng(weights_seed)
    size = sum(int(np.prod(s, dtype=np.int64)) for s in shapes)
    one = params_from(rng.standard_normal((1, size)).astype(dtype), shapes)[0]
    updates = [one.copy() for _ in range(n)]
    weights = [float(w) for w in rng.integers(1, 5000, n)]
    rule = rule_for(name, one)

    # Act
    got = rule.aggregate(updates, weights)  # type: ignore[attr-defined]

    # Assert: within rounding of the one value (mean of equal values)
    want = weighted_mean(updates, weights)
    for key in want:
        assert got[key].dtype == want[key].dtype
        np.testing.assert_allclose(
            got[key].astype(np.float64),
            want[key].astype(np.float64),
            rtol=2e-3 if dtype == np.float16 else 1e-5,
            atol=1e-6,
        )


def honest_and_attackers(
    rng: np.random.Generator, honest: int, attackers: int, size: int, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    good = rng.standard_normal((honest, size))
    bad = (
        rng.choice([-1.0, 1.0], (attackers, size))
        * scale
        * rng.random((attackers, size))
    )
    return good, bad


@seed(SEED)
@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 15),
    size=st.integers(1, 40),
    scale=st.sampled_from([1.0, 1e3, 1e30]),
    data_seed=st.integers(0, 2**32 - 1),
)
def test_median_stays_within_the_honest_range_under_a_minority(
    n, size, scale, data_seed
):
    # Arrange: f < n / 2 attackers with arbitrary values
    rng = np.random.default_rng(data_seed)
    f = (n - 1) // 2
    good, bad = honest_and_attackers(rng, n - f, f, size, scale)
    updates = params_from(np.vstack([good, bad]).astype(np.float32), [(size,)])
    lo, hi = good.astype(np.float32).min(0), good.astype(np.float32).max(0)

    # Act
    plain = coordinate_median(updates)["t0"]
    weighted = weighted_median(updates, [1.0] * n)["t0"]

    # Assert
    for got in (plain, weighted):
        assert np.all(got >= lo) and np.all(got <= hi)


@seed(SEED)
@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 15),
    beta=st.sampled_from([0.1, 0.2, 0.3, 0.45]),
    size=st.integers(1, 40),
    scale=st.sampled_from([1.0, 1e3, 1e30]),
    data_seed=st.integers(0, 2**32 - 1),
)
def test_trimmed_means_stay_within_the_honest_range(n, beta, size, scale, data_seed):
    # Arrange: as many attackers as the trim cuts from each end, floor(beta n)
    rng = np.random.default_rng(data_seed)
    f = int(beta * n)
    good, bad = honest_and_attackers(rng, n - f, f, size, scale)
    updates = params_from(np.vstack([good, bad]).astype(np.float32), [(size,)])
    lo, hi = good.astype(np.float32).min(0), good.astype(np.float32).max(0)
    tol = 1e-5 * np.maximum(np.abs(lo), np.abs(hi)) + 1e-6  # float32 averaging

    # Act
    plain = coordinate_trimmed_mean(updates, beta)["t0"]
    # weighted: equal weights, the cut is beta of the weight, f/n <= beta of it
    weighted = weighted_trimmed_mean(updates, [1.0] * n, beta)["t0"]

    # Assert
    for got in (plain, weighted):
        assert np.all(got >= lo - tol) and np.all(got <= hi + tol)


@seed(SEED)
@settings(max_examples=60, deadline=None)
@given(
    honest_weights=st.lists(st.integers(1, 10_000), min_size=1, max_size=10),
    attacker_count=st.integers(1, 4),
    size=st.integers(1, 30),
    data_seed=st.integers(0, 2**32 - 1),
)
def test_weighted_rules_stay_honest_while_attackers_hold_less_than_the_cut(
    honest_weights, attacker_count, size, data_seed
):
    # Arrange: attackers share just under beta (trimmed) of the total weight, so a
    # small clinic's attack counts for little and a big hospital is not trimmed away
    rng = np.random.default_rng(data_seed)
    beta = 0.2
    honest_total = float(sum(honest_weights))
    attacker_total = beta * honest_total / (1 - beta) * 0.999
    weights = [float(w) for w in honest_weights] + [
        attacker_total / attacker_count
    ] * attacker_count
    good, bad = honest_and_attackers(
        rng, len(honest_weights), attacker_count, size, 1e20
    )
    updates = params_from(np.vstack([good, bad]).astype(np.float32), [(size,)])
    lo, hi = good.astype(np.float32).min(0), good.astype(np.float32).max(0)
    tol = 1e-5 * np.maximum(np.abs(lo), np.abs(hi)) + 1e-6

    # Act
    trimmed = weighted_trimmed_mean(updates, weights, beta)["t0"]
    median = weighted_median(updates, weights)["t0"]

    # Assert
    for got in (trimmed, median):
        assert np.all(got >= lo - tol) and np.all(got <= hi + tol)


def test_weighted_trimmed_mean_falls_to_an_attacker_just_past_the_cut():
    # 4 honest sites of weight 1 and one attacker holding just over beta = 0.2
    good = np.zeros((4, 1), np.float32)
    bad = np.full((1, 1), 1e6, np.float32)
    updates = params_from(np.vstack([good, bad]), [(1,)])

    under = weighted_trimmed_mean(updates, [1, 1, 1, 1, 0.999], 0.2)["t0"]
    over = weighted_trimmed_mean(updates, [1, 1, 1, 1, 1.01], 0.2)["t0"]

    assert under[0] == 0.0
    assert over[0] > 0.0


def colluding(rng: np.random.Generator, n: int, f: int, size: int) -> np.ndarray:
    """``n - f`` honest updates in a unit cluster, ``f`` attackers far from it.

    The attackers sit together (they collude), in every coordinate at least
    ``2 + sqrt(n)`` from the honest mean: past what Krum's scores can absorb,
    ``(n - 2f - 1) * d_far^2 > (n - f - 2) * diameter^2``, and outside the honest
    range at every coordinate.
    """
    honest = 1.0 + rng.random((n - f, size)) / np.sqrt(size)  # diameter <= 1
    signs = rng.choice([-1.0, 1.0], size)
    far = honest.mean(0) + (2.0 + np.sqrt(n)) * signs * rng.uniform(1, 100, size)
    attackers = np.repeat(far[None, :], f, axis=0) + rng.random((f, size)) * 1e-3
    return np.vstack([honest, attackers])


@seed(SEED)
@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(3, 20),
    size=st.integers(1, 50),
    data_seed=st.integers(0, 2**32 - 1),
)
def test_krum_and_multi_krum_choose_honest_updates_under_their_bound(
    n, size, data_seed
):
    # Arrange: the largest f with n > 2f + 2
    rng = np.random.default_rng(data_seed)
    f = krum_attackers(n, None)
    rows = colluding(rng, n, f, size)
    updates = params_from(rows, [(size,)])
    weights = [float(w) for w in rng.integers(1, 100, n)]

    # Act
    chosen = make_rule("krum").aggregate(updates, weights)
    several = multi_krum(updates, weights, f=f, m=None)

    # Assert: Krum returns one of the honest updates itself; Multi-Krum (m = n - f)
    # is the weighted mean of exactly the honest ones
    assert any(np.array_equal(chosen["t0"], rows[i]) for i in range(n - f))
    honest_mean = weighted_mean(updates[: n - f], weights[: n - f])
    np.testing.assert_allclose(several["t0"], honest_mean["t0"], rtol=1e-12)


@seed(SEED)
@settings(max_examples=40, deadline=None)
@given(
    f=st.integers(0, 3),
    extra=st.integers(0, 3),
    size=st.integers(1, 30),
    data_seed=st.integers(0, 2**32 - 1),
)
def test_bulyan_stays_within_the_honest_range_under_its_bound(
    f, extra, size, data_seed
):
    # Arrange: n >= 4f + 3
    rng = np.random.default_rng(data_seed)
    n = 4 * f + 3 + extra
    rows = colluding(rng, n, f, size)
    updates = params_from(rows, [(size,)])
    honest = rows[: n - f]

    # Act
    got = bulyan(updates, [1.0] * n, f=f)["t0"]

    # Assert
    assert np.all(got >= honest.min(0) - 1e-12)
    assert np.all(got <= honest.max(0) + 1e-12)


@pytest.mark.parametrize(
    "rule",
    [
        WeightedMedian(),
        WeightedTrimmedMean(beta=0.2),
        GeometricMedian(),
        NormBounding(bound=3.0),
        CenteredClip(tau=0.5),
    ],
    ids=lambda r: r.name,
)
@pytest.mark.parametrize("data_seed", [0, 1, 2])
def test_weight_two_is_the_update_given_twice(rule, data_seed):
    # Arrange
    rng = np.random.default_rng(data_seed)
    rows = rng.standard_normal((5, 64)).astype(np.float32)
    updates = params_from(rows, [(8, 8)])
    twice = [*updates, updates[2]]

    # Act
    # total weight 10: the cuts (0.2 of it) fall on whole weights, sums are exact
    weighted = rule.aggregate(updates, [1.0, 3.0, 2.0, 1.0, 3.0])
    repeated = rule.aggregate(twice, [1.0, 3.0, 1.0, 1.0, 3.0, 1.0])

    # Assert: exact for the order statistics, to rounding for the iterative rules
    if isinstance(rule, WeightedMedian | WeightedTrimmedMean):
        np.testing.assert_array_equal(weighted["t0"], repeated["t0"])
    else:
        np.testing.assert_allclose(weighted["t0"], repeated["t0"], rtol=1e-5, atol=1e-6)
