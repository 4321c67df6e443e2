"""Receipts: a site signs only an entry that agrees with what it sent; the
coordinator keeps only a receipt signed by the site about its own round; the
verifier checks each against the entry and the site's certificate."""

import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from accord.errors import LedgerError
from accord.ledger.dsse import Envelope, KeySigner
from accord.ledger.export import dump_export, export_run, parse_export
from accord.ledger.receipt import accept_receipt, sign_receipt
from accord.ledger.verify import verify_export
from accord.transport.identity import load_signing_identity

from .conftest import SITES, digest, write_ledger


@pytest.fixture
def site(federation):
    identity = load_signing_identity(federation.root / SITES[0])
    assert identity is not None
    keyid = hashlib_fingerprint(identity.certificate)
    return identity, KeySigner(identity.key, keyid)


def hashlib_fingerprint(der: bytes) -> str:
    cert = x509.load_der_x509_certificate(der)
    return cert.fingerprint(hashes.SHA256()).hex()


@pytest.fixture
def ledger(federation):
    return write_ledger(federation.signer())


def receipt_for(ledger, site, **changes):
    identity, signer = site
    kw = {
        "participant": identity.name,
        "update_digest": digest(10 * 1 + 0),  # site-a's update in round 1
        "model_digest": digest(101),
        "signer": signer,
    }
    kw.update(changes)
    return sign_receipt(ledger[1].envelope, **kw)


def test_a_site_signs_the_entry_that_lists_what_it_sent(ledger, site):
    receipt = receipt_for(ledger, site)
    body = json.loads(receipt.payload)

    assert body == {
        "entry": ledger[1].digest,
        "run": "run-1",
        "round": 1,
        "participant": "site-a",
        "update": digest(10),
        "model": digest(101),
    }


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"update_digest": digest(999)}, "names another digest"),
        ({"model_digest": digest(999)}, "names another model"),
        ({"participant": "site-z"}, "does not list site-z's update as accepted"),
    ],
)
def test_a_site_refuses_an_entry_that_disagrees(ledger, site, change, why):
    with pytest.raises(LedgerError, match=why):
        receipt_for(ledger, site, **change)


def test_a_site_refuses_to_sign_an_entry_that_is_no_round(ledger, site):
    identity, signer = site
    with pytest.raises(LedgerError, match="run-opened entry as a round's"):
        sign_receipt(
            ledger[0].envelope,
            participant=identity.name,
            update_digest=digest(10),
            model_digest=digest(101),
            signer=signer,
        )


def test_the_coordinator_keeps_a_good_receipt_with_the_entry_it_names(ledger, site):
    identity, _ = site
    receipt = receipt_for(ledger, site)

    kept = accept_receipt(
        receipt.to_json(),
        participant="site-a",
        certificate=identity.certificate,
        entries=ledger,
    )

    assert (kept.sequence, kept.participant, kept.certificate) == (
        1,
        "site-a",
        identity.certificate,
    )


def test_the_coordinator_refuses_a_receipt_in_another_sites_name(
    ledger, site, federation
):
    other = load_signing_identity(federation.root / SITES[1])
    receipt = receipt_for(ledger, site)

    with pytest.raises(LedgerError, match="in the name of 'site-a'"):
        accept_receipt(
            receipt.to_json(),
            participant="site-b",
            certificate=other.certificate,
            entries=ledger,
        )


def test_the_coordinator_refuses_a_receipt_signed_by_another_key(
    ledger, site, federation
):
    other = load_signing_identity(federation.root / SITES[1])
    identity, signer = site
    forged = receipt_for(ledger, site, signer=KeySigner(other.key, signer.keyid))

    with pytest.raises(LedgerError, match="not signed by its identity key"):
        accept_receipt(
            forged.to_json(),
            participant="site-a",
            certificate=identity.certificate,
            entries=ledger,
        )


def test_the_coordinator_refuses_a_receipt_of_an_unknown_entry(ledger, site):
    identity, _ = site
    receipt = receipt_for(ledger, site)

    with pytest.raises(LedgerError, match="names no round entry"):
        accept_receipt(
            receipt.to_json(),
            participant="site-a",
            certificate=identity.certificate,
            entries=ledger[:1],
        )


def test_receipts_verify_and_one_for_a_rewritten_entry_is_named(
    ledger, site, federation, tmp_path
):
    # Arrange: a receipt kept, then round 1 rewritten and signed again by the
    # coordinator itself (its own key: the chain and signatures would hold)
    identity, _ = site
    kept = accept_receipt(
        receipt_for(ledger, site).to_json(),
        participant="site-a",
        certificate=identity.certificate,
        entries=ledger,
    )
    anchors = x509.load_pem_x509_certificates((federation.ca / "ca.pem").read_bytes())
    good = parse_export(export_run("run-1", ledger, [kept]))
    signer = federation.signer()
    env = Envelope.from_json(ledger[1].envelope)
    statement = json.loads(env.payload)
    statement["predicate"]["outcomes"][0]["examples"] = 1
    rewritten = Envelope.signed(
        env.payload_type,
        json.dumps(statement).encode(),
        signer.signer,
    )
    lines = [e.envelope for e in ledger]
    lines[1] = rewritten.to_json()
    cert = signer.certificate
    bad = parse_export(
        dump_export("run-1", [*lines, kept.envelope], [cert, kept.certificate])
    )

    # Act
    fine = verify_export(good, anchors=anchors)
    broken = verify_export(bad, anchors=anchors)

    # Assert
    assert fine.ok and fine.receipts == 1, [str(p) for p in fine.problems]
    assert any(
        str(p) == "ledger: the receipt of site-a for round 1 names an entry that is "
        "not in the ledger (it was rewritten)"
        for p in broken.problems
    )


def test_a_receipt_of_a_certificate_from_another_ca_is_named(
    ledger, site, federation, tmp_path
):
    from accord.transport import pki

    from .conftest import PASS, T0

    identity, _ = site
    kept = accept_receipt(
        receipt_for(ledger, site).to_json(),
        participant="site-a",
        certificate=identity.certificate,
        entries=ledger,
    )
    pki.init_ca(tmp_path / "ca2", federation="two", passphrase=PASS, now=T0)
    csr = pki.request(tmp_path / "impostor", "site-a", role="participant", hosts=[])
    pki.sign(tmp_path / "ca2", csr, passphrase=PASS, role="participant", now=T0)
    impostor = load_signing_identity(tmp_path / "impostor")
    forged = receipt_for(
        ledger,
        site,
        signer=KeySigner(impostor.key, hashlib_fingerprint(impostor.certificate)),
    )
    anchors = x509.load_pem_x509_certificates((federation.ca / "ca.pem").read_bytes())
    export = parse_export(
        dump_export(
            "run-1",
            [*(e.envelope for e in ledger), forged.to_json()],
            [federation.signer().certificate, impostor.certificate],
        )
    )

    verdict = verify_export(export, anchors=anchors)

    assert [str(p) for p in verdict.problems] == [
        "ledger: the receipt of site-a for round 1 is not signed by that site's "
        "identity certificate from this CA"
    ]
    assert kept.certificate != impostor.certificate
