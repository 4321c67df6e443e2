"""``accord audit export`` and ``verify`` on simulated runs, in process.

A simulated run's ledger is signed with the store's simulation key; it verifies for
integrity only, and any edit to the export or a swapped model file exits 6 naming
the entry. An interrupted and resumed run's ledger goes on without a gap, each
round written once.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.cli.main import app
from accord.store import SqlStore

from .test_simulate_interrupt import ctrl_c, write_federation  # noqa: F401

runner = CliRunner()

FED = """
[federation]
name = "audit-test"
rounds = 3
seed = 3
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
[evaluation]
baselines = false
[simulation]
workers = 0
[store]
directory = "{dir}"
"""


@pytest.fixture
def simulated(tmp_path: Path) -> tuple[Path, Path]:
    """A completed 3-round simulation; its store folder and ledger export."""
    config = tmp_path / "fed.toml"
    config.write_text(FED.format(dir=tmp_path / "runs"))
    done = runner.invoke(app, ["simulate", str(config), "--json"])
    assert done.exit_code == 0, done.output
    export = tmp_path / "ledger.jsonl"
    store = ["--dir", str(tmp_path / "runs")]
    out = runner.invoke(app, ["audit", "export", "latest", "-o", str(export), *store])
    assert out.exit_code == 0, out.output
    return tmp_path / "runs", export


def verify(*args: str):
    return runner.invoke(app, ["audit", "verify", *args])


def test_a_simulated_run_verifies_for_integrity_only(simulated):
    runs, export = simulated
    final = sorted((runs / "checkpoints").rglob("round-*.safetensors"))[-1]

    result = verify(str(export), "--model", str(final))
    pinned = verify(str(export), "--key", str(runs / "ledger-key.pem"))
    other = runs.parent / "other-key"
    other.mkdir()
    from accord.ledger.writer import simulation_signer

    simulation_signer(other)
    wrong = verify(str(export), "--key", str(other / "ledger-key.pem"))

    assert result.exit_code == 0, result.output
    assert pinned.exit_code == 0, pinned.output
    assert wrong.exit_code == 6
    assert "not by the given simulation key" in wrong.stdout
    assert "6 entries, 3 rounds, closed completed" in result.stdout
    assert "integrity only, no identity" in result.stdout
    assert "verified:" in result.stdout
    assert (runs / "ledger-key.pem").exists()


def test_an_earlier_checkpoint_given_as_the_model_exits_6(simulated):
    runs, export = simulated
    first = sorted((runs / "checkpoints").rglob("round-*.safetensors"))[0]

    result = verify(str(export), "--model", str(first), "--json")

    assert result.exit_code == 6, result.output
    report = json.loads(result.stdout)
    assert not report["ok"]
    assert report["problems"][0].startswith("entry 5 (run-closed): names final model")


def test_an_edited_export_exits_6_naming_the_entry(simulated, tmp_path):
    _, export = simulated
    lines = export.read_text().splitlines()
    envelope = json.loads(lines[4])  # header, opened, contract, round 1, round 2
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["outcomes"][0]["examples"] += 1
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    lines[4] = json.dumps(envelope)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join(lines) + "\n")

    result = verify(str(tampered))

    assert result.exit_code == 6
    assert "broken: entry 3 (round 2): its signature does not match" in " ".join(
        result.stdout.split()
    )


def test_a_simulation_export_checked_against_a_ca_exits_6(simulated, tmp_path):
    from accord.transport import pki

    _, export = simulated
    pki.init_ca(tmp_path / "ca", federation="x", passphrase=b"p" * 12)

    result = verify(str(export), "--trust", str(tmp_path / "ca"))

    assert result.exit_code == 6
    assert "simulation key, not by a certificate of this CA" in result.stdout


def test_an_unreadable_export_or_ca_exits_2(simulated, tmp_path):
    _, export = simulated
    (tmp_path / "junk").write_text("hello\n")

    assert verify(str(tmp_path / "junk")).exit_code == 2
    assert verify(str(export), "--trust", str(tmp_path / "nowhere")).exit_code == 2


def test_a_resumed_run_continues_its_chain_each_round_once(tmp_path, ctrl_c):  # noqa: F811
    # Arrange: a 4-round run interrupted as round 2 is recorded, then resumed
    write_federation(tmp_path)
    url = f"sqlite:///{tmp_path}/runs.db"
    args = ["simulate", str(tmp_path / "fed.toml"), "--store", url]
    ctrl_c(2)
    assert runner.invoke(app, args).exit_code == 130
    ctrl_c(None)
    assert runner.invoke(app, [*args, "--resume", "auto"]).exit_code == 0

    # Act
    export = tmp_path / "ledger.jsonl"
    exported = runner.invoke(
        app, ["audit", "export", "latest", "--store", url, "-o", str(export)]
    )
    result = verify(str(export))

    # Assert
    assert exported.exit_code == 0, exported.output
    assert result.exit_code == 0, result.output
    with SqlStore(url) as store:
        (info,) = store.list_runs()
        entries = store.ledger(info.run_id)
    # the data contract once: the resumed run's sites still make the same one
    assert [(e.kind, e.round) for e in entries] == [
        ("run-opened", None),
        ("data-contract", None),
        ("round", 1),
        ("round", 2),
        ("run-closed", None),  # aborted by Ctrl-C
        ("run-resumed", None),
        ("round", 3),
        ("round", 4),
        ("run-closed", None),
    ]
    assert [e.sequence for e in entries] == list(range(9))
    assert (tmp_path / "ledger-key.pem").exists()  # beside the SQLite file
