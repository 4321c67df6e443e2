"""``accord release`` of a deployed secure run reads the securely summed counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from accord.cli.release import _fairness
from accord.config import load_config
from accord.coordinator.group_sum import GroupSum
from accord.errors import ConfigError
from accord.evaluation.fairness import GroupCounts, fairness_report

FED = """
[federation]
name = "deployed-secure"
rounds = 1
[data]
dataset = "lending_club"
[task]
factory = "task:build"
[evaluation]
sensitive = "colour"
[secure_aggregation]
mode = "masking"
[gates]
max_demographic_parity_difference = 0.5
"""
COUNTS = {"blue": GroupCounts(3, 1, 4, 2), "red": GroupCounts(1, 0, 6, 1)}


def _config(tmp_path: Path) -> Any:
    fed = tmp_path / "fed.toml"
    fed.write_text(FED)
    return load_config(fed)


def test_the_gates_read_the_final_rounds_secure_sum(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    summed = GroupSum(1, ("a", "b"), ("a", "b"), COUNTS)

    # No model is read: the counts are the recorded sum's.
    report = _fairness(cfg, cast(Any, None), summed.metrics(), summed.detail())

    assert report is not None
    expected = fairness_report(COUNTS, column="colour", threshold=0.5)
    assert report.to_dict() == expected.to_dict()


def test_a_final_round_whose_sum_did_not_close_is_refused_with_why(
    tmp_path: Path,
) -> None:
    cfg = _config(tmp_path)
    failed = GroupSum(1, ("a", "b"), (), None, {"b": "silent"}, "too few: 1 < 2")

    with pytest.raises(ConfigError) as info:
        _fairness(cfg, cast(Any, None), failed.metrics(), failed.detail())

    assert "not summed securely" in str(info.value)
    assert "too few: 1 < 2" in str(info.value)
