"""Sites' receipts: a countersignature on the round entry about their contribution.

After a round, the coordinator sends each site that contributed the round's
ledger entry. The site reads it (:func:`sign_receipt`): the entry must be a round
entry of its run that lists the site's update with the digest the site computed of
what it sent, as accepted, and name as the new model the one the site was just
sent; then the site signs a receipt with its Ed25519 identity key (the one the
federation's CA certified for secure aggregation, keyid = that certificate's
fingerprint). A receipt is a DSSE envelope of type :data:`RECEIPT_TYPE` whose
payload is canonical JSON::

    {"entry": "<sha256 of the round entry's envelope>", "run": "...", "round": 3,
     "participant": "site-1", "update": "<sha256>", "model": "<sha256>"}

So the coordinator alone cannot rewrite a round a site took part in: the rewritten
entry has another digest, which no receipt names. :func:`check_receipts` is the
verifier's side. A site whose entry disagrees with what it sent signs nothing and
says why (:class:`~accord.errors.LedgerError`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from accord.errors import LedgerError
from accord.jsontext import parse_json
from accord.ledger.dsse import Envelope, Signer, canonical_json, verify_signature
from accord.ledger.statement import Statement, parse_statement
from accord.records import LedgerRecord, ReceiptRecord

__all__ = [
    "RECEIPT_TYPE",
    "ReceiptCheck",
    "accept_receipt",
    "check_receipts",
    "sign_receipt",
]

RECEIPT_TYPE = "application/vnd.accord.receipt+json"
_FIELDS = ("entry", "run", "round", "participant", "update", "model")


@dataclass(frozen=True, slots=True)
class ReceiptCheck:
    """One receipt as the verifier found it: whose, for which round, and any fault."""

    participant: str | None
    round: int | None
    problem: str | None


def sign_receipt(
    entry_envelope: str,
    *,
    participant: str,
    update_digest: str,
    model_digest: str,
    signer: Signer,
) -> Envelope:
    """At a site: its receipt for ``entry_envelope``, after checking the entry.

    ``update_digest`` is the digest of what this site sent in the round,
    ``model_digest`` that of the model it was sent after it.
    """
    env = Envelope.from_json(entry_envelope)
    entry = parse_statement(env.payload)
    if entry.kind != "round":
        raise LedgerError(f"the coordinator sent a {entry.kind} entry as a round's")
    mine = _outcome(entry, participant)
    if mine is None or mine.get("status") != "ok":
        raise LedgerError(
            f"the ledger entry of round {entry.round} does not list {participant}'s "
            "update as accepted; no receipt signed"
        )
    if mine.get("digest") != update_digest:
        raise LedgerError(
            f"the ledger entry of round {entry.round} names another digest for "
            f"{participant}'s update than the one it sent; no receipt signed"
        )
    if entry.predicate.get("model") != model_digest:
        raise LedgerError(
            f"the ledger entry of round {entry.round} names another model than the "
            "one the coordinator sent next; no receipt signed"
        )
    body = {
        "entry": env.digest(),
        "run": entry.run,
        "round": entry.round,
        "participant": participant,
        "update": update_digest,
        "model": model_digest,
    }
    return Envelope.signed(RECEIPT_TYPE, canonical_json(body), signer)


def _outcome(entry: Statement, participant: str) -> Mapping[str, object] | None:
    outcomes = entry.predicate.get("outcomes")
    if not isinstance(outcomes, list):
        return None
    for o in outcomes:
        if isinstance(o, dict) and o.get("participant") == participant:
            return o
    return None


def check_receipts(
    receipts: Sequence[tuple[int, Envelope]],
    entries: Mapping[str, Statement],
    anchors: Sequence[x509.Certificate] | None,
    certificates: Mapping[str, x509.Certificate],
) -> list[ReceiptCheck]:
    """Check each receipt against the entry it names and its site's certificate."""
    out = []
    for _, env in receipts:
        out.append(_check(env, entries, anchors, certificates))
    return out


def _check(
    env: Envelope,
    entries: Mapping[str, Statement],
    anchors: Sequence[x509.Certificate] | None,
    certificates: Mapping[str, x509.Certificate],
) -> ReceiptCheck:
    try:
        body = parse_json(env.payload)
    except ValueError:
        body = None
    if not isinstance(body, dict) or set(body) != set(_FIELDS):
        return ReceiptCheck(None, None, "a receipt is unreadable")
    who, number = body["participant"], body["round"]
    name = str(who)[:64]

    def fault(why: str) -> ReceiptCheck:
        return ReceiptCheck(
            name, number, f"the receipt of {name} for round {number} {why}"
        )

    entry = entries.get(str(body["entry"]))
    if entry is None:
        return fault("names an entry that is not in the ledger (it was rewritten)")
    mine = _outcome(entry, name)
    if (
        entry.round != number
        or mine is None
        or mine.get("digest") != body["update"]
        or entry.predicate.get("model") != body["model"]
    ):
        return fault("does not match the entry it names")
    if anchors is None:
        return fault("cannot be checked without the federation's CA (--trust)")
    if not _signed_by_site(env, name, anchors, certificates):
        return fault("is not signed by that site's identity certificate from this CA")
    return ReceiptCheck(name, number, None)


def _signed_by_site(
    env: Envelope,
    name: str,
    anchors: Sequence[x509.Certificate],
    certificates: Mapping[str, x509.Certificate],
) -> bool:
    """Whether a signature of ``env`` is by ``name``'s identity certificate."""
    from accord.transport.chain import chain_problem
    from accord.transport.roster import certificate_name

    for sig in env.signatures:
        cert = certificates.get(sig.keyid)
        if cert is None or certificate_name(cert) != name:
            continue
        # Checked when it was issued: a receipt stays valid after the site's
        # certificate expires, as a signed contract outlives its signer's badge.
        at = cert.not_valid_before_utc
        if chain_problem(cert, anchors, purpose="identity", at=at) is not None:
            continue
        if verify_signature(cert.public_key(), env.pae(), sig.sig):
            return True
    return False


def accept_receipt(
    text: str,
    *,
    participant: str,
    certificate: bytes,
    entries: Sequence[LedgerRecord],
) -> ReceiptRecord:
    """At the coordinator: the receipt ``participant`` sent, checked, to store.

    ``certificate`` is the identity certificate (DER) the participant presented
    when it connected (already checked against the CA); ``entries`` the run's
    ledger. The receipt must be signed by that certificate's key, name the
    participant and a round entry of the ledger, and agree with it.
    :class:`~accord.errors.LedgerError` saying why not.
    """
    if not certificate:
        raise LedgerError(
            f"{participant} sent a receipt but presented no identity certificate"
        )
    env = Envelope.from_json(text)
    if env.payload_type != RECEIPT_TYPE:
        raise LedgerError(f"a receipt has payloadType {env.payload_type[:60]!r}")
    try:
        cert = x509.load_der_x509_certificate(certificate)
        body = parse_json(env.payload)
    except ValueError as exc:
        raise LedgerError(f"an unreadable receipt from {participant}: {exc}") from None
    if not isinstance(body, dict) or set(body) != set(_FIELDS):
        raise LedgerError(f"the receipt of {participant} lacks its fields")
    if body["participant"] != participant:
        other = str(body["participant"])[:64]
        raise LedgerError(f"{participant} sent a receipt in the name of {other!r}")
    entry = next((e for e in entries if e.digest == body["entry"]), None)
    if entry is None or entry.kind != "round":
        raise LedgerError(
            f"the receipt of {participant} names no round entry of this run's ledger"
        )
    statement = parse_statement(Envelope.from_json(entry.envelope).payload)
    mine = _outcome(statement, participant)
    if (
        statement.round != body["round"]
        or mine is None
        or mine.get("digest") != body["update"]
        or statement.predicate.get("model") != body["model"]
    ):
        raise LedgerError(
            f"the receipt of {participant} does not match round {entry.round}'s entry"
        )
    keyid = cert.fingerprint(hashes.SHA256()).hex()
    signed = any(
        s.keyid == keyid and verify_signature(cert.public_key(), env.pae(), s.sig)
        for s in env.signatures
    )
    if not signed:
        raise LedgerError(
            f"the receipt of {participant} is not signed by its identity key"
        )
    return ReceiptRecord(
        run_id=entry.run_id,
        sequence=entry.sequence,
        participant=participant,
        envelope=env.to_json(),
        certificate=certificate,
    )
