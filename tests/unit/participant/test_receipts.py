"""A site countersigns the entry of a round it sent to, and only if it agrees."""

from datetime import UTC, datetime, timedelta

import pytest

from accord.ledger.dsse import Envelope
from accord.ledger.writer import LedgerWriter, certificate_signer
from accord.participant.receipts import Receipts
from accord.participant.sitelog import SiteLog
from accord.records import ParticipantOutcome, RoundRecord
from accord.transport import pki
from accord.transport.identity import load_signing_identity
from accord.transport.messages import TaskOrder

PASS = b"receipts passphrase"
T0 = datetime(2026, 12, 1, tzinfo=UTC)
SENT, MODEL = "a" * 64, "b" * 64


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("pki")
    pki.init_ca(root / "ca", federation="r", passphrase=PASS, now=T0)
    for name, role in (("coordinator", "coordinator"), ("site-a", "participant")):
        hosts = ["localhost"] if role == "coordinator" else []
        csr = pki.request(root / name, name, role=role, hosts=hosts)
        pki.sign(root / "ca", csr, passphrase=PASS, role=role, now=T0)
    return root


def round_entry(folders, *, digest: str = SENT, run: str = "run-7") -> str:
    c = folders / "coordinator"
    signer = certificate_signer(
        (c / "key.pem").read_bytes(), (c / "cert.pem").read_bytes()
    )
    record = RoundRecord(
        run_id=run,
        number=1,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=1),
        status="completed",
        global_digest=MODEL,
        selected=("site-a",),
        outcomes=(ParticipantOutcome("site-a", "ok", None, 5, digest, 0.1),),
        metrics=(),
        checkpoint=None,
    )
    writer = LedgerWriter(signer, run)
    return writer.round(record, aggregate=None, inputs="update").envelope


def order(round_number: int, entry: str = "") -> TaskOrder:
    return TaskOrder("run-7.0a1b2c3d", round_number, "train", MODEL, ledger_entry=entry)


def test_the_site_signs_the_entry_of_its_last_update(folders):
    log = SiteLog()
    receipts = Receipts(load_signing_identity(folders / "site-a"), log)
    receipts.sent(order(1), SENT)

    signed = receipts.sign(order(2, round_entry(folders)))

    assert Envelope.from_json(signed).payload_type == (
        "application/vnd.accord.receipt+json"
    )


@pytest.mark.parametrize(
    ("entry_kw", "sent", "why"),
    [
        ({"digest": "c" * 64}, SENT, "names another digest"),
        ({}, None, "sent no update in round 1"),
        ({"run": "run-8"}, SENT, "the entry is of run 'run-8'"),
    ],
)
def test_the_site_signs_nothing_the_entry_misstates(
    folders, tmp_path, entry_kw, sent, why
):
    log = SiteLog(tmp_path / "site.jsonl")
    receipts = Receipts(load_signing_identity(folders / "site-a"), log)
    if sent is not None:
        receipts.sent(order(1), sent)

    signed = receipts.sign(order(2, round_entry(folders, **entry_kw)))
    log.close()

    assert signed == ""
    [refused] = SiteLog.read(tmp_path / "site.jsonl")
    assert refused["event"] == "receipt_refused" and why in refused["reason"]


def test_a_site_without_an_identity_key_signs_nothing(folders):
    receipts = Receipts(None, SiteLog())
    receipts.sent(order(1), SENT)

    assert receipts.sign(order(2, round_entry(folders))) == ""
