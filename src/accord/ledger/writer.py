"""Writing a run's ledger: the signer, and one signed, chained entry per event.

:class:`LedgerWriter` builds each entry (:mod:`accord.ledger.statement`), signs it
(:mod:`accord.ledger.dsse`) and chains it to the run's last entry. It never writes
anything itself: the caller stores the returned :class:`~accord.records.LedgerRecord`
with what it describes, in one transaction (a round and its entry, a run's end and
its closing entry), and then calls :meth:`LedgerWriter.accept`, so that an entry the
store refused never becomes the head of the chain.

Who signs (:class:`LedgerSigner`): in a deployment the coordinator, with the key of
its certificate from the federation's CA (``--pki DIR``: ``key.pem`` and
``cert.pem``; an ECDSA P-256 key, signatures ECDSA with SHA-256), the ``keyid``
being the certificate's SHA-256 fingerprint. In a simulation there is no PKI: the
entries are signed with a *simulation key*, an Ed25519 key generated once per store
folder (:func:`simulation_signer`), whose public key the run-opened entry carries.
Such a ledger proves integrity (no entry was edited, dropped or reordered after it
was written, by anyone without the key), not identity.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from accord.errors import LedgerError
from accord.ledger.dsse import IN_TOTO, Envelope, KeySigner, canonical_json, key_id
from accord.ledger.statement import EntryKind, build_statement, subject
from accord.params import DIGEST_ALGORITHM as PARAMS
from accord.records import LedgerRecord, MetricValue, RoundRecord

__all__ = [
    "SIMULATION_KEY",
    "LedgerSigner",
    "LedgerWriter",
    "certificate_signer",
    "config_digest",
    "simulation_signer",
    "site_metrics",
]

logger = logging.getLogger(__name__)

#: The simulation key's file in the store folder.
SIMULATION_KEY = "ledger-key.pem"


@dataclass(frozen=True, slots=True)
class LedgerSigner:
    """The coordinator's signing key and how verifiers find its public key.

    ``certificate`` (DER) in a deployment; None for a simulation key, whose public
    key is then published in the run's first entry.
    """

    signer: KeySigner
    certificate: bytes | None

    @property
    def simulation(self) -> bool:
        """Whether this is a simulation key (integrity only, no identity)."""
        return self.certificate is None

    def describe(self) -> dict[str, Any]:
        """What an opening entry says about its signer."""
        if self.certificate is not None:
            return {
                "keyid": self.signer.keyid,
                "certificate": base64.b64encode(self.certificate).decode("ascii"),
            }
        public = self.signer.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            "keyid": self.signer.keyid,
            "simulationKey": public.decode("ascii"),
        }


def certificate_signer(key_pem: bytes, cert_pem: bytes) -> LedgerSigner:
    """The coordinator's signer from its identity folder's ``key.pem``/``cert.pem``."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
        cert = x509.load_pem_x509_certificate(cert_pem)
    except (ValueError, TypeError) as exc:
        raise LedgerError(
            f"cannot sign the ledger: the coordinator's key or certificate is "
            f"unreadable ({exc})"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise LedgerError("the coordinator's key is neither Ed25519 nor ECDSA P-256")
    if cert.public_key() != key.public_key():
        raise LedgerError("the coordinator's cert.pem was not issued for its key.pem")
    der = cert.public_bytes(serialization.Encoding.DER)
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()
    return LedgerSigner(KeySigner(key, fingerprint), der)


def simulation_signer(directory: Path | None) -> LedgerSigner:
    """The simulation key of the store in ``directory``, created on first use.

    ``None`` (a store in memory): a key for this process only.
    """
    if directory is None:
        key = Ed25519PrivateKey.generate()
        return LedgerSigner(KeySigner(key, key_id(key.public_key())), None)
    path = directory / SIMULATION_KEY
    try:
        if not path.exists():
            directory.mkdir(parents=True, exist_ok=True)
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
            logger.info("created the simulation ledger key %s", path)
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileExistsError:  # another process made it first: use theirs
        return simulation_signer(directory)
    except (OSError, ValueError) as exc:
        raise LedgerError(
            f"cannot use the simulation ledger key {path}: {exc}; remove the file "
            "to make a new one (earlier ledgers keep verifying with their own key)"
        ) from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise LedgerError(f"{path} is not an Ed25519 key; remove it to make a new one")
    return LedgerSigner(KeySigner(loaded, key_id(loaded.public_key())), None)


def config_digest(config: Mapping[str, Any]) -> str:
    """SHA-256 of a run's configuration as canonical JSON."""
    return hashlib.sha256(canonical_json(config)).hexdigest()


def _at(clock: Callable[[], datetime]) -> str:
    return clock().astimezone(UTC).isoformat()


class LedgerWriter:
    """Makes a run's next entries; ``head`` is what the store holds already."""

    def __init__(
        self,
        signer: LedgerSigner,
        run_id: str,
        *,
        head: Sequence[LedgerRecord] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._signer = signer
        self._run = run_id
        self._clock = clock
        last = head[-1] if head else None
        self._next = 0 if last is None else last.sequence + 1
        self._previous = None if last is None else last.digest

    @property
    def run_id(self) -> str:
        """The run whose ledger this writes."""
        return self._run

    @property
    def next_sequence(self) -> int:
        """The sequence number the next entry gets."""
        return self._next

    def accept(self, record: LedgerRecord) -> None:
        """``record`` is stored: chain the next entry to it."""
        if record.sequence != self._next:
            raise LedgerError(
                f"entry {record.sequence} accepted where {self._next} was expected"
            )
        self._next, self._previous = record.sequence + 1, record.digest

    def opened(
        self,
        *,
        config: Mapping[str, Any],
        version: str,
        code: Mapping[str, str],
        roster: Sequence[Mapping[str, Any]],
    ) -> LedgerRecord:
        """The entry that opens a run: its settings, code, roster and signer."""
        digest = config_digest(config)
        return self._entry(
            "run-opened",
            None,
            [subject("config", digest)],
            {
                "config": digest,
                "accord": version,
                "code": dict(code),
                "roster": [dict(r) for r in roster],
                "signer": self._signer.describe(),
            },
        )

    def resumed(
        self, *, config: Mapping[str, Any], next_round: int, roster: Sequence[Any]
    ) -> LedgerRecord:
        """The entry of a run taken up again from ``next_round``."""
        digest = config_digest(config)
        return self._entry(
            "run-resumed",
            None,
            [subject("config", digest)],
            {
                "config": digest,
                "nextRound": next_round,
                "roster": [dict(r) for r in roster],
                "signer": self._signer.describe(),
            },
        )

    def data_contract(self, contract: Mapping[str, Any]) -> LedgerRecord:
        """The entry of the data contract agreed before the next round.

        ``contract`` is :meth:`accord.data.contract.DataContract.to_dict`; its
        canonical JSON's SHA-256 is the entry's ``contract`` subject, and the
        preprocessing digest it names its ``preprocessing`` subject.
        """
        digest = hashlib.sha256(canonical_json(contract)).hexdigest()
        subjects = [subject("contract", digest)]
        preprocessing = contract.get("preprocessing")
        if isinstance(preprocessing, str):
            subjects.append(subject("preprocessing", preprocessing))
        return self._entry(
            "data-contract", None, subjects, {"contract": dict(contract)}
        )

    def round(
        self,
        record: RoundRecord,
        *,
        aggregate: str | None,
        inputs: str,
        algorithm: str = PARAMS,
    ) -> LedgerRecord:
        """The entry of one round; ``inputs`` says what the update digests cover.

        ``algorithm`` names the model's and the aggregate's digest: a
        :class:`~accord.params.Params` digest unless the run's models are not
        parameters (a tree run's chain of SHA-256).
        """
        subjects = [
            subject(f"model:round-{record.number}", record.global_digest, algorithm)
        ]
        if aggregate is not None:
            subjects.append(
                subject(f"aggregate:round-{record.number}", aggregate, algorithm)
            )
        predicate = {
            "round": record.number,
            "status": record.status,
            "selected": list(record.selected),
            "inputs": inputs,
            "outcomes": [
                {
                    "participant": o.participant,
                    "status": o.status,
                    "reason": o.reason,
                    "examples": o.num_examples,
                    "digest": o.update_digest,
                }
                for o in record.outcomes
            ],
            "aggregate": aggregate,
            "model": record.global_digest,
            "privacy": [
                {
                    "level": p.level,
                    "participant": p.participant,
                    "epsilon": p.epsilon,
                    "delta": p.delta,
                    "accountant": p.accountant,
                    "noiseMultiplier": p.noise_multiplier,
                }
                for p in record.privacy
            ],
            "metrics": {
                f"{m.scope}.{m.name}": m.value
                for m in record.metrics
                if m.participant is None
            },
            # Each site's own figures and flags, which release gates read too.
            "siteMetrics": site_metrics(record.metrics),
            "scores": [
                {
                    "participant": s.participant,
                    "flags": list(s.flags),
                    "excluded": s.excluded,
                }
                for s in record.scores
            ],
        }
        return self._entry("round", record.number, subjects, predicate)

    def closed(
        self,
        *,
        status: str,
        model: str,
        checkpoint: str | None,
        rounds: int,
        reason: str | None,
        algorithm: str = PARAMS,
    ) -> LedgerRecord:
        """The entry that ends a run: its status and final model (the release).

        ``algorithm`` names ``model``'s digest, as for :meth:`round`.
        """
        return self._entry(
            "run-closed",
            None,
            [subject("model:final", model, algorithm)],
            {
                "status": status,
                "model": model,
                "checkpointFile": checkpoint,
                "rounds": rounds,
                "reason": reason,
            },
        )

    def release(
        self,
        *,
        model: str,
        passed: bool,
        gates: Mapping[str, Any],
        results: Sequence[Mapping[str, Any]],
        fairness: Mapping[str, Any] | None,
        output: str | None,
    ) -> LedgerRecord:
        """The entry of a release decision: the gates, each one's outcome, the file.

        ``output`` is the SHA-256 of the model file written (None when refused).
        """
        return self._entry(
            "release",
            None,
            [subject("model:final", model, PARAMS)],
            {
                "passed": passed,
                "model": model,
                "gates": dict(gates),
                "results": [dict(r) for r in results],
                "fairness": None if fairness is None else dict(fairness),
                "modelFile": output,
            },
        )

    def _entry(
        self,
        kind: EntryKind,
        number: int | None,
        subjects: list[dict[str, Any]],
        predicate: Mapping[str, Any],
    ) -> LedgerRecord:
        statement = build_statement(
            kind,
            run=self._run,
            sequence=self._next,
            previous=self._previous,
            subjects=subjects,
            predicate={"at": _at(self._clock), **predicate},
        )
        if number is not None:
            statement["predicate"]["round"] = number
        envelope = Envelope.signed(
            IN_TOTO, canonical_json(statement), self._signer.signer
        )
        return LedgerRecord(
            run_id=self._run,
            sequence=self._next,
            kind=kind,
            round=number,
            digest=envelope.digest(),
            envelope=envelope.to_json(),
        )


def site_metrics(metrics: Iterable[MetricValue]) -> dict[str, dict[str, float]]:
    """The participant-scoped metrics, by participant then ``scope.name``."""
    out: dict[str, dict[str, float]] = {}
    for m in metrics:
        if m.participant is not None:
            out.setdefault(m.participant, {})[f"{m.scope}.{m.name}"] = m.value
    return out
