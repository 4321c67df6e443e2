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
