"""Tamper tests: every edit, deletion, reordering or re-signing names its entry."""

import base64
import json
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from accord.ledger.dsse import Envelope, KeySigner, canonical_json, key_id
from accord.ledger.export import dump_export, parse_export
from accord.ledger.verify import ModelFile, verify_export
from accord.ledger.writer import LedgerSigner, simulation_signer

from .conftest import T0, digest, write_ledger


def anchors_from_fresh_copy(federation, tmp_path: Path) -> list[x509.Certificate]:
    """The CA certificate alone, copied where nothing else of the PKI is."""
    alone = tmp_path / "only-ca"
    alone.mkdir()
    shutil.copy(federation.ca / "ca.pem", alone / "ca.pem")
    return x509.load_pem_x509_certificates((alone / "ca.pem").read_bytes())


def export_of(lines: list[str], signer: LedgerSigner, run: str = "run-1"):
    certs = [signer.certificate] if signer.certificate else []
    return parse_export(dump_export(run, lines, certs))


def edited(line: str, change) -> str:
    """``line``'s envelope with its statement changed, the signature kept."""
    env = Envelope.from_json(line)
    statement = json.loads(env.payload)
    change(statement)
    return Envelope(
        env.payload_type, canonical_json(statement), env.signatures
    ).to_json()


def resigned(line: str, signer) -> str:
    env = Envelope.from_json(line)
    return Envelope.signed(env.payload_type, env.payload, signer).to_json()


@pytest.fixture
def deployed(federation, tmp_path):
    signer = federation.signer()
    lines = [r.envelope for r in write_ledger(signer)]
    return signer, lines, anchors_from_fresh_copy(federation, tmp_path)


def messages(verdict) -> list[str]:
    return [str(p) for p in verdict.problems]


def test_an_untouched_deployed_ledger_verifies_with_only_the_ca(deployed):
    signer, lines, anchors = deployed

    verdict = verify_export(export_of(lines, signer), anchors=anchors)

    assert verdict.ok, messages(verdict)
    assert (verdict.entries, verdict.rounds, verdict.status) == (5, 3, "completed")
    assert verdict.identity
    assert verdict.signers == (
        f"coordinator 'coordinator' (certificate {signer.signer.keyid[:16]}…)",
    )


def test_an_edited_entry_is_named_and_breaks_the_next_link(deployed):
    signer, lines, anchors = deployed

    def more_examples(statement):
        statement["predicate"]["outcomes"][0]["examples"] = 999

    lines[2] = edited(lines[2], more_examples)
    verdict = verify_export(export_of(lines, signer), anchors=anchors)

    found = messages(verdict)
    assert any(m.startswith("entry 2 (round 2):") and "edited" in m for m in found)
    assert any(
        m.startswith("entry 3 (round 3): does not follow entry 2") for m in found
    )
    assert len(found) == 2


def test_a_deleted_entry_is_named_by_the_one_after_it(deployed):
    signer, lines, anchors = deployed

    del lines[2]
    verdict = verify_export(export_of(lines, signer), anchors=anchors)

    found = messages(verdict)
    assert any(
        m.startswith("entry 2 (round 3): has sequence 3 at position 2")
        and "missing" in m
        for m in found
    )


def test_a_deleted_closing_entry_is_reported(deployed):
    signer, lines, anchors = deployed

    verdict = verify_export(export_of(lines[:-1], signer), anchors=anchors)

    assert messages(verdict) == [
        "entry 3 (round 3): is the last entry, but the run-closed entry should "
        "follow it: the run is still running or was cut short, or later entries "
        "were removed"
    ]


def test_reordered_entries_are_both_named(deployed):
    signer, lines, anchors = deployed

    lines[2], lines[3] = lines[3], lines[2]
    verdict = verify_export(export_of(lines, signer), anchors=anchors)

    found = messages(verdict)
    assert any(m.startswith("entry 2 (round 3): has sequence 3") for m in found)
    assert any(
        m.startswith("entry 3 (round 2): has sequence 2") and "reordered" in m
        for m in found
    )


def test_an_entry_resigned_by_another_certified_coordinator_is_named(
    deployed, federation
):
    signer, lines, anchors = deployed
    other = federation.signer("other-coordinator")

    lines[2] = resigned(lines[2], other.signer)
    export = parse_export(
        dump_export("run-1", lines, [signer.certificate, other.certificate])
    )
    verdict = verify_export(export, anchors=anchors)

    found = messages(verdict)
    assert any(
        m.startswith("entry 2 (round 2): is signed by")
        and "signed again with another key" in m
        for m in found
    )


def test_an_entry_edited_and_resigned_with_a_stray_key_under_the_right_keyid(deployed):
    signer, lines, anchors = deployed
    stray = KeySigner(ec.generate_private_key(ec.SECP256R1()), signer.signer.keyid)

    lines[1] = resigned(
        edited(lines[1], lambda s: s["predicate"].update(aggregate=digest(1))), stray
    )
    verdict = verify_export(export_of(lines, signer), anchors=anchors)

    found = messages(verdict)
    assert any(
        m.startswith("entry 1 (round 1): its signature does not match") for m in found
    )


def test_a_swapped_model_file_is_named_against_the_closing_entry(deployed):
    signer, lines, anchors = deployed
    right = ModelFile("final.safetensors", digest(1), digest(103))
    wrong = ModelFile("final.safetensors", digest(1), digest(104))

    good = verify_export(export_of(lines, signer), anchors=anchors, model=right)
    bad = verify_export(export_of(lines, signer), anchors=anchors, model=wrong)

    assert good.ok, messages(good)
    [problem] = messages(bad)
    assert problem.startswith("entry 4 (run-closed): names final model")
    assert "not this run's final model" in problem


def test_a_model_named_by_its_sha256_in_an_earlier_ledger_verifies(deployed):
    # Earlier versions named a checkpoint's parameters by SHA-256, not BLAKE3.
    signer, lines, anchors = deployed
    earlier = ModelFile("final.safetensors", digest(1), digest(999), digest(103))
    other = ModelFile("final.safetensors", digest(1), digest(999), digest(104))

    good = verify_export(export_of(lines, signer), anchors=anchors, model=earlier)
    bad = verify_export(export_of(lines, signer), anchors=anchors, model=other)

    assert good.ok, messages(good)
    assert not bad.ok


def test_a_ledger_from_another_ca_is_refused(deployed, tmp_path):
    signer, lines, _ = deployed
    from accord.transport import pki

    pki.init_ca(tmp_path / "other", federation="other", passphrase=b"p" * 12, now=T0)
    anchors = x509.load_pem_x509_certificates((tmp_path / "other/ca.pem").read_bytes())

    verdict = verify_export(export_of(lines, signer), anchors=anchors)

    assert len(verdict.problems) == 5
    assert "was not issued by this federation's CA" in messages(verdict)[0]


def test_a_simulation_ledger_verifies_for_integrity_only(tmp_path):
    signer = simulation_signer(tmp_path)
    lines = [r.envelope for r in write_ledger(signer)]

    verdict = verify_export(export_of(lines, signer), anchors=None)

    assert verdict.ok, messages(verdict)
    assert not verdict.identity
    assert verdict.signers == (
        f"simulation key {signer.signer.keyid[:16]}… (integrity only, no identity)",
    )
    assert (tmp_path / "ledger-key.pem").stat().st_mode & 0o777 == 0o600
    assert simulation_signer(tmp_path).signer.keyid == signer.signer.keyid


def test_a_simulation_ledger_resigned_with_another_key_is_named(tmp_path):
    signer = simulation_signer(tmp_path)
    lines = [r.envelope for r in write_ledger(signer)]
    key = Ed25519PrivateKey.generate()

    lines[3] = resigned(lines[3], KeySigner(key, key_id(key.public_key())))
    verdict = verify_export(export_of(lines, signer), anchors=None)

    assert any(
        m.startswith("entry 3 (round 3): is signed by") for m in messages(verdict)
    )


def test_a_simulation_ledger_does_not_pass_for_a_federation_one(deployed, tmp_path):
    _, _, anchors = deployed
    signer = simulation_signer(tmp_path)
    lines = [r.envelope for r in write_ledger(signer)]

    verdict = verify_export(export_of(lines, signer), anchors=anchors)

    assert "simulation key, not by a certificate of this CA" in messages(verdict)[0]


def test_a_deployed_ledger_without_the_ca_asks_for_it(deployed):
    signer, lines, _ = deployed

    verdict = verify_export(export_of(lines, signer), anchors=None)

    assert "verify it with the federation's CA (--trust)" in messages(verdict)[0]


def test_garbage_lines_are_named_by_position(deployed):
    signer, lines, anchors = deployed

    lines[1] = "{not json"
    verdict = verify_export(export_of(lines, signer), anchors=anchors)

    found = messages(verdict)
    assert found[0].startswith("entry 1 (unreadable): an envelope is not JSON")
    assert any(
        m.startswith("entry 2 (round 2): does not follow entry 1") for m in found
    )


def test_a_first_entry_that_is_not_the_opening_one_is_named(deployed):
    signer, lines, anchors = deployed

    verdict = verify_export(export_of(lines[1:], signer), anchors=anchors)

    found = messages(verdict)
    assert any("does not start with the run-opened entry" in m for m in found)
    assert any("earlier ones are gone" in m for m in found)


def test_an_entry_of_another_run_is_named(federation, deployed):
    signer, lines, anchors = deployed
    stranger = write_ledger(signer, run_id="run-2")

    lines[2] = stranger[2].envelope
    verdict = verify_export(export_of(lines, signer), anchors=anchors)

    assert any(
        m.startswith("entry 2 (round 2): belongs to run 'run-2'")
        for m in messages(verdict)
    )


def test_a_payload_that_is_no_statement_is_named(deployed):
    signer, lines, anchors = deployed
    env = Envelope.signed(
        "application/vnd.in-toto+json", base64.b64encode(b"x"), signer.signer
    )

    lines[1] = env.to_json()
    verdict = verify_export(export_of(lines, signer), anchors=anchors)

    assert messages(verdict)[0].startswith(
        "entry 1 (unreadable): the entry is not an accord ledger statement"
    )


def test_a_simulation_ledger_signed_with_another_store_key_is_refused_when_pinned(
    tmp_path,
):
    mine = simulation_signer(tmp_path / "mine")
    theirs = simulation_signer(tmp_path / "theirs")
    lines = [r.envelope for r in write_ledger(theirs)]

    pinned = verify_export(
        export_of(lines, theirs), anchors=None, simulation_key=mine.signer.keyid
    )
    right = verify_export(
        export_of(lines, theirs), anchors=None, simulation_key=theirs.signer.keyid
    )

    assert right.ok
    assert messages(pinned) == [
        f"entry 0 (run-opened): is signed by key {theirs.signer.keyid[:16]}…, not "
        f"by the given simulation key {mine.signer.keyid[:16]}…"
    ]
