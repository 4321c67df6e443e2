"""``accord participant --personalize``: the site's own FedPer or Ditto setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.cli.main import app
from accord.cli.participant import _personal
from accord.errors import ConfigError
from accord.task.personal_method import PersonalMethod

runner = CliRunner()


def test_off_is_none_and_the_methods_are_the_sites_setting():
    assert _personal("off", [], 0.1) is None
    assert _personal("fedper", ["fc2.*"], 0.1) == PersonalMethod(
        method="fedper", private=("fc2.*",)
    )
    assert _personal("ditto", [], 0.5) == PersonalMethod(method="ditto", lam=0.5)


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (("fedavg", [], 0.1), "--personalize"),
        (("fedper", [], 0.1), "--private"),
        (("ditto", ["fc2.*"], 0.1), "--private"),
        (("off", ["fc2.*"], 0.1), "--private"),
    ],
)
def test_inconsistent_options_are_refused_naming_the_option(args, key):
    with pytest.raises(ConfigError) as caught:
        _personal(*args)

    assert caught.value.key == key


def test_a_pattern_matching_nothing_is_refused_before_dialling_out(tmp_path: Path):
    fed = tmp_path / "fed.toml"
    fed.write_text(
        '[data]\ndataset = "wine"\nsites = 3\n'
        '[task]\nfactory = "accord.task.numpy_task:mlp"\n'
    )
    args = ["participant", "--insecure", "site-00", "--coordinator", "127.0.0.1:9"]
    args += ["--data", f"sim:{fed}#site-00", "--personalize", "fedper"]

    result = runner.invoke(app, [*args, "--private", "head.*"])

    assert result.exit_code == 2, result.output
    assert "match none of the model's parameters (w1, b1, w2, b2)" in result.output


def test_ditto_with_a_task_that_cannot_is_refused_before_dialling_out(tmp_path: Path):
    fed = tmp_path / "fed.toml"
    fed.write_text(
        '[data]\ndataset = "wine"\nsites = 3\n'
        '[task]\nfactory = "accord.task.sklearn:sgd_classifier"\n'
    )
    args = ["participant", "--insecure", "site-00", "--coordinator", "127.0.0.1:9"]

    result = runner.invoke(
        app, [*args, "--data", f"sim:{fed}#site-00", "--personalize", "ditto"]
    )

    assert result.exit_code == 2, result.output
    assert "Ditto" in result.output


def test_a_sim_site_whose_fed_toml_sets_it_refuses_a_second_setting(tmp_path: Path):
    fed = tmp_path / "fed.toml"
    fed.write_text(
        '[data]\ndataset = "wine"\nsites = 3\n'
        '[task]\nfactory = "accord.task.numpy_task:mlp"\n'
        '[personalization]\nmethod = "ditto"\n'
    )
    args = ["participant", "--insecure", "site-00", "--coordinator", "127.0.0.1:9"]

    result = runner.invoke(
        app, [*args, "--data", f"sim:{fed}#site-00", "--personalize", "ditto"]
    )

    assert result.exit_code == 2, result.output
    assert "already sets [personalization]" in result.output
