"""Which runs can be scored for contributions, and what is said when one cannot."""

from __future__ import annotations

from typing import Any

import pytest

from accord.config import config_from_mapping
from accord.errors import ConfigError, ContributionUnavailable
from accord.evaluation.contribution import approximation_notes, check_scorable

BASE: dict[str, Any] = {
    "data": {"dataset": "wine", "sites": 3},
    "task": {"factory": "accord.task.numpy_task:softmax_regression"},
}


def config(**sections: Any):
    return config_from_mapping({**BASE, **sections})


def test_a_plain_run_that_kept_its_updates_can_be_scored() -> None:
    check_scorable("r", config(contribution={"keep_updates": True}))


def test_a_run_without_kept_updates_is_refused_with_the_setting_to_change() -> None:
    with pytest.raises(ContributionUnavailable, match="keep_updates = true") as caught:
        check_scorable("r", config())
    assert caught.value.run_id == "r"


def test_a_secure_run_is_refused_saying_what_can_and_cannot_be_computed() -> None:
    secure = config(secure_aggregation={"mode": "masking"})

    with pytest.raises(ContributionUnavailable) as caught:
        check_scorable("r", secure)

    message = str(caught.value)
    assert "only the sum" in message
    assert "cannot be computed" in message
    assert "What can be" in message


def test_keeping_updates_under_secure_aggregation_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="contribution.keep_updates"):
        config(
            secure_aggregation={"mode": "masking"}, contribution={"keep_updates": True}
        )


def test_keeping_updates_without_checkpoints_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="checkpoints = true"):
        config(store={"checkpoints": False}, contribution={"keep_updates": True})


def test_a_robust_rule_or_adam_is_noted_as_an_approximation() -> None:
    assert approximation_notes(config()) == ()
    notes = approximation_notes(
        config(strategy={"aggregation": "median", "server_optimizer": "adam"})
    )
    assert len(notes) == 2 and "median" in notes[0]
