"""The coordinator's side of the ledger: one signed entry per step of a run.

:class:`Lineage` turns what the round loop does into ledger entries
(:mod:`accord.ledger.writer`) and stores each *with* what it describes: a round's
entry in :meth:`~accord.store.protocol.RunStore.record_round`'s transaction, the
closing entry in :meth:`~accord.store.protocol.RunStore.finish_run`'s, so that a
crash never leaves a round without its entry or an entry without its round. It
continues the chain the store holds: a resumed run gets a ``run-resumed`` entry and
its next rounds follow on, each written once (a round that crashed was never
stored, and is run and written again).

The loop needs it only when a :class:`LedgerSetup` is given (the CLI gives one to
every simulation and deployment); the cryptography it needs is imported then.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accord.config import FedConfig
from accord.records import LedgerRecord, RoundRecord

if TYPE_CHECKING:
    from accord.ledger.writer import LedgerSigner, LedgerWriter
    from accord.store.protocol import FinalStatus, RunStore

__all__ = ["LedgerSetup", "Lineage", "file_digest", "task_code"]

logger = logging.getLogger(__name__)


def _names_only(names: Sequence[str]) -> list[dict[str, Any]]:
    return [{"participant": n} for n in names]


@dataclass(frozen=True)
class LedgerSetup:
    """What a run's ledger needs beyond the loop: who signs, and what to record.

    ``code`` maps a name (the task module, the data) to its SHA-256; ``roster``
    describes the participants (their certificates' fingerprints, in a deployment).
    """

    signer: LedgerSigner
    version: str
    code: Mapping[str, str] = field(default_factory=dict)
    roster: Callable[[Sequence[str]], list[dict[str, Any]]] = _names_only


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class Lineage:
    """Writes one run's ledger through the store (see the module's docstring)."""

    def __init__(
        self,
        setup: LedgerSetup,
        store: RunStore,
        run_id: str,
        *,
        config: Mapping[str, Any],
        secure: str,
        window: int = 1,
    ) -> None:
        """``window``: how many of the last round entries a receipt may name.

        1 for synchronous rounds (a site countersigns the entry it was just
        given); an async run's site may report after newer versions were
        recorded, so it takes ``max_staleness + 1``.
        """
        from accord.ledger.writer import LedgerWriter

        self._setup = setup
        self._store = store
        self._config = config
        self._inputs = {"off": "update", "masking": "masked-input"}.get(
            secure, "ciphertext"
        )
        head = store.ledger(run_id)
        self._writer: LedgerWriter = LedgerWriter(setup.signer, run_id, head=head)
        self._checkpoint: str | None = None
        # The last round's entry and who contributed to it in the clear: each of
        # them gets it with its next train task, to countersign.
        self._last: tuple[LedgerRecord, frozenset[str]] | None = None
        self._recent: deque[LedgerRecord] = deque(maxlen=max(window, 1))
        rounds = [e for e in head if e.kind == "round"]
        if rounds:
            self._remember(rounds[-1])

    def start(self, participants: Sequence[str], *, next_round: int) -> None:
        """Open the run's ledger, or note that it is taken up again."""
        roster = self._setup.roster(participants)
        if self._writer.next_sequence == 0:
            entry = self._writer.opened(
                config=self._config,
                version=self._setup.version,
                code=self._setup.code,
                roster=roster,
            )
        else:
            last = self._store.last_completed_round(self._writer.run_id)
            self._checkpoint = None if last is None else last.checkpoint
            entry = self._writer.resumed(
                config=self._config, next_round=next_round, roster=roster
            )
        self._store.append_ledger(entry)
        self._writer.accept(entry)
        self._contract()

    def _contract(self) -> None:
        """Write the run's data contract, if one is recorded and not yet written.

        The contract is recorded with the run before its first (or next) round
        (:mod:`accord.coordinator.contract`); a resumed run whose contract is the
        one already in its ledger writes none again.
        """
        from accord.coordinator.contract import recorded_contract

        found = recorded_contract(self._store, self._writer.run_id)
        if found is None:
            return
        digest, contract, _ = found
        if digest == self._written_contract():
            return
        entry = self._writer.data_contract(contract)
        self._store.append_ledger(entry)
        self._writer.accept(entry)
        logger.debug("ledger entry %d: data contract %s", entry.sequence, digest[:16])

    def _written_contract(self) -> str | None:
        """The contract digest of the last data-contract entry of the ledger."""
        from accord.ledger.dsse import Envelope
        from accord.ledger.statement import parse_statement

        for entry in reversed(self._store.ledger(self._writer.run_id)):
            if entry.kind == "data-contract":
                statement = parse_statement(Envelope.from_json(entry.envelope).payload)
                return dict(statement.subjects).get("contract")
        return None

    def record_round(self, record: RoundRecord, *, aggregate: str | None) -> None:
        """Store ``record`` and its signed entry in one transaction."""
        entry = self._writer.round(record, aggregate=aggregate, inputs=self._inputs)
        self._store.record_round(record, ledger=entry)
        self._writer.accept(entry)
        self._remember(entry)
        if record.checkpoint is not None:
            self._checkpoint = record.checkpoint
        logger.debug("ledger entry %d: round %d", entry.sequence, record.number)

    def _remember(self, entry: LedgerRecord) -> None:
        from accord.ledger.dsse import Envelope
        from accord.ledger.statement import parse_statement

        statement = parse_statement(Envelope.from_json(entry.envelope).payload)
        outcomes = statement.predicate.get("outcomes", [])
        clear = statement.predicate.get("inputs") == "update"
        ok = frozenset(
            o["participant"]
            for o in outcomes
            if clear and isinstance(o, dict) and o.get("status") == "ok"
        )
        self._last = (entry, ok)
        self._recent.append(entry)

    def entry_for(self, participant: str) -> str:
        """The last round's entry if ``participant`` contributed to it, else ""."""
        if self._last is None or participant not in self._last[1]:
            return ""
        return self._last[0].envelope

    def receipt(self, participant: str, text: str, certificate: bytes) -> None:
        """Check and keep ``participant``'s receipt; a bad one is a run event."""
        from accord.errors import LedgerError
        from accord.ledger.receipt import accept_receipt

        run_id = self._writer.run_id
        try:  # receipts are for the entries sent out last: no need to read the rest
            record = accept_receipt(
                text,
                participant=participant,
                certificate=certificate,
                entries=tuple(self._recent),
            )
        except LedgerError as exc:
            logger.warning("refused a receipt: %s", exc)
            self._store.record_event(
                run_id,
                round=None,
                participant=participant,
                kind="receipt_refused",
                detail=str(exc),
            )
            return
        self._store.record_receipt(record)
        logger.debug("receipt of %s for entry %d", participant, record.sequence)

    def finish(
        self,
        *,
        status: FinalStatus,
        summary: Mapping[str, Any] | None,
        model: str,
        rounds: int,
        reason: str | None,
    ) -> None:
        """End the run in the store with its closing entry (final model)."""
        checkpoint = None
        if self._checkpoint is not None and Path(self._checkpoint).is_file():
            checkpoint = file_digest(self._checkpoint)
        entry: LedgerRecord = self._writer.closed(
            status=status,
            model=model,
            checkpoint=checkpoint,
            rounds=rounds,
            reason=reason,
        )
        self._store.finish_run(
            entry.run_id, status=status, summary=summary, ledger=entry
        )
        self._writer.accept(entry)


def task_code(config: FedConfig) -> dict[str, str]:
    """The SHA-256 of the task's module when it is a file next to ``fed.toml``.

    ``task:build`` names ``task.py`` beside the configuration; a task from an
    installed package (``accord.task...``) is identified by accord's version;
    so are gradient-boosted trees, which have no task.
    """
    if config.task is None:
        return {}
    module = config.task.factory.partition(":")[0]
    path = Path(config.base_dir) / (module.replace(".", "/") + ".py")
    return {f"task:{module}": file_digest(path)} if path.is_file() else {}
