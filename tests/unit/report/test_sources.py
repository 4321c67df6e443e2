"""Reading a run's ledger for its card: a damaged entry is reported, not fatal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from accord.ledger.writer import LedgerWriter, certificate_signer
from accord.records import LedgerRecord
from accord.report.sources import check_ledger, read_entries
from accord.transport import pki

PASS = b"report test passphrase"


def test_an_unreadable_opening_entry_fails_the_check_and_keeps_its_place():
    records = [LedgerRecord("run-1", 0, "run-opened", None, "a" * 64, "{not json")]

    entries = read_entries(records)
    check = check_ledger("run-1", records, [], anchors=None)

    assert [(e.sequence, e.kind, dict(e.predicate)) for e in entries] == [
        (0, "run-opened", {})
    ]
    assert check is not None
    assert check.verified is False
    assert check.problems


def test_a_run_without_a_ledger_has_no_check():
    assert check_ledger("run-1", [], [], anchors=None) is None


def _deployed_ledger(root: Path) -> tuple[list[LedgerRecord], Path]:
    """A ledger signed with a coordinator's certificate from a fresh CA."""
    at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    pki.init_ca(root / "ca", federation="card", passphrase=PASS, now=at)
    folder = root / "coordinator"
    csr = pki.request(folder, "coordinator", role="coordinator", hosts=["localhost"])
    pki.sign(root / "ca", csr, passphrase=PASS, role="coordinator", now=at)
    signer = certificate_signer(
        (folder / "key.pem").read_bytes(), (folder / "cert.pem").read_bytes()
    )
    ticks = iter(at + timedelta(minutes=m) for m in range(100))
    writer = LedgerWriter(signer, "run-1", clock=lambda: next(ticks))
    records = []
    for entry in (
        lambda: writer.opened(config={}, version="0.1.0", code={}, roster=[]),
        lambda: writer.closed(
            status="completed", model="e" * 64, checkpoint=None, rounds=0, reason=None
        ),
    ):
        record = entry()
        writer.accept(record)
        records.append(record)
    return records, root / "ca" / "ca.pem"


def test_a_deployed_ledger_is_checked_only_against_a_ca(tmp_path):
    records, ca = _deployed_ledger(tmp_path)
    anchors = x509.load_pem_x509_certificates(ca.read_bytes())

    unchecked = check_ledger("run-1", records, [], anchors=None)
    checked = check_ledger("run-1", records, [], anchors=anchors)
    other = tmp_path / "other"
    pki.init_ca(other, federation="other", passphrase=PASS)
    foreign = x509.load_pem_x509_certificates((other / "ca.pem").read_bytes())
    refused = check_ledger("run-1", records, [], anchors=foreign)

    assert unchecked is not None and unchecked.verified is None
    assert "pass --trust" in unchecked.how
    assert checked is not None and checked.verified is True, checked.problems
    assert "coordinator 'coordinator'" in checked.how
    assert refused is not None and refused.verified is False
    assert refused.problems
