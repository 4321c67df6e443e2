"""A run's ledger as one file: ``accord audit export RUN -o ledger.jsonl``.

JSON Lines. The first line is a header, the others are DSSE envelopes, one per
line, in the order they were written: the run's entries, then the sites' receipts
(:mod:`accord.ledger.receipt`), which a verifier tells apart by ``payloadType``::

    {"accordLedger": 1, "run": "20261206-...", "certificates": ["<base64 DER>", ...]}
    {"payload": "...", "payloadType": "application/vnd.in-toto+json", ...}
    ...

The header is not signed and need not be: it only carries the certificates a
verifier needs (the coordinator's, the sites' identity certificates), which are
public and are looked up by their SHA-256 fingerprint, then checked against the
federation's CA. Everything that matters is in the signed envelopes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from accord.errors import LedgerError
from accord.jsontext import parse_json
from accord.ledger.dsse import MAX_ENVELOPE_BYTES, Envelope
from accord.ledger.statement import parse_statement
from accord.records import LedgerRecord, ReceiptRecord, RoundRecord, RunEvent, RunInfo

__all__ = [
    "FORMAT_VERSION",
    "Export",
    "disagreements",
    "dump_export",
    "export_run",
    "parse_export",
]

FORMAT_VERSION = 1
_MAX_CERTIFICATES = 10_000
_MAX_CERT_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class Export:
    """A ledger file: the run, the certificates it carries, its envelope lines."""

    run: str
    certificates: tuple[bytes, ...]
    lines: tuple[str, ...]


def dump_export(
    run: str, envelopes: Iterable[str], certificates: Iterable[bytes]
) -> str:
    """The text of an export (envelopes as the store keeps them)."""
    header = {
        "accordLedger": FORMAT_VERSION,
        "run": run,
        "certificates": [
            base64.b64encode(c).decode("ascii") for c in dict.fromkeys(certificates)
        ],
    }
    lines = [json.dumps(header, sort_keys=True, separators=(",", ":"))]
    lines.extend(envelopes)
    return "\n".join(lines) + "\n"


def export_run(
    run: str, entries: Sequence[LedgerRecord], receipts: Sequence[ReceiptRecord]
) -> str:
    """The export of a run from what its store holds (entries first, then receipts).

    The header carries the certificates of the coordinators that the opening
    entries announce and those of the sites whose receipts follow.
    """
    if not entries:
        raise LedgerError(
            f"run {run} has no ledger: it was recorded by an accord that kept none, "
            "or without the cryptography package"
        )
    certificates = []
    for entry in entries:
        if entry.kind not in ("run-opened", "run-resumed"):
            continue
        signer = parse_statement(Envelope.from_json(entry.envelope).payload).predicate
        cert = signer.get("signer", {}).get("certificate")
        if isinstance(cert, str):
            certificates.append(base64.b64decode(cert))
    certificates += [r.certificate for r in receipts]
    return dump_export(
        run,
        [e.envelope for e in entries] + [r.envelope for r in receipts],
        certificates,
    )


def parse_export(text: str, *, source: str = "the export") -> Export:
    """Read an export; :class:`LedgerError` if its header is unusable.

    Envelope lines are kept as text: a damaged one is the verifier's to report,
    with its position.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise LedgerError(f"{source} is empty; export a run with `accord audit export`")
    head = lines[0]
    try:
        header = parse_json(head) if len(head) <= MAX_ENVELOPE_BYTES else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("accordLedger") != FORMAT_VERSION:
        raise LedgerError(
            f"{source} does not start with an accord ledger header (format "
            f"{FORMAT_VERSION}); export the run again with `accord audit export`"
        )
    run, certs = header.get("run"), header.get("certificates")
    if not isinstance(run, str) or not isinstance(certs, list):
        raise LedgerError(f"{source}'s header lacks the run or its certificates")
    if len(certs) > _MAX_CERTIFICATES:
        raise LedgerError(f"{source}'s header carries too many certificates")
    decoded = []
    for cert in certs:
        try:
            der = (
                base64.b64decode(cert, validate=True) if isinstance(cert, str) else b""
            )
        except (binascii.Error, ValueError):
            der = b""
        if not der or len(der) > _MAX_CERT_BYTES:
            raise LedgerError(f"{source}'s header holds an unreadable certificate")
        decoded.append(der)
    return Export(run, tuple(decoded), tuple(lines[1:]))


def disagreements(
    run: RunInfo,
    rounds: Sequence[RoundRecord],
    entries: Sequence[LedgerRecord],
    events: Sequence[RunEvent],
) -> list[str]:
    """Where the store's own record of a run contradicts the run's ledger.

    The verifier reads an export alone, so a ledger cut at an entry boundary (its
    last rounds, its closing, a release) still verifies there; the store knows
    better. A round and its entry are committed together, the closing entry with
    the run's status, and each release's entry before its event: so the rounds
    must be those of the round entries, a closed run's status the last closing
    entry's, and no release event may lack its entry. A run with no ledger (one
    recorded before ledgers existed) has nothing to compare.
    """
    if not entries:
        return []
    found: list[str] = []
    in_ledger = sorted(e.round for e in entries if e.kind == "round" and e.round)
    in_store = sorted(r.number for r in rounds)
    if in_ledger != in_store:
        found.append(
            f"the store has rounds {_span(in_store)}, the ledger's round entries "
            f"{_span(in_ledger)}"
        )
    kinds = [e.kind for e in entries if e.kind != "release"]
    if run.status != "running":
        closing = [e for e in entries if e.kind == "run-closed"]
        status = None
        if closing and kinds and kinds[-1] == "run-closed":
            predicate = parse_statement(
                Envelope.from_json(closing[-1].envelope).payload
            ).predicate
            status = predicate.get("status")
        if status != run.status:
            found.append(
                f"the store says the run {run.status}, the ledger's last entry "
                + ("is not its closing" if status is None else f"says {status}")
            )
    released = sum(1 for e in events if e.kind == "release")
    signed = sum(1 for e in entries if e.kind == "release")
    if released > signed:
        found.append(
            f"the store recorded {released} release(s), the ledger holds {signed}"
        )
    return found


def _span(numbers: Sequence[int]) -> str:
    if not numbers:
        return "none"
    if list(numbers) == list(range(numbers[0], numbers[-1] + 1)):
        return f"{numbers[0]}-{numbers[-1]}"
    return ", ".join(str(n) for n in numbers)
