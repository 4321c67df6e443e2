"""The budget refuses the step that would overspend, before it runs."""

from __future__ import annotations

import pytest

from accord.errors import PrivacyBudgetExhausted
from accord.privacy.accountant import DpAccountant
from accord.privacy.budget import PrivacyBudget
from accord.privacy.events import gaussian_event


def test_budget_stops_at_the_first_step_past_the_limit():
    # Arrange: the limit sits between epsilon after 3 and after 4 steps
    event = gaussian_event(3.0)
    probe = DpAccountant("rdp")
    probe.compose(event, 3)
    three = probe.epsilon(1e-5)
    four = probe.epsilon_after(event, 1e-5)
    budget = PrivacyBudget(epsilon=(three + four) / 2, delta=1e-5)
    accountant = DpAccountant("rdp")

    # Act: steps as a run takes them
    steps = 0
    with pytest.raises(PrivacyBudgetExhausted) as stop:
        while True:
            budget.check(accountant, event)
            accountant.compose(event)
            steps += 1

    # Assert
    assert steps == 3
    assert stop.value.spent == pytest.approx(three)
    assert stop.value.next == pytest.approx(four)
    assert "raise [privacy] budget_epsilon" in str(stop.value)


def test_a_step_landing_exactly_on_the_limit_is_allowed():
    event = gaussian_event(3.0)
    exact = DpAccountant("rdp").epsilon_after(event, 1e-5)
    assert PrivacyBudget(exact, 1e-5).check(DpAccountant("rdp"), event) == exact


def test_no_limit_only_accounts():
    accountant = DpAccountant("rdp")
    accountant.compose(gaussian_event(0.5), 100)
    assert PrivacyBudget(None, 1e-5).check(accountant, gaussian_event(0.5)) > 10
