"""The Skellam accountant: RDP composition converted by dp-accounting."""

import math

import pytest

pytest.importorskip("dp_accounting")

from accord.errors import PrivacyBudgetExhausted
from accord.privacy._dp import dp_event, rdp_privacy_accountant
from accord.privacy.budget import PrivacyBudget
from accord.privacy.distributed import SkellamAccountant, SkellamEvent
from accord.privacy.skellam import RDP_ORDERS


def by_hand(mu: float, l2: float, l1: float, rounds: int, delta: float) -> float:
    """Theorem 3.5 of Agarwal et al. and Proposition 12's conversion, by hand."""
    best = math.inf
    for a in RDP_ORDERS:
        second = min(((2 * a - 1) * l2**2 + 6 * l1) / (16 * mu**2), 3 * l1 / (4 * mu))
        rdp = rounds * (a * l2**2 / (4 * mu) + second)
        best = min(best, rdp + math.log1p(-1 / a) - math.log(delta * a) / (a - 1))
    return best


def test_epsilon_is_the_hand_computed_value():
    # Arrange
    accountant = SkellamAccountant()
    event = SkellamEvent(mu=50.0, l2=5.0, l1=20.0)

    # Act
    accountant.compose(event, 3)

    # Assert
    assert accountant.epsilon(1e-5) == pytest.approx(
        by_hand(50.0, 5.0, 20.0, 3, 1e-5), rel=1e-12
    )


def test_nothing_composed_costs_nothing_and_asking_changes_nothing():
    accountant = SkellamAccountant()
    event = SkellamEvent(mu=50.0, l2=5.0, l1=20.0)
    assert accountant.epsilon(1e-5) == 0.0
    after = accountant.epsilon_after(event, 1e-5, 2)
    assert accountant.epsilon(1e-5) == 0.0
    accountant.compose(event)
    accountant.compose(event)
    assert accountant.events == ((event, 2),)
    assert accountant.epsilon(1e-5) == after


def test_with_much_noise_it_approaches_the_gaussian_from_above():
    # Sk(mu) has the Gaussian's variance 2 mu; as mu grows the second-order term
    # vanishes and epsilon tends to the Gaussian's RDP epsilon, never below it.
    z, l2 = 1.2, 1e6
    mu = (z * l2) ** 2 / 2
    skellam = SkellamAccountant()
    skellam.compose(SkellamEvent(mu=mu, l2=l2, l1=l2 * 10), 5)
    gaussian = rdp_privacy_accountant.RdpAccountant(list(RDP_ORDERS))
    gaussian.compose(dp_event.GaussianDpEvent(z), 5)
    reference = gaussian.get_epsilon(1e-5)
    assert reference <= skellam.epsilon(1e-5) < reference * 1.001


def test_more_noise_means_less_epsilon():
    low, high = SkellamAccountant(), SkellamAccountant()
    low.compose(SkellamEvent(mu=100.0, l2=5.0, l1=20.0))
    high.compose(SkellamEvent(mu=101.0, l2=5.0, l1=20.0))
    assert high.epsilon(1e-5) < low.epsilon(1e-5)


def test_the_budget_works_with_it():
    accountant = SkellamAccountant()
    event = SkellamEvent(mu=50.0, l2=5.0, l1=20.0)
    one = by_hand(50.0, 5.0, 20.0, 1, 1e-5)
    budget = PrivacyBudget(one * 1.0001, 1e-5)
    assert budget.check(accountant, event) == pytest.approx(one)
    accountant.compose(event)
    with pytest.raises(PrivacyBudgetExhausted):
        budget.check(accountant, event)


@pytest.mark.parametrize("field", ["mu", "l2", "l1"])
@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf])
def test_bad_events_are_refused(field, bad):
    values = {"mu": 1.0, "l2": 1.0, "l1": 1.0, field: bad}
    with pytest.raises(ValueError, match=field):
        SkellamEvent(**values)


def test_other_events_are_refused():
    with pytest.raises(TypeError, match="SkellamEvents"):
        SkellamAccountant().compose(dp_event.GaussianDpEvent(1.0))
