"""Membership-inference scores, their ROC figures, and the bound (ε, δ) implies."""

import math

import numpy as np
import pytest

from accord.privacy.membership import (
    attack_auc,
    dp_auc_bound,
    dp_tpr_bound,
    lira_offline_scores,
    logit_confidence,
    loss_scores,
    roc_points,
    tpr_at_fpr,
)


def _labels(n_members, n_non):
    return np.r_[np.ones(n_members, dtype=bool), np.zeros(n_non, dtype=bool)]


def test_a_perfect_separator_has_auc_1_and_full_tpr_at_zero_fpr():
    member = _labels(50, 50)
    scores = np.where(member, 2.0, 1.0) + np.linspace(0, 0.5, 100)

    assert attack_auc(scores, member) == 1.0
    assert tpr_at_fpr(scores, member, 0.0) == 1.0
    assert attack_auc(-scores, member) == 0.0


def test_identical_distributions_give_auc_near_one_half():
    rng = np.random.default_rng(0)
    member = _labels(5000, 5000)
    scores = rng.normal(size=10_000)

    assert attack_auc(scores, member) == pytest.approx(0.5, abs=0.02)
    assert tpr_at_fpr(scores, member, 0.01) == pytest.approx(0.01, abs=0.006)


def test_all_tied_scores_are_one_threshold():
    member = _labels(3, 3)
    scores = np.zeros(6)

    fpr, tpr = roc_points(scores, member)

    assert attack_auc(scores, member) == 0.5
    assert fpr.tolist() == [0.0, 1.0] and tpr.tolist() == [0.0, 1.0]
    assert tpr_at_fpr(scores, member, 0.999) == 0.0


def test_tpr_at_fpr_allows_exactly_floor_fpr_times_n_false_positives():
    # 1000 non-members at 0..998 and 1000.5; members at 1000.25 (5), 997.5 (5)
    # and 10 low ones. One false positive is allowed at FPR 0.001.
    non = np.arange(1000, dtype=float)
    non[-1] = 1000.5
    members = np.r_[np.full(5, 1000.25), np.full(5, 997.5), np.zeros(10)]
    scores = np.r_[members, non]
    member = _labels(20, 1000)

    # Just below 1/1000: no false positive allowed, nothing above 1000.5
    assert tpr_at_fpr(scores, member, 0.000999) == 0.0
    # Exactly 1/1000: one false positive (1000.5), the five at 1000.25 pass
    assert tpr_at_fpr(scores, member, 0.001) == 0.25
    # Two false positives (1000.5 and 998): the five at 997.5 too
    assert tpr_at_fpr(scores, member, 0.002) == 0.5
    assert tpr_at_fpr(scores, member, 1.0) == 1.0


def test_tpr_at_fpr_refuses_a_rate_outside_0_1():
    member = _labels(2, 2)
    with pytest.raises(ValueError, match="fpr must be in"):
        tpr_at_fpr(np.arange(4.0), member, 1.0000001)
    with pytest.raises(ValueError, match="fpr must be in"):
        tpr_at_fpr(np.arange(4.0), member, -0.1)


def test_scoring_refuses_one_sided_labels_and_non_finite_scores():
    with pytest.raises(ValueError, match="both members and non-members"):
        attack_auc([0.1, 0.2], [True, True])
    with pytest.raises(ValueError, match="finite"):
        attack_auc([0.1, math.nan], [True, False])
    with pytest.raises(ValueError, match="2 membership labels but 3"):
        attack_auc([0.1, 0.2, 0.3], [True, False])


def test_loss_and_logit_scores_rank_the_confident_true_class_higher():
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [1.0, 0.0]])
    y = np.array([0, 0, 0, 1])

    loss = loss_scores(proba, y)
    logit = logit_confidence(proba, y)

    assert loss[0] == pytest.approx(math.log(0.9))
    assert logit[0] == pytest.approx(math.log(9.0))
    assert loss[0] > loss[1] > loss[2] > loss[3]
    assert np.isfinite(logit).all() and logit[3] < -20  # p_y = 0 is clipped


def test_lira_scores_members_above_their_out_distribution():
    # 4 records, 4 shadows; each record is OUT in two of them at confidence 0 or 1
    shadows = np.array([[0.0, 1.0, 0.0, 1.0]] * 2 + [[1.0, 0.0, 1.0, 0.0]] * 2)
    inside = np.array(
        [[False, False, True, True]] * 2 + [[True, True, False, False]] * 2
    )
    target = np.array([3.0, 0.5, 0.5, 3.0])

    z = lira_offline_scores(target, shadows, inside)

    # OUT means: records 0 and 3 -> 0.0, records 1 and 2 -> 1.0; the shadows agree
    # exactly (std clamped), so only the sign and the order of target - mean count
    assert z[0] == z[3] > 0 > z[1] == z[2]


def test_lira_needs_out_records_and_matching_shapes():
    with pytest.raises(ValueError, match="leave some records out"):
        lira_offline_scores([0.0, 1.0], np.zeros((2, 2)), np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="shape"):
        lira_offline_scores([0.0, 1.0], np.zeros((2, 3)), np.zeros((2, 3), bool))


def test_lira_separates_a_simulated_member_shift():
    rng = np.random.default_rng(1)
    n, k = 400, 8
    base = rng.normal(size=n)  # each record's own difficulty
    member = _labels(n // 2, n // 2)
    inside = rng.random((k, n)) < 0.5
    shadows = base + 1.0 * inside + rng.normal(scale=0.3, size=(k, n))
    target = base + 1.0 * member + rng.normal(scale=0.3, size=n)

    lira = attack_auc(lira_offline_scores(target, shadows, inside), member)
    naive = attack_auc(target, member)

    assert lira > 0.95 > naive  # calibrating by each record's OUTs is the point


@pytest.mark.parametrize("eps", [0.0, 0.5, 1.0, 3.0, 8.0])
def test_auc_bound_without_delta_is_the_logistic_of_epsilon(eps):
    assert dp_auc_bound(eps, 0.0) == pytest.approx(math.exp(eps) / (1 + math.exp(eps)))


def test_auc_bound_grows_with_delta_and_epsilon_and_stays_in_range():
    assert dp_auc_bound(0.0, 0.0) == 0.5
    assert dp_auc_bound(1.0, 1e-5) > dp_auc_bound(1.0, 0.0)
    assert dp_auc_bound(3.0, 1e-5) > dp_auc_bound(1.0, 1e-5)
    assert dp_auc_bound(math.inf, 1e-5) == 1.0
    assert dp_auc_bound(50.0, 0.0) == pytest.approx(1.0)
    assert dp_auc_bound(0.0, 1.0) == pytest.approx(1.0)


def test_tpr_bound_at_the_kinks():
    eps, delta = math.log(2.0), 0.01
    # the first line: 2 * 0.001 + 0.01
    assert dp_tpr_bound(eps, delta, 0.001) == pytest.approx(0.012)
    # above the lines' crossing (1 - delta) / (1 + e^eps) = 0.33, the second:
    # 1 - (1 - 0.01 - 0.5) / 2
    assert dp_tpr_bound(eps, delta, 0.5) == pytest.approx(0.755)
    assert dp_tpr_bound(eps, delta, 1.0) == 1.0
    assert dp_tpr_bound(0.0, 0.0, 0.3) == pytest.approx(0.3)
    assert dp_tpr_bound(math.inf, 0.0, 0.0) == 1.0


def test_bounds_refuse_a_negative_epsilon_or_delta_out_of_range():
    with pytest.raises(ValueError, match="epsilon"):
        dp_auc_bound(-1e-9, 0.0)
    with pytest.raises(ValueError, match="delta"):
        dp_auc_bound(1.0, 1.0000001)
    with pytest.raises(ValueError, match="fpr"):
        dp_tpr_bound(1.0, 0.0, 1.5)
