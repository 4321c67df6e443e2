"""A run's contribution table on a small numpy-logistic federation.

Four sites train a logistic regression with FedAvg; site ``noise`` holds the same
kind of data with its labels shuffled (pure noise). Every coalition model is
rebuilt from the kept updates and valued on the sites' own holdouts (minus the log
loss, weighted by holdout size), as ``accord contributions`` does.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from accord.contribution import RoundUpdates, account

Arr = npt.NDArray[np.float64]
DIM = 6


def _site(rng: np.random.Generator, w: Arr, n: int, *, noise: bool) -> tuple[Arr, Arr]:
    x = rng.normal(size=(n, DIM))
    y = (x @ w + 0.3 * rng.normal(size=n) > 0).astype(np.float64)
    if noise:
        y = rng.permutation(y)
    return x, y


def _train(theta: Arr, x: Arr, y: Arr, steps: int = 10, lr: float = 0.5) -> Arr:
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ theta)))
        theta = theta - lr * x.T @ (p - y) / len(y)
    return theta


def federation(rounds: int = 4, seed: int = 0) -> tuple[list[RoundUpdates], list]:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=DIM)
    names = ("a", "b", "c", "noise")
    train = {s: _site(rng, w, 150, noise=s == "noise") for s in names}
    holdout = {s: _site(rng, w, 60, noise=s == "noise") for s in names}
    theta = np.zeros(DIM)
    kept = []
    for number in range(1, rounds + 1):
        updates = np.stack([_train(theta, *train[s]) - theta for s in names])
        weights = np.full(len(names), 150.0)
        one = RoundUpdates(number, names, theta.copy(), updates, weights)
        kept.append(one)
        theta = one.model(frozenset(range(len(names))))
    return kept, list(holdout.values())


def weighted_log_likelihood(holdouts: list) -> object:
    """Minus the log loss, averaged over the sites weighted by holdout size."""
    total = sum(len(y) for _, y in holdouts)

    def value(theta: Arr) -> float:
        loss = 0.0
        for x, y in holdouts:
            z = x @ theta
            loss += float(np.sum(np.logaddexp(0.0, z) - y * z))
        return -loss / total

    return value


def test_the_site_with_shuffled_labels_scores_lowest_by_both_methods() -> None:
    # Arrange
    kept, holdouts = federation()

    # Act
    report = account(
        kept, weighted_log_likelihood(holdouts), method="both", permutations=24, seed=0
    )

    # Assert
    assert report.ranking("loo")[-1] == "noise"
    assert report.ranking("shapley")[-1] == "noise"
    by_site = {s.site: s for s in report.sites}
    clean = [by_site[s] for s in ("a", "b", "c")]
    assert by_site["noise"].shapley < min(s.shapley for s in clean)
    assert by_site["noise"].loo < min(s.loo for s in clean)
    assert all(s.rounds == 4 for s in report.sites)


def test_shapley_values_add_up_to_the_runs_gain() -> None:
    kept, holdouts = federation()
    value = weighted_log_likelihood(holdouts)

    report = account(kept, value, method="shapley", permutations=24, seed=0)

    first, last = kept[0].base, kept[-1].model(frozenset(range(4)))
    total = sum(s.shapley for s in report.sites)
    assert total == pytest.approx(value(last) - value(first), abs=1e-9)
    assert report.gain == pytest.approx(value(last) - value(first), abs=1e-9)
    assert report.exact_rounds == 4  # 4! = 24 permutations: enumerated, exact
    assert all(s.ci_low == s.ci_high == s.shapley for s in report.sites)


def test_sampled_shapley_reports_an_interval_and_its_cost() -> None:
    kept, holdouts = federation()
    ticks = iter([10.0, 12.5])

    report = account(
        kept,
        weighted_log_likelihood(holdouts),
        method="shapley",
        permutations=8,
        seed=1,
        clock=lambda: next(ticks),
    )

    assert report.seconds == 2.5
    assert report.exact_rounds == 0
    assert 0 < report.evaluations <= 4 * 16  # at most every coalition, per round
    assert any(s.ci_high > s.ci_low for s in report.sites)
    assert all(s.ci_low <= s.shapley <= s.ci_high for s in report.sites)


def test_leave_one_out_alone_costs_n_plus_two_evaluations_per_round() -> None:
    kept, holdouts = federation(rounds=3)

    report = account(kept, weighted_log_likelihood(holdouts), method="loo")

    assert report.evaluations == 3 * (4 + 2)  # all, each without one, the base
    assert all(s.shapley is None and s.ci_low is None for s in report.sites)


def test_updates_that_do_not_fit_the_base_are_refused() -> None:
    with pytest.raises(ValueError, match="expected \\(2, 3\\)"):
        RoundUpdates(1, ("a", "b"), np.zeros(3), np.zeros((2, 4)), np.ones(2))
    with pytest.raises(ValueError, match="positive weight"):
        RoundUpdates(1, ("a", "b"), np.zeros(3), np.zeros((2, 3)), np.array([1, 0.0]))
