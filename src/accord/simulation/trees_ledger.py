"""The signed ledger of a gradient-boosted tree run.

A gbdt run keeps the same hash-chained, signed ledger as any simulated run
(:mod:`accord.ledger`, signed with the store folder's simulation key): the entry
that opens it (settings, accord's version, the roster), one entry per tree
(the round: who summed over how many rows, the model's digest, the central
metrics) and the closing entry. A tree's "model" digest chains the previous
one with the new tree's node arrays (SHA-256); the closing entry's is the
SHA-256 of the model file's bytes, so ``accord audit verify ledger.jsonl
--model model.json`` checks the file. The round entries' ``inputs`` say what
the sites sent: ``histogram`` (each site's histograms, seen by the coordinator)
or ``masked-histogram`` (only sums), never an update digest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from accord.coordinator.lineage import LedgerSetup
from accord.records import LedgerRecord, RoundRecord
from accord.store.protocol import FinalStatus, RunStore

__all__ = ["TreesLedger"]


class TreesLedger:
    """Writes a gbdt run's entries into ``store`` as its rounds are recorded."""

    def __init__(
        self,
        setup: LedgerSetup,
        store: RunStore,
        run_id: str,
        *,
        config: Mapping[str, Any],
        sites: Sequence[str],
        masked: bool,
    ) -> None:
        from accord.ledger.writer import LedgerWriter

        self._store = store
        self._writer = LedgerWriter(setup.signer, run_id)
        self._inputs = "masked-histogram" if masked else "histogram"
        entry = self._writer.opened(
            config=config,
            version=setup.version,
            code=setup.code,
            roster=setup.roster(list(sites)),
        )
        store.append_ledger(entry)
        self._writer.accept(entry)

    def record_round(self, record: RoundRecord) -> None:
        """Store one tree's round and its signed entry in one transaction."""
        entry = self._writer.round(
            record, aggregate=None, inputs=self._inputs, algorithm="sha256"
        )
        self._store.record_round(record, ledger=entry)
        self._writer.accept(entry)

    def finish(
        self,
        *,
        status: FinalStatus,
        model: str,
        path: str | None,
        rounds: int,
        summary: Mapping[str, Any],
        reason: str | None = None,
    ) -> None:
        """End the run with its closing entry (``model``: the final digest)."""
        entry: LedgerRecord = self._writer.closed(
            status=status,
            model=model,
            checkpoint=path,
            rounds=rounds,
            reason=reason,
            algorithm="sha256",
        )
        self._store.finish_run(
            self._writer.run_id, status=status, summary=summary, ledger=entry
        )
        self._writer.accept(entry)
