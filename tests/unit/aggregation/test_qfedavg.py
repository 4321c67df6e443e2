"""q-FedAvg's update rule against small examples worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from accord.aggregation.qfedavg import (
    LOSS_METRIC,
    MAX_LOSS_POWER,
    QFedAvgAccumulator,
    qfedavg,
)
from accord.errors import UpdateRejected
from accord.params import Params

# Two sites, a scalar model, L = 10 (local lr 0.1): u_1 = -0.2 with F_1 = 2,
# u_2 = 0.1 with F_2 = 0.5, so Delta_1 = -L u_1 = 2 and Delta_2 = -1.
U = [Params({"w": np.array(-0.2)}), Params({"w": np.array(0.1)})]
F = [2.0, 0.5]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        # q = 1: h_1 = 1 * 4 + 10 * 2 = 24, h_2 = 1 * 1 + 10 * 0.5 = 6;
        # sum F Delta = 4 - 0.5 = 3.5, so w+ - w = -3.5 / 30.
        (1.0, -3.5 / 30),
        # q = 2: h_1 = 2 * 2 * 4 + 10 * 4 = 56, h_2 = 2 * 0.5 * 1 + 10 * 0.25 = 3.5;
        # sum F^2 Delta = 8 - 0.25 = 7.75, so w+ - w = -7.75 / 59.5.
        (2.0, -7.75 / 59.5),
        # q = 0: h_k = L each, the step is the plain mean of the updates, -0.05.
        (0.0, -0.05),
    ],
)
def test_step_matches_the_hand_computation(q, expected):
    step = qfedavg(U, F, q=q, lipschitz=10.0)

    assert float(step["w"]) == pytest.approx(expected, rel=1e-12)


def test_a_higher_q_moves_towards_the_site_with_the_higher_loss():
    # Site 1 (loss 2) wants w down; the larger q, the more its update dominates.
    steps = [float(qfedavg(U, F, q=q, lipschitz=10.0)["w"]) for q in (0.0, 1.0, 2.0)]

    assert steps[0] > steps[1] > steps[2]


def test_float32_updates_give_a_float32_step():
    u = [Params({"w": np.array([0.5, -0.5], np.float32)})]

    step = qfedavg(u, [1.0], q=1.0, lipschitz=2.0)

    assert step["w"].dtype == np.float32
    # One site: h = 1 * ||2 u||^2 + 2 * 1 = 2 + 2 = 4, step = 1 * 2 * u / 4 = u / 2.
    np.testing.assert_allclose(step["w"], [0.25, -0.25])


@pytest.mark.parametrize(
    ("metrics", "match"),
    [
        ({}, "needs the site's loss"),
        ({LOSS_METRIC: -1e-9}, "finite and >= 0"),
        ({LOSS_METRIC: float("nan")}, "finite and >= 0"),
        ({LOSS_METRIC: float("inf")}, "finite and >= 0"),
    ],
)
def test_a_missing_or_bad_loss_is_refused(metrics, match):
    acc = QFedAvgAccumulator(U[0].spec, q=1.0, lipschitz=10.0)

    with pytest.raises(UpdateRejected, match=match):
        acc.check_report(metrics)


def test_a_loss_of_zero_is_accepted_and_contributes_nothing():
    step = qfedavg([*U, Params({"w": np.array(5.0)})], [*F, 0.0], q=0.5, lipschitz=10)

    # F^q = 0: the third update is not in the numerator; its h is finite.
    assert np.isfinite(step["w"]) and float(step["w"]) < 0


def test_add_needs_a_report_first():
    acc = QFedAvgAccumulator(U[0].spec, q=1.0, lipschitz=10.0)

    with pytest.raises(ValueError, match="report"):
        acc.add(U[0], 1.0)


@pytest.mark.parametrize(
    ("loss", "q"),
    [
        (1e200, 2.0),  # 1e400: Python's float power raises OverflowError
        (1e101, 1.0),  # finite, just past the bound on F^q
        (1e51, 2.0),  # F^q = 1e102
    ],
)
def test_a_finite_loss_whose_power_overflows_is_refused_not_raised(loss, q):
    acc = QFedAvgAccumulator(U[0].spec, q=q, lipschitz=10.0)

    with pytest.raises(UpdateRejected, match="too large for q-FedAvg"):
        acc.check_report({LOSS_METRIC: loss})
    with pytest.raises(UpdateRejected, match="too large for q-FedAvg"):
        acc.report({LOSS_METRIC: loss})


def test_a_loss_just_within_the_power_bound_gives_a_finite_step():
    loss = MAX_LOSS_POWER ** (1 / 2) * 0.999  # F^2 just under the bound
    step = qfedavg([*U, Params({"w": np.array(1.0)})], [*F, loss], q=2.0, lipschitz=1)

    assert np.isfinite(step["w"])


def _step(updates, losses, *, q=1.0, share=None):
    acc = QFedAvgAccumulator(updates[0].spec, q=q, lipschitz=10.0, max_share=share)
    for update, loss in zip(updates, losses, strict=True):
        acc.check_report({LOSS_METRIC: loss})
        acc.report({LOSS_METRIC: loss})
        acc.add(update, 1.0)
    return acc.result()["w"]


def _sites(seed=0):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(8)
    return [
        Params({"w": (base + 0.1 * rng.standard_normal(8)).astype(np.float32)})
        for _ in range(3)
    ]


def test_with_every_share_under_the_cap_the_step_is_the_streaming_one():
    honest = _sites()
    losses = [0.7, 0.8, 0.9]  # each F^q well under half of the sum

    capped = _step(honest, losses, share=0.5)
    streaming = _step(honest, losses)

    np.testing.assert_array_equal(capped, streaming)  # bit for bit


def test_a_site_claiming_a_huge_loss_is_capped_at_its_share():
    honest = _sites()
    evil = Params({"w": (-honest[0]["w"]).astype(np.float32)})  # honest size, flipped
    losses = [0.7, 0.8, 0.9, 1e50]  # finite, F^q under the power bound

    def cos(step):
        a = evil["w"].astype(np.float64)
        return float(step @ a / np.linalg.norm(step) / np.linalg.norm(a))

    taken = _step([*honest, evil], losses)
    capped = _step([*honest, evil], losses, share=0.5)

    assert cos(taken) > 0.999  # without the cap the claimed loss decides the step
    # With it the site weighs as much as all the others together, no more: the
    # step is the hand computation with its F^q capped to 0.7 + 0.8 + 0.9.
    weights = [0.7, 0.8, 0.9, 2.4]
    sites = [*honest, evil]
    num = sum(
        w * 10.0 * u["w"].astype(np.float64)
        for w, u in zip(weights, sites, strict=True)
    )
    h = [
        1.0 * 100.0 * float(np.vdot(u["w"], u["w"])) + 10.0 * f
        for u, f in zip(sites, losses, strict=True)
    ]
    h[3] *= 2.4 / 1e50
    np.testing.assert_allclose(capped, (num / sum(h)).astype(np.float32), rtol=1e-5)
    assert cos(capped) < 0.9
