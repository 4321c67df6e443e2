"""``[privacy]``: validated at load, strict, and refused where DP would not hold."""

import pytest

from accord.config import config_from_mapping
from accord.errors import ConfigError

BASE = {
    "data": {"dataset": "digits", "sites": 10},
    "task": {"factory": "accord.task.numpy_task:softmax_regression"},
}
PARTICIPANT = {"level": "participant", "noise_multiplier": 1.0, "clip": 0.5}


def load(**sections):
    return config_from_mapping({**BASE, **sections})


def test_off_by_default_with_a_fixed_delta_and_pld():
    privacy = load().privacy
    assert privacy.level == "off"
    assert privacy.delta == 1e-5
    assert privacy.accountant == "pld"
    assert privacy.budget_epsilon is None


def test_participant_level_with_a_noise_multiplier_loads():
    cfg = load(privacy={**PARTICIPANT, "budget_epsilon": 3.0})
    assert cfg.privacy.noise_multiplier == 1.0
    assert cfg.privacy.clip == 0.5
    assert cfg.to_json_dict()["privacy"]["budget_epsilon"] == 3.0


def test_record_level_keys_are_accepted():
    cfg = load(privacy={"level": "record", "target_epsilon": 3.0, "clip": 1.0})
    assert cfg.privacy.level == "record"


@pytest.mark.parametrize(
    "privacy",
    [
        {"level": "participant", "clip": 1.0},
        {
            "level": "participant",
            "clip": 1.0,
            "noise_multiplier": 1.0,
            "target_epsilon": 2.0,
        },
    ],
    ids=["neither", "both"],
)
def test_exactly_one_of_multiplier_and_target(privacy):
    with pytest.raises(ConfigError, match="exactly one of noise_multiplier"):
        load(privacy=privacy)


def test_participant_level_needs_a_clip_unless_adaptive():
    with pytest.raises(ConfigError, match="needs clip"):
        load(privacy={"level": "participant", "noise_multiplier": 1.0})
    cfg = load(
        privacy={"level": "participant", "noise_multiplier": 1.0, "adaptive_clip": True}
    )
    assert cfg.privacy.adaptive_clip and cfg.privacy.target_quantile == 0.5


def test_dp_keys_with_level_off_are_refused_not_ignored():
    with pytest.raises(ConfigError, match="level = 'off'"):
        load(privacy={"noise_multiplier": 1.0})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("noise_multiplier", 0.0),
        ("noise_multiplier", 100.0 + 1e-9),
        ("target_epsilon", 0.0),
        ("delta", 0.0),
        ("delta", 1.0),
        ("clip", 0.0),
        ("target_quantile", 1.0),
        ("budget_epsilon", 0.0),
        ("noise_multiplier", float("inf")),
        ("noise_multiplier", True),
        ("level", "sample"),
        ("accountant", "moments"),
        ("epsilon", 1.0),
    ],
)
def test_values_just_past_each_bound_are_refused_naming_the_key(key, value):
    privacy = {**PARTICIPANT, key: value}
    with pytest.raises(ConfigError, match=f"privacy.{key}"):
        load(privacy=privacy)


def test_values_on_the_bounds_load():
    cfg = load(privacy={**PARTICIPANT, "noise_multiplier": 100.0, "delta": 0.999})
    assert cfg.privacy.noise_multiplier == 100.0


@pytest.mark.parametrize("rule", ["median", "trimmed_mean"])
def test_participant_dp_needs_the_mean(rule):
    with pytest.raises(ConfigError, match='aggregation = "mean"') as info:
        load(privacy=PARTICIPANT, strategy={"aggregation": rule})
    assert info.value.key == "privacy.level"


def test_participant_dp_with_masking_loads_for_distributed_noise():
    cfg = load(privacy=PARTICIPANT, secure_aggregation="masking")
    assert cfg.privacy.level == "participant"
    assert cfg.secure_aggregation.mode == "masking"


def test_participant_dp_with_ckks_is_refused():
    with pytest.raises(ConfigError, match="under encryption") as info:
        load(privacy=PARTICIPANT, secure_aggregation="ckks")
    assert info.value.key == "privacy.level"


def test_adaptive_clip_with_masking_is_refused():
    adaptive = {"level": "participant", "noise_multiplier": 1.0, "adaptive_clip": True}
    with pytest.raises(ConfigError, match="fixed clip") as info:
        load(privacy=adaptive, secure_aggregation="masking")
    assert info.value.key == "privacy.adaptive_clip"
