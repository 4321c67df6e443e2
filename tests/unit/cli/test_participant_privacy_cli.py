"""``accord participant``'s differential-privacy flags are checked before it dials."""

import pytest
from typer.testing import CliRunner

from accord.cli.main import app

runner = CliRunner()
FED = """
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
"""


def _participant(tmp_path, *flags):
    config = tmp_path / "fed.toml"
    config.write_text(FED)
    return runner.invoke(
        app,
        [
            "participant",
            "--coordinator",
            "127.0.0.1:1",
            "--insecure",
            "site-00",
            "--data",
            f"sim:{config}#site-00",
            "--give-up-after",
            "0.01",
            *flags,
        ],
    )


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--require-dp", "participant"], "--require-dp"),
        (["--max-epsilon", "0"], "--max-epsilon"),
        (["--max-epsilon", "3"], "--privacy-ledger"),  # nowhere to keep a ledger
        (["--delta", "1"], "--delta"),
    ],
)
def test_bad_privacy_flags_exit_2_naming_the_flag(tmp_path, flags, named):
    result = _participant(tmp_path, *flags)

    assert result.exit_code == 2, result.output
    assert named in result.output


def test_a_corrupt_ledger_stops_the_site_and_is_kept(tmp_path):
    ledger = tmp_path / "ledger.json"
    ledger.write_text("{ corrupt")

    result = _participant(
        tmp_path, "--max-epsilon", "3", "--privacy-ledger", str(ledger)
    )

    assert result.exit_code == 1
    assert "privacy ledger" in result.output and "restore it" in result.output
    assert ledger.read_text() == "{ corrupt"


@pytest.mark.parametrize(
    ("task", "extra", "named"),
    [
        ("accord.task.numpy_task:softmax_regression", "", "declared_examples"),
        (
            "accord.task.sklearn:sgd_classifier",
            '[deployment]\ndeclared_examples = { "site-00" = 40 }\n',
            "sgd_classifier",
        ),
    ],
)
def test_a_record_level_coordinator_refuses_before_it_listens(
    tmp_path, task, extra, named
):
    config = tmp_path / "fed.toml"
    config.write_text(
        FED.replace("accord.task.numpy_task:softmax_regression", task)
        + f'[store]\ndirectory = "{tmp_path / "runs"}"\n'
        + '[privacy]\nlevel = "record"\nnoise_multiplier = 1.0\nclip = 1.0\n'
        + extra
    )

    result = runner.invoke(
        app, ["coordinator", str(config), "--listen", "127.0.0.1:0", "--insecure"]
    )

    assert result.exit_code == 2, result.output
    assert named in result.output
