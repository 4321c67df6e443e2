"""``[attack]`` and ``[robustness]``: strict keys, bad combinations, simulation only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from accord.cli.main import app
from accord.config import config_from_mapping
from accord.errors import ConfigError
from accord.participant.data import load_local_data

BASE: dict[str, Any] = {
    "data": {"dataset": "wine", "sites": 4},
    "task": {"factory": "accord.task.numpy_task:softmax_regression"},
}


def _config(**sections: Any) -> Any:
    return config_from_mapping({**BASE, **sections})


def test_an_attack_and_a_policy_load_with_their_defaults() -> None:
    cfg = _config(
        attack={"kind": "min_max", "count": 1, "direction": "sign"},
        robustness={"max_norm_z": 3.0, "quarantine_after": 2},
    )

    assert cfg.attack is not None and cfg.attack.updates
    assert cfg.attack.gamma_init == 10.0 and cfg.attack.direction == "sign"
    assert cfg.robustness.scoring and not cfg.robustness.scores
    assert _config().attack is None and not _config().robustness.scoring


@pytest.mark.parametrize(
    ("attack", "match"),
    [
        ({"kind": "alie"}, "exactly one of sites"),
        ({"kind": "alie", "count": 1, "fraction": 0.2}, "exactly one of sites"),
        ({"kind": "alie", "sites": ["a", "a"]}, "twice"),
        ({"kind": "backdoor", "count": 1}, r"\[attack.backdoor\]"),
        ({"kind": "alie", "count": 0}, "count"),
        ({"kind": "alie", "fraction": 1.0}, "fraction"),
        ({"kind": "alie", "fraction": 0.0}, "fraction"),
        ({"kind": "krum", "count": 1}, "kind"),
        ({"kind": "alie", "count": 1, "epsilon": 0.0}, "epsilon"),
        ({"kind": "alie", "count": 1, "sacle": 2.0}, "sacle"),
        ({"kind": "min_max", "count": 1, "direction": "up"}, "direction"),
        ({"kind": "alie", "count": 1, "examples": 0}, "examples"),
        ({"kind": "alie", "count": 1, "examples": 2**53}, "examples"),
        ({"kind": "alie", "count": 1, "examples": 1.5}, "examples"),
        (
            {"kind": "backdoor", "count": 1, "backdoor": {"fraction": 1.01}},
            "fraction",
        ),
    ],
)
def test_a_bad_attack_is_refused_naming_the_key(
    attack: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        _config(attack=attack)


def test_values_just_inside_the_bounds_load() -> None:
    alie = _config(attack={"kind": "alie", "fraction": 0.99})
    backdoor = _config(
        attack={"kind": "backdoor", "count": 1, "backdoor": {"fraction": 1.0}}
    )
    rules = _config(robustness={"min_cosine": -1.0, "min_nearest_ratio": 0.01})

    assert alie.attack is not None and alie.attack.fraction == 0.99
    assert backdoor.attack is not None and backdoor.attack.backdoor is not None
    assert backdoor.attack.backdoor.fraction == 1.0
    assert rules.robustness.min_cosine == -1.0
    assert rules.robustness.min_nearest_ratio == 0.01


@pytest.mark.parametrize(
    ("robustness", "match"),
    [
        ({"quarantine_after": 2}, "needs a flag rule"),
        ({"max_norm_z": 3.0, "quarantine_after": 0}, "quarantine_after"),
        ({"min_cosine": -1.01}, "min_cosine"),
        ({"min_nearest_ratio": 1.0}, "min_nearest_ratio"),
        ({"max_norm_z": 0.0}, "max_norm_z"),
    ],
)
def test_a_bad_policy_is_refused(robustness: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _config(robustness=robustness)


def test_scores_and_update_attacks_are_refused_under_secure_aggregation() -> None:
    secure = {"secure_aggregation": {"mode": "masking"}}

    with pytest.raises(ConfigError, match="sees only their sum"):
        _config(robustness={"scores": True}, **secure)
    with pytest.raises(ConfigError, match="rewrites updates"):
        _config(attack={"kind": "scaling", "count": 1}, **secure)
    assert _config(attack={"kind": "label_flip", "count": 1}, **secure).attack
    with pytest.raises(ConfigError, match="attack.examples") as claimed:
        _config(attack={"kind": "label_flip", "count": 1, "examples": 50}, **secure)
    assert "masked sum" in str(claimed.value)


def test_a_claimed_count_routes_any_attack_through_the_engine() -> None:
    claim = _config(attack={"kind": "label_flip", "count": 1, "examples": 1})
    plain = _config(attack={"kind": "label_flip", "count": 1})
    top = _config(attack={"kind": "ipm", "count": 1, "examples": 2**53 - 1})

    assert claim.attack is not None and claim.attack.in_flight
    assert not claim.attack.updates and claim.attack.examples == 1
    assert plain.attack is not None and not plain.attack.in_flight
    assert top.attack is not None and top.attack.examples == 2**53 - 1


FED = """
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
[attack]
kind = "sign_flip"
count = 1
"""


def test_the_coordinator_refuses_a_config_with_an_attack(tmp_path: Path) -> None:
    fed = tmp_path / "fed.toml"
    fed.write_text(FED)

    result = CliRunner().invoke(
        app, ["coordinator", str(fed), "--listen", "127.0.0.1:0", "--insecure"]
    )

    assert result.exit_code == 2, result.output
    assert "accord coordinator" in result.output and "[attack]" in result.output


def test_a_participant_refuses_simulated_data_from_a_config_with_an_attack(
    tmp_path: Path,
) -> None:
    fed = tmp_path / "fed.toml"
    fed.write_text(FED)

    with pytest.raises(ConfigError, match="accord participant"):
        load_local_data(f"sim:{fed}#site-00")
    fed.write_text(FED.replace('[attack]\nkind = "sign_flip"\ncount = 1\n', ""))
    assert load_local_data(f"sim:{fed}#site-00").name == "site-00"
