"""``[gates]`` and ``[evaluation] sensitive``: strict keys, bounds, pairing."""

import pytest

from accord.config import config_from_mapping
from accord.errors import ConfigError

MINIMAL = {"data": {"dataset": "digits", "sites": 4}, "task": {"factory": "mod:obj"}}


def test_gates_are_off_by_default_and_read_when_given():
    plain = config_from_mapping(MINIMAL)
    gated = config_from_mapping(
        {
            **MINIMAL,
            "gates": {"central_metric": 0.8, "max_quarantined": 0, "max_epsilon": 4},
        }
    )

    assert plain.gates.central_metric is None and not plain.gates.fairness
    assert gated.gates.central_metric == 0.8
    assert gated.gates.max_quarantined == 0
    assert gated.to_json_dict()["gates"]["max_epsilon"] == 4


@pytest.mark.parametrize(
    ("gates", "named"),
    [
        ({"central_metrc": 0.8}, r"gates\.central_metrc"),
        ({"max_site_spread": -0.001}, r"gates\.max_site_spread"),
        ({"max_demographic_parity_difference": 1.001}, r"demographic_parity"),
        ({"max_quarantined": -1}, r"gates\.max_quarantined"),
    ],
)
def test_a_bad_gate_is_named(gates, named):
    with pytest.raises(ConfigError, match=named):
        config_from_mapping({**MINIMAL, "gates": gates})


def test_a_fairness_gate_needs_a_sensitive_column():
    fair = {"max_equalized_odds_difference": 0.1}

    with pytest.raises(ConfigError, match=r"\[evaluation\] sensitive"):
        config_from_mapping({**MINIMAL, "gates": fair})
    cfg = config_from_mapping(
        {**MINIMAL, "gates": fair, "evaluation": {"sensitive": "sex"}}
    )
    assert cfg.gates.fairness and cfg.evaluation.sensitive == "sex"


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_the_decision_threshold_is_strictly_between_0_and_1(threshold):
    with pytest.raises(ConfigError, match="decision_threshold"):
        config_from_mapping(
            {**MINIMAL, "evaluation": {"decision_threshold": threshold}}
        )
