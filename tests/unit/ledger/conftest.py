"""A federation CA with a coordinator and a site, and a small signed ledger.

The ledger is written by :class:`~accord.ledger.writer.LedgerWriter` from real
round records, signed with the coordinator's certificate key from the CA, as a
deployed run's is; tests tamper with its export and verify it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from accord.ledger.writer import LedgerSigner, LedgerWriter, certificate_signer
from accord.records import LedgerRecord, ParticipantOutcome, RoundRecord
from accord.transport import pki

PASS = b"ledger test passphrase"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SITES = ("site-a", "site-b")


def digest(n: int) -> str:
    return f"{n:064x}"


def round_record(run_id: str, number: int) -> RoundRecord:
    return RoundRecord(
        run_id=run_id,
        number=number,
        started_at=T0 + timedelta(minutes=number),
        finished_at=T0 + timedelta(minutes=number, seconds=30),
        status="completed",
        global_digest=digest(100 + number),
        selected=SITES,
        outcomes=tuple(
            ParticipantOutcome(s, "ok", None, 10 + i, digest(10 * number + i), 0.1)
            for i, s in enumerate(SITES)
        ),
        metrics=(),
        checkpoint=None,
    )


@dataclass
class Pki:
    ca: Path
    root: Path

    def enrol(self, name: str, role: pki.Role = "participant") -> Path:
        folder = self.root / name
        hosts = ["localhost"] if role == "coordinator" else []
        csr = pki.request(folder, name, role=role, hosts=hosts)
        pki.sign(self.ca, csr, passphrase=PASS, role=role, now=T0)
        return folder

    def signer(self, name: str = "coordinator") -> LedgerSigner:
        folder = self.root / name
        return certificate_signer(
            (folder / "key.pem").read_bytes(), (folder / "cert.pem").read_bytes()
        )


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    pki.init_ca(root / "ca", federation="ledger", passphrase=PASS, now=T0)
    fed = Pki(root / "ca", root)
    fed.enrol("coordinator", "coordinator")
    fed.enrol("other-coordinator", "coordinator")
    for site in SITES:
        fed.enrol(site)
    return fed


def write_ledger(
    signer: LedgerSigner, run_id: str = "run-1", rounds: int = 3
) -> list[LedgerRecord]:
    """opened, ``rounds`` rounds, closed: accepted one by one as a store would."""
    ticks = iter(T0 + timedelta(minutes=m) for m in range(1000))
    writer = LedgerWriter(signer, run_id, clock=lambda: next(ticks))
    out: list[LedgerRecord] = []

    def keep(entry: LedgerRecord) -> None:
        writer.accept(entry)
        out.append(entry)

    keep(
        writer.opened(
            config={"federation": {"name": "t"}},
            version="0.1.0",
            code={"task.py": digest(7)},
            roster=[{"participant": s} for s in SITES],
        )
    )
    for n in range(1, rounds + 1):
        keep(
            writer.round(
                round_record(run_id, n), aggregate=digest(50 + n), inputs="update"
            )
        )
    keep(
        writer.closed(
            status="completed",
            model=digest(100 + rounds),
            checkpoint=None,
            rounds=rounds,
            reason=None,
        )
    )
    return out


@pytest.fixture
def ledger_of() -> Callable[..., list[LedgerRecord]]:
    return write_ledger
