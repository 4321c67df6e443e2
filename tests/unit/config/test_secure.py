"""Secure-aggregation settings that cannot keep their promise are refused at load."""

import pytest

from accord.config import config_from_mapping
from accord.errors import ConfigError

BASE = {
    "data": {"dataset": "digits", "sites": 10},
    "task": {"factory": "accord.task.numpy_task:softmax_regression"},
}


def load(**sections):
    return config_from_mapping({**BASE, **sections})


def test_off_by_default_and_shorthand_turns_it_on():
    assert load().secure_aggregation.mode == "off"
    cfg = load(secure_aggregation="masking")
    assert cfg.secure_aggregation.mode == "masking"
    assert cfg.secure_aggregation.threshold is None  # safe default at run time


@pytest.mark.parametrize("rule", ["median", "trimmed_mean"])
def test_robust_rules_need_individual_updates(rule):
    with pytest.raises(ConfigError, match="individual update") as info:
        load(secure_aggregation="masking", strategy={"aggregation": rule})
    assert info.value.key == "secure_aggregation.mode"


@pytest.mark.parametrize("threshold", [2, 5])
def test_threshold_at_or_below_half_is_refused(threshold):
    with pytest.raises(ConfigError, match="survivor sets") as info:
        load(secure_aggregation={"mode": "masking", "threshold": threshold})
    assert info.value.key == "secure_aggregation.threshold"


def test_threshold_above_the_holders_is_refused():
    with pytest.raises(ConfigError, match="no secret can ever be rebuilt"):
        load(secure_aggregation={"mode": "masking", "threshold": 11})


def test_threshold_is_judged_per_neighbourhood():
    # Degree 4: five holders per participant; 3 of 5 is a majority.
    cfg = load(secure_aggregation={"mode": "masking", "threshold": 3, "degree": 4})
    assert cfg.secure_aggregation.threshold == 3
    with pytest.raises(ConfigError, match="survivor sets"):
        load(secure_aggregation={"mode": "masking", "threshold": 2, "degree": 4})


def test_a_majority_threshold_loads():
    cfg = load(secure_aggregation={"mode": "masking", "threshold": 6})
    assert cfg.secure_aggregation.threshold == 6


def test_rounds_of_two_cannot_be_secure():
    with pytest.raises(ConfigError, match="at least 3"):
        load(
            secure_aggregation="masking",
            data={"dataset": "digits", "sites": 2},
        )


def test_a_sample_of_the_federation_is_what_counts():
    # 10 sites, 30 % selected: rounds of 3, so a threshold of 3 is the most allowed.
    with pytest.raises(ConfigError, match="3 share holders"):
        load(
            secure_aggregation={"mode": "masking", "threshold": 4},
            selection={"fraction": 0.3},
        )


def test_unknown_mode_is_refused():
    with pytest.raises(ConfigError, match="secure_aggregation.mode"):
        load(secure_aggregation="homomorphic")
