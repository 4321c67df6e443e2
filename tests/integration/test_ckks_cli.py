"""`accord ckks keys` and the CKKS flags of `accord coordinator` and `participant`.

The coordinator refuses to start a CKKS run without the key holder's public
context, or with the secret one; a site refuses to hold the public one.
"""

import stat

import pytest

pytest.importorskip("tenseal")

from typer.testing import CliRunner

from accord.cli.main import app
from accord.store import SqlStore

runner = CliRunner()
FED = """
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
[secure_aggregation]
mode = "{mode}"
[deployment]
wait_s = 0.5
"""


def _words(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    out = tmp_path_factory.mktemp("key-holder")
    result = runner.invoke(app, ["ckks", "keys", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _config(tmp_path, mode="ckks"):
    config = tmp_path / "fed.toml"
    config.write_text(FED.format(mode=mode))
    return config


def _coordinator(tmp_path, *extra, mode="ckks"):
    port_file = tmp_path / "port"
    args = ["coordinator", str(_config(tmp_path, mode)), "--listen", "127.0.0.1:0"]
    args += ["--insecure", "--store", f"sqlite:///{tmp_path}/runs.db"]
    args += ["--port-file", str(port_file), *extra]
    return runner.invoke(app, args), port_file.exists()


def test_the_key_holder_gets_a_private_secret_and_a_public_context(keys):
    secret, public = keys / "ckks-secret.bin", keys / "ckks-public.bin"

    again = runner.invoke(app, ["ckks", "keys", "--out", str(keys)])
    shown = runner.invoke(app, ["ckks", "show", str(secret)])

    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(public.read_bytes()) < 1000 < len(secret.read_bytes())
    assert again.exit_code == 2 and "already exists" in _words(again)
    assert shown.exit_code == 0 and "SECRET" in shown.output


def test_the_key_holders_help_says_the_secret_never_goes_to_the_coordinator():
    result = runner.invoke(app, ["ckks", "keys", "--help"])

    assert "NEVER to the coordinator" in _words(result)


def test_a_ckks_coordinator_without_the_public_context_says_what_to_pass(tmp_path):
    result, listened = _coordinator(tmp_path)

    assert result.exit_code == 2, result.output
    assert "--ckks-public" in _words(result)
    assert not listened


def test_a_coordinator_refuses_the_secret_context(tmp_path, keys):
    result, listened = _coordinator(
        tmp_path, "--ckks-public", str(keys / "ckks-secret.bin")
    )

    assert result.exit_code == 2, result.output
    assert "carries the secret key" in _words(result)
    assert not listened


def test_a_public_context_without_ckks_mode_is_refused(tmp_path, keys):
    result, _ = _coordinator(
        tmp_path, "--ckks-public", str(keys / "ckks-public.bin"), mode="off"
    )

    assert result.exit_code == 2, result.output
    assert "mode 'off'" in _words(result)


def test_a_ckks_coordinator_listens_with_the_public_context(tmp_path, keys):
    # --insecure is allowed: CKKS needs no identity certificate. No site comes.
    result, listened = _coordinator(
        tmp_path, "--ckks-public", str(keys / "ckks-public.bin")
    )

    assert result.exit_code == 1, result.output
    assert listened and "participants connected" in _words(result)
    with SqlStore(f"sqlite:///{tmp_path}/runs.db") as store:
        assert [r.status for r in store.list_runs()] == ["aborted"]


def test_masking_is_still_refused_without_mutual_tls(tmp_path):
    result, listened = _coordinator(tmp_path, mode="masking")

    assert result.exit_code == 2, result.output
    assert "mutual TLS" in _words(result)
    assert not listened


def test_a_site_refuses_the_public_context(tmp_path, keys):
    config = _config(tmp_path)
    result = runner.invoke(
        app,
        [
            "participant",
            "--coordinator",
            "127.0.0.1:1",
            "--insecure",
            "site-00",
            "--data",
            f"sim:{config}#site-00",
            "--ckks-context",
            str(keys / "ckks-public.bin"),
        ],
    )

    assert result.exit_code == 2, result.output
    assert "participants need the secret context" in _words(result)
