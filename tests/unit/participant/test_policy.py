"""The site's policy: which train tasks it refuses, decided from the task alone."""

import pytest

from accord.errors import ConfigError
from accord.participant.policy import SitePolicy


def test_the_default_policy_accepts_every_task():
    policy = SitePolicy()

    assert policy.refusal(secure=False) is None
    assert policy.refusal(secure=True, threshold=2) is None
    assert not policy.requires_secure


def test_requiring_secure_aggregation_refuses_a_plain_task_and_names_the_flag():
    policy = SitePolicy(require_secure_aggregation=True)

    reason = policy.refusal(secure=False)

    assert reason is not None and reason.startswith("site policy")
    assert "--require-secure-aggregation" in reason and "plain" in reason
    assert policy.refusal(secure=True, threshold=3) is None


@pytest.mark.parametrize(("threshold", "refused"), [(2, True), (4, True), (5, False)])
def test_a_threshold_below_the_minimum_is_refused(threshold, refused):
    policy = SitePolicy(min_threshold=5)

    reason = policy.refusal(secure=True, threshold=threshold)

    assert (reason is not None) is refused
    if refused:
        assert f"threshold {threshold} is below this site's minimum of 5" in reason


def test_a_minimum_threshold_implies_secure_aggregation():
    policy = SitePolicy(min_threshold=3)

    reason = policy.refusal(secure=False)

    assert policy.requires_secure
    assert reason is not None and "--min-threshold 3" in reason


def test_a_secure_task_without_a_threshold_fails_a_minimum():
    assert SitePolicy(min_threshold=3).refusal(secure=True) is not None


@pytest.mark.parametrize("minimum", [0, 1, -4])
def test_a_minimum_below_two_is_a_configuration_error(minimum):
    with pytest.raises(ConfigError, match="at least 2"):
        SitePolicy(min_threshold=minimum)


def test_requiring_secure_aggregation_accepts_a_ckks_round():
    assert (
        SitePolicy(require_secure_aggregation=True).refusal(secure=True, ckks=True)
        is None
    )


def test_a_minimum_threshold_refuses_a_ckks_round_which_has_none():
    reason = SitePolicy(min_threshold=2).refusal(secure=True, ckks=True)

    assert reason is not None and reason.startswith("site policy")
    assert "CKKS round has no threshold" in reason and "--min-threshold" in reason
