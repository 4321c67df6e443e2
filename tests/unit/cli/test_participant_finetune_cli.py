"""``accord participant --finetune-epochs``: the site's own fine-tuning setting."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from accord.cli.main import app
from accord.cli.participant import _finetune
from accord.task.personalization import FineTune

runner = CliRunner()


def test_zero_epochs_is_off_and_more_is_the_sites_setting():
    assert _finetune(0, 0.05) is None
    assert _finetune(3, 0.01) == FineTune(
        epochs=3, batch_size=32, learning_rate=0.01, seed=0
    )


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--finetune-epochs", "1001"),
        ("--finetune-epochs", "-1"),
        ("--finetune-lr", "0"),
    ],
)
def test_values_past_the_bounds_are_usage_errors(option, value):
    result = runner.invoke(app, ["participant", "--insecure", "site", option, value])

    assert result.exit_code == 2
    assert option in result.output
