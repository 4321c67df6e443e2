"""Reading a run's card inputs from a store, and checking its ledger on the way.

:func:`gather` reads the run, its rounds, events, ledger entries and receipts,
reads each entry's statement back (an entry that cannot be read keeps an empty
predicate: the verification names it), and verifies the chain as ``accord audit
verify`` does on an export (:func:`accord.ledger.verify.verify_export`): a
simulation ledger for integrity, by the key its first entry publishes; a deployed
one against the federation's CA when ``anchors`` are given, and otherwise left
unchecked with a note saying how to check it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from accord.contribution import ContributionReport
from accord.errors import LedgerError
from accord.ledger.dsse import Envelope
from accord.ledger.export import export_run, parse_export
from accord.ledger.statement import parse_statement
from accord.ledger.verify import verify_export
from accord.records import LedgerRecord, ReceiptRecord
from accord.report.inputs import CardInputs, LedgerCheck, LedgerEntry
from accord.store.protocol import RunStore

__all__ = ["check_ledger", "gather", "read_entries"]

logger = logging.getLogger(__name__)


def read_entries(records: Sequence[LedgerRecord]) -> tuple[LedgerEntry, ...]:
    """Each stored entry with its statement's predicate (empty if unreadable)."""
    out = []
    for record in records:
        try:
            predicate: Any = parse_statement(
                Envelope.from_json(record.envelope).payload
            ).predicate
        except LedgerError as exc:
            logger.warning(
                "ledger entry %d of run %s is unreadable: %s",
                record.sequence,
                record.run_id,
                exc,
            )
            predicate = {}
        out.append(
            LedgerEntry(
                sequence=record.sequence,
                kind=record.kind,
                round=record.round,
                digest=record.digest,
                predicate=predicate,
            )
        )
    return tuple(out)


def _simulation(entries: Sequence[LedgerEntry]) -> bool:
    signer = entries[0].predicate.get("signer") if entries else None
    return isinstance(signer, dict) and isinstance(signer.get("simulationKey"), str)


def check_ledger(
    run_id: str,
    records: Sequence[LedgerRecord],
    receipts: Sequence[ReceiptRecord],
    *,
    anchors: Sequence[Any] | None,
) -> LedgerCheck | None:
    """Whether the stored chain verifies; None for a run without a ledger."""
    if not records:
        return None
    entries = read_entries(records[:1])
    readable = bool(entries[0].predicate)  # else verification says what broke
    if anchors is None and readable and not _simulation(entries):
        return LedgerCheck(
            verified=None,
            how="a coordinator's certificate signed it; pass --trust with the "
            "federation's CA to check who signed it",
            receipts=len(receipts),
        )
    try:
        export = parse_export(export_run(run_id, records, receipts))
    except LedgerError as exc:  # an opening entry too damaged to export
        return LedgerCheck(
            verified=False,
            how="the ledger cannot be read back",
            problems=(str(exc),),
            receipts=len(receipts),
        )
    verdict = verify_export(export, anchors=anchors)
    if anchors is None:
        how = (
            "the chain is whole and every entry is signed by the simulation key "
            "its first entry publishes (integrity only, no identity)"
        )
    else:
        how = "every entry is signed by " + (
            ", ".join(verdict.signers) or "the run's coordinator"
        )
    return LedgerCheck(
        verified=verdict.ok,
        how=how,
        problems=tuple(str(p) for p in verdict.problems),
        receipts=verdict.receipts,
    )


def gather(
    store: RunStore,
    run_id: str,
    *,
    anchors: Sequence[Any] | None = None,
    contributions: ContributionReport | None = None,
    contributions_note: str | None = None,
) -> CardInputs:
    """Everything the card of ``run_id`` needs, read from ``store``.

    :class:`~accord.errors.RunNotFound` if the store has no such run.
    """
    run = store.get_run(run_id)
    records = store.ledger(run_id)
    receipts = store.receipts(run_id)
    return CardInputs(
        run=run,
        rounds=tuple(store.rounds(run_id)),
        events=tuple(store.events(run_id)),
        ledger=read_entries(records),
        check=check_ledger(run_id, records, receipts, anchors=anchors),
        contributions=contributions,
        contributions_note=contributions_note,
    )
