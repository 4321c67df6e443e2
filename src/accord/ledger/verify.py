"""Checking a ledger export offline: chain, signatures, certificates, final model.

:func:`verify_export` reads every entry of an export (:mod:`accord.ledger.export`)
and reports each one that breaks, by its position, type and round:

- the chain: entry *i* has sequence *i*, names the digest of entry *i - 1*'s
  envelope (none for the first), belongs to the run the file names; the first
  entry opens the run and the last closes it; no round appears twice. A deleted
  entry shows as a jump in sequence, a reordering as a sequence out of place, an
  edit as a broken signature and a broken link in the entry after it;
- the signatures: every entry must be signed by the signer that the last
  run-opened or run-resumed entry before it announced (so an entry signed again,
  even with another valid key, is named). With the federation's CA (``anchors``)
  that signer must be a coordinator's certificate from that CA (path checked by
  ``cryptography.x509.verification`` through
  :func:`accord.transport.chain.chain_problem`, at the time the entry was written),
  found in the export by its fingerprint. Without a CA, the ledger must be a
  simulation ledger, signed by the simulation key its first entry publishes: that
  shows integrity only, not who wrote it;
- the data contract: a ``data-contract`` entry directly follows the entry that
  opened or resumed the run, and its subjects match the contract it records
  (:mod:`accord.ledger.contract`);
- the model: given a model file's digests, the closing entry must name them;
- the sites' receipts (:mod:`accord.ledger.receipt`).

It needs nothing but the export and the CA certificate: no store, no network.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from accord.errors import LedgerError
from accord.ledger.contract import contract_problems
from accord.ledger.dsse import IN_TOTO, Envelope, verify_signature
from accord.ledger.export import Export
from accord.ledger.receipt import RECEIPT_TYPE, check_receipts
from accord.ledger.statement import Statement, parse_statement
from accord.transport.chain import chain_problem
from accord.transport.roster import certificate_name, certificate_role

__all__ = ["ModelFile", "Problem", "Verdict", "verify_export"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModelFile:
    """A model file to check against the closing entry: its digests.

    ``params_digest`` and ``legacy_digest`` are its parameters'
    :meth:`~accord.params.Params.digest` and SHA-256 one (which ledgers of earlier
    versions name), when the file is an accord checkpoint.
    """

    path: str
    file_sha256: str
    params_digest: str | None
    legacy_digest: str | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken entry: where it is, what it is, what is wrong."""

    position: int | None
    kind: str | None
    round: int | None
    message: str

    def __str__(self) -> str:
        """``entry 3 (round 2): ...``; ``ledger: ...`` when no entry is to blame."""
        if self.position is None:
            return f"ledger: {self.message}"
        what = self.kind or "unreadable"
        if self.round is not None:
            what = f"round {self.round}"
        return f"entry {self.position} ({what}): {self.message}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What verification found; ``problems`` empty means the ledger verifies."""

    run: str
    entries: int
    rounds: int
    identity: bool
    signers: tuple[str, ...]
    status: str | None
    final_model: str | None
    receipts: int
    problems: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """Whether nothing was found wrong."""
        return not self.problems


@dataclass(slots=True)
class _Keys:
    """The keys entries may be signed with, and what each proves."""

    anchors: Sequence[x509.Certificate] | None
    certificates: dict[str, x509.Certificate]
    simulation: dict[str, object] = field(default_factory=dict)
    used: dict[str, str] = field(default_factory=dict)
    #: The keyid the last run-opened or run-resumed entry announced, and where.
    current: tuple[str, int] | None = None
    #: Whether that entry announced a simulation key rather than a certificate.
    simulation_announced: bool = False


def _certificates(ders: Sequence[bytes]) -> dict[str, x509.Certificate]:
    out: dict[str, x509.Certificate] = {}
    for der in ders:
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            continue  # an unusable certificate signs nothing: its entries say so
        out[cert.fingerprint(hashes.SHA256()).hex()] = cert
    return out


def _at(statement: Statement) -> datetime:
    try:
        at = datetime.fromisoformat(str(statement.predicate.get("at")))
    except ValueError:
        return datetime.now(UTC)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _learn_signer(keys: _Keys, statement: Statement, position: int) -> None:
    """An opening entry announces its signer: a certificate or a simulation key."""
    signer = statement.predicate.get("signer")
    if not isinstance(signer, dict) or not isinstance(signer.get("keyid"), str):
        return
    keyid = signer["keyid"]
    keys.current = (keyid, position)
    keys.simulation_announced = isinstance(signer.get("simulationKey"), str)
    cert = signer.get("certificate")
    if isinstance(cert, str):
        with contextlib.suppress(binascii.Error, ValueError):
            keys.certificates.update(
                _certificates([base64.b64decode(cert, validate=True)])
            )
    sim = signer.get("simulationKey")
    if isinstance(sim, str) and position == 0 and keys.anchors is None:
        with contextlib.suppress(ValueError):
            keys.simulation[keyid] = serialization.load_pem_public_key(sim.encode())


def _signature_problem(keys: _Keys, env: Envelope, statement: Statement) -> str | None:
    """Why ``env`` is not signed by the run's announced signer; None if it is."""
    if keys.current is None:
        return "no run-opened entry before it names the run's signer"
    announced, where = keys.current
    mine = [s for s in env.signatures if s.keyid == announced]
    if not mine:
        others = ", ".join(f"{s.keyid[:16]}…" for s in env.signatures)
        return (
            f"is signed by {others}, not by the run's signer {announced[:16]}… "
            f"(named in entry {where}): it was signed again with another key"
        )
    if keys.anchors is None:
        public = keys.simulation.get(announced)
        if public is None and keys.simulation_announced:
            return (
                f"is signed by key {announced[:16]}…, not by the simulation key of "
                "entry 0: a simulation ledger is signed with one key, its store's"
            )
        if public is None:
            return (
                "is signed by a certificate, not a simulation key: verify it with "
                "the federation's CA (--trust)"
            )
        who = f"simulation key {announced[:16]}… (integrity only, no identity)"
        return _check(keys, env, mine, public, who)
    cert = keys.certificates.get(announced)
    if cert is None:
        if keys.simulation_announced:
            return "is signed with a simulation key, not by a certificate of this CA"
        return f"its signer {announced[:16]}… has no certificate in the export"
    problem = chain_problem(cert, keys.anchors, purpose="server", at=_at(statement))
    if problem is None and certificate_role(cert) != "coordinator":
        problem = "is not a coordinator's certificate"
    if problem is not None:
        return f"its signer's certificate {problem}"
    who = f"coordinator {certificate_name(cert)!r} (certificate {announced[:16]}…)"
    return _check(keys, env, mine, cert.public_key(), who)


def _check(
    keys: _Keys, env: Envelope, sigs: Sequence[object], public: object, who: str
) -> str | None:
    message = env.pae()
    for sig in sigs:
        if verify_signature(public, message, getattr(sig, "sig", b"")):
            keys.used[getattr(sig, "keyid", "")] = who
            return None
    return "its signature does not match its content: it was edited after signing"


def verify_export(
    export: Export,
    *,
    anchors: Sequence[x509.Certificate] | None,
    model: ModelFile | None = None,
    simulation_key: str | None = None,
) -> Verdict:
    """Check ``export`` (see the module's docstring); never raises on bad entries.

    ``simulation_key`` (a key id) pins a simulation ledger to the key of its store
    (``ledger-key.pem``): one signed with any other key is refused, so that a
    ledger rewritten and signed again by someone without that key is named.
    """
    keys = _Keys(anchors, _certificates(export.certificates))
    problems: list[Problem] = []
    entries: list[tuple[Statement, str]] = []  # (statement, envelope digest)
    receipts: list[tuple[int, Envelope]] = []
    previous: str | None = None
    position = 0
    for line_no, line in enumerate(export.lines):
        try:
            env = Envelope.from_json(line)
        except LedgerError as exc:
            problems.append(Problem(position, None, None, str(exc)))
            position += 1
            previous = None
            continue
        if env.payload_type == RECEIPT_TYPE:
            receipts.append((line_no, env))
            continue
        problems += _entry(keys, env, export.run, position, previous, entries)
        previous = env.digest()
        position += 1
    problems += _ends(entries)
    if simulation_key is not None and entries:
        first = entries[0][0].predicate.get("signer")
        announced = first.get("keyid") if isinstance(first, dict) else None
        if announced != simulation_key:
            problems.append(
                Problem(
                    0,
                    entries[0][0].kind,
                    None,
                    f"is signed by key {str(announced)[:16]}…, not by the given "
                    f"simulation key {simulation_key[:16]}…",
                )
            )
    found_closing = _closing(entries)
    closing = None if found_closing is None else found_closing[0]
    if model is not None:
        where = position - 1 if found_closing is None else found_closing[1]
        problems += _model(closing, where, model)
    checked = check_receipts(
        receipts, {d: s for s, d in entries}, keys.anchors, keys.certificates
    )
    problems += [Problem(None, None, r.round, r.problem) for r in checked if r.problem]
    return Verdict(
        run=export.run,
        entries=position,
        rounds=sum(1 for s, _ in entries if s.kind == "round"),
        identity=anchors is not None,
        signers=tuple(sorted(set(keys.used.values()))),
        status=None if closing is None else str(closing.predicate.get("status")),
        final_model=None if closing is None else str(closing.predicate.get("model")),
        receipts=sum(1 for r in checked if r.problem is None),
        problems=tuple(problems),
    )


def _entry(
    keys: _Keys,
    env: Envelope,
    run: str,
    position: int,
    previous: str | None,
    entries: list[tuple[Statement, str]],
) -> list[Problem]:
    """The problems of the entry at ``position``; it joins ``entries`` if readable."""
    if env.payload_type != IN_TOTO:
        return [Problem(position, None, None, f"payloadType is {env.payload_type!r}")]
    try:
        st = parse_statement(env.payload)
    except LedgerError as exc:
        return [Problem(position, None, None, str(exc))]
    found: list[str] = []
    if st.kind in ("run-opened", "run-resumed"):
        _learn_signer(keys, st, position)
    if st.run != run:
        found.append(f"belongs to run {st.run[:40]!r}, not {run!r}")
    if st.sequence != position:
        found.append(
            f"has sequence {st.sequence} at position {position}: "
            + (
                "an entry before it is missing"
                if st.sequence > position
                else "entries were reordered or repeated"
            )
        )
    if position > 0 and st.previous != previous:
        found.append(
            f"does not follow entry {position - 1}: the previous digest it names "
            "differs (that entry was edited, removed or moved)"
        )
    if position == 0 and st.previous is not None:
        found.append("names a previous entry, but is the first: earlier ones are gone")
    if position == 0 and st.kind != "run-opened":
        found.append("the ledger does not start with the run-opened entry")
    problem = _signature_problem(keys, env, st)
    if problem is not None:
        found.append(problem)
    if st.kind == "round" and any(
        s.kind == "round" and s.round == st.round for s, _ in entries
    ):
        found.append(f"round {st.round} is recorded twice")
    if st.kind == "data-contract":
        found += contract_problems(st, entries[-1][0].kind if entries else None)
    entries.append((st, env.digest()))
    return [Problem(position, st.kind, st.round, m) for m in found]


def _closing(
    entries: Sequence[tuple[Statement, str]],
) -> tuple[Statement, int] | None:
    """The run-closed entry that ends the chain (release entries may follow it)."""
    for index in range(len(entries) - 1, -1, -1):
        st = entries[index][0]
        if st.kind != "release":
            return (st, index) if st.kind == "run-closed" else None
    return None


def _ends(entries: Sequence[tuple[Statement, str]]) -> list[Problem]:
    if not entries:
        return [Problem(None, None, None, "it holds no entry")]
    found: list[Problem] = []
    before: Statement | None = None  # the last entry that is not a release
    for index, (st, _) in enumerate(entries):
        if st.kind != "release":
            before = st
        elif before is None or before.kind != "run-closed":
            found.append(
                Problem(
                    index,
                    st.kind,
                    None,
                    "a release entry that does not follow the run's closing: only "
                    "a closed run's model is released",
                )
            )
        elif st.predicate.get("model") != before.predicate.get("model"):
            found.append(
                Problem(
                    index,
                    st.kind,
                    None,
                    f"releases model {str(st.predicate.get('model'))[:16]}…, but the "
                    "run-closed entry names "
                    f"{str(before.predicate.get('model'))[:16]}… as the run's final "
                    "model: the release is not of this run's model",
                )
            )
    position = len(entries) - 1
    while position > 0 and entries[position][0].kind == "release":
        position -= 1
    last = entries[position][0]
    if last.kind != "run-closed":
        return found + [
            Problem(
                position,
                last.kind,
                last.round,
                "is the last entry, but the run-closed entry should follow it: the "
                "run is still running or was cut short, or later entries were removed",
            )
        ]
    return found


def _model(closing: Statement | None, position: int, model: ModelFile) -> list[Problem]:
    if closing is None:
        return [
            Problem(
                None, None, None, f"no run-closed entry names a model for {model.path}"
            )
        ]
    named = closing.predicate.get("model"), closing.predicate.get("checkpointFile")
    held_digests = (model.file_sha256, model.params_digest, model.legacy_digest)
    if any(d is not None and d in named for d in held_digests):
        return []
    held = model.params_digest or model.file_sha256
    return [
        Problem(
            position,
            closing.kind,
            None,
            f"names final model {str(named[0])[:16]}…, but {model.path} holds "
            f"{held[:16]}… (file sha256 {model.file_sha256[:16]}…): it is not this "
            "run's final model",
        )
    ]
