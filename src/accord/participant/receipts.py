"""A site's receipts: it countersigns the ledger entries of rounds it sent to.

The coordinator's next train task carries the signed ledger entry of the last
round this site contributed to in the clear (:mod:`accord.coordinator.lineage`).
:class:`Receipts` remembers the digest of each update the site sent and, given such
an entry, checks it (it is this run's, lists this site's update as accepted with
that digest, and names as the new model the one the task now trains from:
:func:`accord.ledger.receipt.sign_receipt`) and signs a receipt with the site's
Ed25519 identity key; the receipt rides back in the update's header. An entry that
disagrees with what the site sent is not signed, and the site log says why: the
coordinator cannot obtain a receipt for a round it misrecorded.

A site without an identity key (enrolled before identity keys) signs nothing.
Secure rounds get no receipts: the digests in their entries are of masked inputs
or ciphertexts, not of what the site can recompute.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping

from accord.errors import LedgerError
from accord.participant.sitelog import SiteLog
from accord.transport.identity import SigningIdentity
from accord.transport.messages import TaskOrder

__all__ = ["Receipts"]

logger = logging.getLogger(__name__)

#: How many rounds' update digests a site keeps (receipts are for the last one).
_KEPT = 8


class Receipts:
    """Signs receipts for ``signing``'s updates (None: signs none)."""

    def __init__(self, signing: SigningIdentity | None, log: SiteLog) -> None:
        self._signing = signing
        self._log = log
        self._sent: dict[tuple[str, int], str] = {}

    def sent(self, order: TaskOrder, digest: str) -> None:
        """The site sent an update of ``digest`` for ``order``'s round."""
        self._sent[(order.run_id, order.round)] = digest
        while len(self._sent) > _KEPT:
            del self._sent[next(iter(self._sent))]

    def _folded(
        self, run_id: str, predicate: Mapping[str, object], name: str
    ) -> str | None:
        """The digest the entry names for this site, if this site sent it.

        An async run's jobs are numbered apart from the versions their updates
        are folded into (``round.mode = "async"``): the entry's round is not the
        job's, so the site finds its update by the digest it sent instead.
        """
        outcomes = predicate.get("outcomes")
        if not isinstance(outcomes, list):
            return None
        mine = next(
            (
                o
                for o in outcomes
                if isinstance(o, dict) and o.get("participant") == name
            ),
            None,
        )
        claimed = None if mine is None else mine.get("digest")
        sent = {d for (r, _), d in self._sent.items() if r == run_id}
        return claimed if isinstance(claimed, str) and claimed in sent else None

    def sign(self, order: TaskOrder) -> str:
        """The receipt for the entry ``order`` carries (JSON), or "" if none."""
        if not order.ledger_entry or self._signing is None:
            return ""
        from accord.ledger.dsse import Envelope, KeySigner
        from accord.ledger.receipt import sign_receipt
        from accord.ledger.statement import parse_statement

        signing = self._signing
        keyid = hashlib.sha256(signing.certificate).hexdigest()
        try:
            entry = parse_statement(Envelope.from_json(order.ledger_entry).payload)
            sent = self._sent.get((order.run_id, entry.round or -1))
            if sent is None:
                sent = self._folded(order.run_id, entry.predicate, signing.name)
            if entry.run != order.run_id.rpartition(".")[0] and entry.run != (
                order.run_id
            ):
                raise LedgerError(f"the entry is of run {entry.run[:40]!r}")
            if sent is None:
                raise LedgerError(f"this site sent no update in round {entry.round}")
            receipt = sign_receipt(
                order.ledger_entry,
                participant=signing.name,
                update_digest=sent,
                model_digest=order.model_digest,
                signer=KeySigner(signing.key, keyid),
            )
        except LedgerError as exc:
            self._log.record("receipt_refused", round=order.round, reason=str(exc))
            return ""
        self._log.record("receipt_signed", round=entry.round, entry=receipt.digest())
        return receipt.to_json()
