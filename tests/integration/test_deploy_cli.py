"""``accord coordinator`` and ``accord participant`` refuse unsafe or partial setups."""

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


def test_plaintext_beyond_loopback_is_refused(tmp_path):
    config = tmp_path / "fed.toml"
    config.write_text(FED)

    result = runner.invoke(
        app, ["coordinator", str(config), "--listen", "0.0.0.0:0", "--insecure"]
    )

    assert result.exit_code == 2
    assert "loopback" in result.output


def test_a_coordinator_without_certificates_says_what_to_pass(tmp_path):
    config = tmp_path / "fed.toml"
    config.write_text(FED)

    result = runner.invoke(app, ["coordinator", str(config), "--listen", "127.0.0.1:0"])

    assert result.exit_code == 2
    assert "--pki" in result.output


def test_a_participant_needs_an_identity_or_explicit_plaintext(tmp_path):
    result = runner.invoke(
        app,
        ["participant", "--coordinator", "127.0.0.1:1", "--data", f"sim:{tmp_path}#a"],
    )

    assert result.exit_code == 2
    assert "--identity" in result.output


def test_plaintext_participant_must_dial_loopback(tmp_path):
    config = tmp_path / "fed.toml"
    config.write_text(FED)

    result = runner.invoke(
        app,
        [
            "participant",
            "--coordinator",
            "10.1.2.3:7000",
            "--insecure",
            "site-00",
            "--data",
            f"sim:{config}#site-00",
        ],
    )

    assert result.exit_code == 2
    assert "loopback" in result.output
