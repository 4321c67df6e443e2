"""A deployed run's ledger: coordinator-signed, countersigned by sites, checked offline.

Three participant runtimes over real gRPC with mutual TLS; the coordinator signs
its ledger with the key of its certificate from the federation's CA. The export
verifies on a "machine" that has only the CA certificate (a fresh folder holding a
copy of ca.pem), names the roster's certificate fingerprints, holds each site's
receipt for the rounds it contributed to, and breaks when an entry is signed again
by another coordinator of the same federation.
"""

import base64
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accord.cli.ledger_setup import deployment_ledger
from accord.cli.main import app
from accord.config import load_config
from accord.ledger.dsse import Envelope
from accord.ledger.export import export_run
from accord.ledger.statement import parse_statement
from accord.simulation.context import build_context
from accord.transport import pki
from accord.transport.roster import Roster

from .conftest import SITES

pytestmark = pytest.mark.timeout(120)

FED = """
[federation]
name = "grpc-ledger"
rounds = 3
seed = 5
[data]
dataset = "wine"
sites = 3
[task]
factory = "accord.task.numpy_task:softmax_regression"
[simulation]
workers = 0
[round]
deadline_s = 60
"""


def test_a_deployed_run_export_verifies_with_only_the_ca(
    deploy_sites, federation, tmp_path: Path
):
    # Arrange: the coordinator's ledger signer, as `accord coordinator --pki` makes
    (tmp_path / "fed.toml").write_text(FED)
    config = load_config(tmp_path / "fed.toml")
    folder = federation.root / "coordinator"
    # the coordinator's trust folder (here the CA's) holds the roster
    setup = deployment_ledger(config, pki.load_identity(folder), federation.ca)
    deployed = deploy_sites(SITES, config)
    initial = build_context(config).task.init_params(config.federation.seed)

    # Act: two rounds over mutual TLS, then the export and an offline check
    result, store = deployed.run(initial, ledger=setup, in_store=True)
    entries = store.ledger(result.run_id)
    receipts = store.receipts(result.run_id)
    export = tmp_path / "ledger.jsonl"
    export.write_text(export_run(result.run_id, entries, receipts))
    alone = tmp_path / "auditor"
    alone.mkdir()
    shutil.copy(federation.ca / "ca.pem", alone / "ca.pem")
    verified = CliRunner().invoke(
        app, ["audit", "verify", str(export), "--trust", str(alone), "--json"]
    )

    # Assert
    assert verified.exit_code == 0, verified.output
    report = json.loads(verified.stdout)
    assert (report["entries"], report["rounds"], report["status"]) == (
        5,
        3,
        "completed",
    )
    # rounds 1 and 2 countersigned by every site with its next update; the last
    # round's entry reaches no site (no train task follows it)
    assert sorted((r.sequence, r.participant) for r in receipts) == [
        (n, s) for n in (1, 2) for s in SITES
    ]
    assert report["receipts"] == 6
    assert report["identity"] and report["final_model"] == result.params.digest()
    assert report["signers"] == [
        f"coordinator 'coordinator' (certificate {setup.signer.signer.keyid[:16]}…)"
    ]
    opened = parse_statement(Envelope.from_json(entries[0].envelope).payload)
    roster = Roster.from_bytes((federation.ca / "roster.json").read_bytes())
    assert opened.predicate["roster"] == [
        {
            "participant": s,
            "certificate": roster.current(s).fingerprint,
            "identity": roster.current(s).identity_fingerprint,
        }
        for s in SITES
    ]
    first_round = parse_statement(Envelope.from_json(entries[1].envelope).payload)
    assert [o["digest"] for o in first_round.predicate["outcomes"]] == [
        o.update_digest for o in store.rounds(result.run_id)[0].outcomes
    ]
    assert all(o["status"] == "ok" for o in first_round.predicate["outcomes"])


def test_a_deployed_ledger_resigned_by_another_coordinator_fails(
    deploy_sites, federation, tmp_path: Path
):
    # Arrange: a run's export, its round 1 signed again by a second coordinator
    # certificate that the same CA issued
    (tmp_path / "fed.toml").write_text(FED.replace("rounds = 2", "rounds = 1"))
    config = load_config(tmp_path / "fed.toml")
    folder = federation.root / "coordinator"
    setup = deployment_ledger(config, pki.load_identity(folder), folder)
    other = deployment_ledger(
        config, pki.load_identity(federation.enrol("rogue", "coordinator")), None
    )
    deployed = deploy_sites(SITES, config)
    initial = build_context(config).task.init_params(config.federation.seed)
    result, store = deployed.run(initial, ledger=setup)
    lines = export_run(result.run_id, store.ledger(result.run_id), []).splitlines()
    env = Envelope.from_json(lines[2])
    lines[2] = Envelope.signed(
        env.payload_type, env.payload, other.signer.signer
    ).to_json()
    header = json.loads(lines[0])
    assert other.signer.certificate is not None
    header["certificates"].append(base64.b64encode(other.signer.certificate).decode())
    lines[0] = json.dumps(header)
    export = tmp_path / "resigned.jsonl"
    export.write_text("\n".join(lines) + "\n")

    # Act
    verified = CliRunner().invoke(
        app, ["audit", "verify", str(export), "--trust", str(federation.ca)]
    )

    # Assert
    assert verified.exit_code == 6, verified.output
    flat = " ".join(verified.stdout.split())
    assert "broken: entry 1 (round 1): is signed by" in flat
    assert "signed again with another key" in flat
