"""The coordinator's side of one secure-aggregation round, as a pure state machine.

The round loop feeds every participant message to :meth:`SecAggServer.receive`
(which refuses, with :class:`~accord.errors.SubmissionRefused`, anything of another
run, round or stage, from off the roster or from someone who dropped out earlier,
a second copy, or a malformed one, leaving the state untouched), and closes each
stage when it decides to (everyone answered, or a deadline passed) by calling the
stage's closing method, which returns the messages to send next:

``key_directory`` -> ``deliver_shares`` -> ``survivor_list`` ->
``survivor_signatures`` -> ``aggregate``.

Masked inputs are added into one running ring total as they arrive, so the
coordinator's memory is one model, whatever the number of participants, and it
never holds an individual masked vector longer than one addition. When a stage
closes with fewer than ``threshold`` participants, or with a neighbourhood that
could no longer rebuild a secret it will need, the round aborts with
:class:`~accord.errors.SecAggAborted` and releases nothing.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from accord.errors import RefusalKind, SecAggAborted, SubmissionRefused
from accord.secagg import transcript as tx
from accord.secagg.config import SecAggConfig
from accord.secagg.crypto import KEY_BYTES, SEAL_OVERHEAD, small_order, verify
from accord.secagg.dealing import dealing_is_signed
from accord.secagg.mask import MaskGenerator, RingVector
from accord.secagg.messages import (
    AdvertiseKeys,
    ConsistencySignature,
    Dealing,
    EncryptedShares,
    KeyDirectory,
    MaskedInput,
    ShareKeys,
    ShareKind,
    SharesDelivery,
    Stage,
    SurvivorList,
    SurvivorSignatures,
    ToCoordinator,
    UnmaskShares,
)
from accord.secagg.recovery import remove_masks
from accord.secagg.shamir import check_share_value

__all__ = ["SecAggResult", "SecAggServer"]

_STAGE_OF: dict[type, Stage] = {
    AdvertiseKeys: Stage.ADVERTISE,
    ShareKeys: Stage.SHARE_KEYS,
    MaskedInput: Stage.MASKED_INPUT,
    ConsistencySignature: Stage.CONSISTENCY,
    UnmaskShares: Stage.UNMASK,
}
_ORDER = list(Stage)


@dataclass(frozen=True, slots=True)
class SecAggResult:
    """The unmasked ring sum and who is in it.

    ``total`` is the sum mod 2^32 of the inputs of ``contributors`` (decode it with
    the round's :class:`~accord.secagg.encoding.FixedPointEncoding`); ``dropped``
    are the roster's other participants; ``offenders`` revealed forged shares (the
    sum is still right, but exclude them from later rounds).
    """

    total: RingVector
    contributors: tuple[str, ...]
    dropped: tuple[str, ...]
    offenders: tuple[str, ...]


class SecAggServer:
    """The coordinator's state for one round of secure aggregation."""

    def __init__(self, config: SecAggConfig, *, masks: MaskGenerator | None = None):
        self._cfg = config
        self._keys = config.identity_keys()
        self._order = config.order()
        self._graph = config.graph()
        self._masks = masks or MaskGenerator()
        self._stage = Stage.ADVERTISE
        self._total: RingVector = np.zeros(config.vector_size, dtype=np.uint32)
        self._adverts: dict[str, AdvertiseKeys] = {}  # U1
        self._public_keys: set[bytes] = set()  # every key U1 advertised
        self._directory = b""  # the digest of the directory sent (U1)
        self._dealt: dict[str, ShareKeys] = {}  # U2
        self._inputs: set[str] = set()  # U3, growing
        self._survivors: tuple[str, ...] = ()  # U3, closed
        self._signatures: dict[str, ConsistencySignature] = {}  # U4
        self._reveals: dict[str, UnmaskShares] = {}  # U5
        self._index: dict[str, dict[str, int]] = {}  # dealer -> holder -> share index

    @property
    def stage(self) -> Stage:
        """The stage whose messages the coordinator is collecting."""
        return self._stage

    # -- receiving -----------------------------------------------------------
    def receive(self, message: ToCoordinator) -> None:
        """Take one participant message of the current stage, or refuse it."""
        who = message.sender
        if self._stage in (Stage.DONE, Stage.ABORTED):
            raise _refuse("stale", "the round is over", who)
        if (message.run_id, message.round_number) != (
            self._cfg.run_id,
            self._cfg.round_number,
        ):
            raise _refuse(
                "stale",
                f"the message belongs to run {message.run_id!r} round "
                f"{message.round_number}, not this round",
                who,
            )
        if who not in self._keys:
            raise _refuse("forbidden", "the sender is not on the round's roster", who)
        stage = _STAGE_OF[type(message)]
        if stage is not self._stage:
            late = _ORDER.index(stage) < _ORDER.index(self._stage)
            raise _refuse(
                "stale" if late else "mismatch",
                f"a {stage} message arrived during stage {self._stage}",
                who,
            )
        i = _ORDER.index(stage)
        previous: tuple[Container[str], ...] = (
            self._keys,
            self._adverts,
            self._dealt,
            self._survivors,
            self._signatures,
        )
        if who not in previous[i]:
            raise _refuse("forbidden", f"the sender left the round before {stage}", who)
        current: tuple[Container[str], ...] = (
            self._adverts,
            self._dealt,
            self._inputs,
            self._signatures,
            self._reveals,
        )
        if who in current[i]:
            raise _refuse("duplicate", f"a second {stage} message", who)
        self._check(message)
        self._record(message)

    def _check(self, message: ToCoordinator) -> None:
        who = message.sender
        if isinstance(message, AdvertiseKeys):
            keys = (
                message.encryption_key,
                message.masking_key,
                message.seed_commitment,
            )
            statement = tx.advertisement(self._cfg, who, *keys)
            if any(len(k) != KEY_BYTES for k in keys):
                raise _refuse("malformed", "keys and commitment have 32 bytes", who)
            if not verify(self._keys[who], message.signature, statement):
                raise _refuse(
                    "corrupt", "the advertisement's signature is invalid", who
                )
            public = (message.encryption_key, message.masking_key)
            if any(small_order(k) for k in public):
                raise _refuse(
                    "malformed",
                    "a public key is a small-order X25519 point, which agrees on the "
                    "all-zero secret with anyone; advertise fresh keys",
                    who,
                )
            if public[0] == public[1]:
                raise _refuse(
                    "malformed",
                    "the encryption and masking keys are the same; the protocol "
                    "needs two independent key pairs",
                    who,
                )
            if any(k in self._public_keys for k in public):
                raise _refuse(
                    "malformed",
                    "a public key another participant advertised this round; "
                    "advertise fresh keys",
                    who,
                )
        elif isinstance(message, ShareKeys):
            expected = set(self._index[who]) - {who}
            holders = [s.holder for s in message.shares]
            size = tx.BUNDLE_BYTES + SEAL_OVERHEAD
            older = {
                tx.FORMAT_1_BUNDLE_BYTES + SEAL_OVERHEAD: 1,
                tx.FORMAT_2_BUNDLE_BYTES + SEAL_OVERHEAD: 2,
            }
            for share in message.shares:
                if (old := older.get(len(share.ciphertext))) is not None:
                    raise _refuse(
                        "malformed",
                        f"the shares are of bundle format {old} (an older accord); "
                        "this coordinator takes format "
                        f"{tx.BUNDLE_FORMAT}: run the same accord version on every "
                        "site",
                        who,
                    )
            if (
                sorted(holders) != sorted(expected)
                or any(s.dealer != who for s in message.shares)
                or any(len(s.ciphertext) != size for s in message.shares)
            ):
                raise _refuse("malformed", "shares must go once to each holder", who)
            if message.dealing.dealer != who or not dealing_is_signed(
                self._cfg, message.dealing, holders=list(self._index[who])
            ):
                raise _refuse(
                    "corrupt",
                    "the commitments to the shares are not signed by the dealer "
                    "(one 32-byte commitment per share, per holder in index order)",
                    who,
                )
        elif isinstance(message, MaskedInput):
            if len(message.vector) != 4 * self._cfg.vector_size:
                raise _refuse(
                    "malformed",
                    f"the vector must have {self._cfg.vector_size} words",
                    who,
                )
        elif isinstance(message, ConsistencySignature):
            statement = tx.survivor_statement(
                self._cfg, self._survivors, self._directory
            )
            if not verify(self._keys[who], message.signature, statement):
                raise _refuse("corrupt", "the signature does not cover U3", who)
        else:
            self._check_reveal(message)

    def _check_reveal(self, message: UnmaskShares) -> None:
        who = message.sender
        dealers = [s.dealer for s in message.shares]
        if len(set(dealers)) != len(dealers):
            raise _refuse("malformed", "one share per dealer", who)
        for share in message.shares:
            owed = self._index.get(share.dealer, {}).get(who)
            kind = (
                ShareKind.SELF_MASK
                if share.dealer in self._survivors
                else ShareKind.MASK_KEY
            )
            if share.dealer not in self._dealt or owed != share.index:
                raise _refuse("corrupt", f"no share of {share.dealer!r} is owed", who)
            if share.kind is not kind:
                raise _refuse("corrupt", f"wrong share of {share.dealer!r}", who)
            if len(share.salt) != tx.SALT_BYTES:
                raise _refuse(
                    "malformed",
                    f"the share of {share.dealer!r} has a {len(share.salt)}-byte salt, "
                    f"not {tx.SALT_BYTES}",
                    who,
                )
            try:
                check_share_value(share.value)
            except ValueError as exc:
                raise _refuse(
                    "corrupt", f"the share of {share.dealer!r}: {exc}", who
                ) from None

    def _record(self, message: ToCoordinator) -> None:
        who = message.sender
        if isinstance(message, AdvertiseKeys):
            self._adverts[who] = message
            self._public_keys.update((message.encryption_key, message.masking_key))
        elif isinstance(message, ShareKeys):
            self._dealt[who] = message
        elif isinstance(message, MaskedInput):
            np.add(self._total, np.frombuffer(message.vector, "<u4"), out=self._total)
            self._inputs.add(who)
        elif isinstance(message, ConsistencySignature):
            self._signatures[who] = message
        else:
            self._reveals[who] = message

    # -- closing stages ------------------------------------------------------
    def key_directory(self) -> KeyDirectory:
        """Close stage 0: every accepted advertisement, for every participant in U1."""
        with self._closing(Stage.ADVERTISE, self._adverts):
            u1 = frozenset(self._adverts)
            for dealer in self._adverts:
                holders = self._graph.holders(dealer, alive=u1)
                self._index[dealer] = {h: i + 1 for i, h in enumerate(holders)}
            self._stage = Stage.SHARE_KEYS
            listed = tuple(self._adverts[p] for p in self._in_order(u1))
            self._directory = tx.directory_digest(self._cfg, listed)
            return KeyDirectory(self._cfg.run_id, self._cfg.round_number, listed)

    def deliver_shares(self) -> dict[str, SharesDelivery]:
        """Close stage 1: for each participant in U2, the shares addressed to it."""
        with self._closing(Stage.SHARE_KEYS, self._dealt):
            u2 = set(self._dealt)
            self._check_recoverable(u2, u2)
            inbox: dict[str, list[EncryptedShares]] = {p: [] for p in u2}
            dealings: dict[str, list[Dealing]] = {p: [] for p in u2}
            for dealer in self._in_order(u2):
                dealt = self._dealt[dealer]
                for share in dealt.shares:
                    if share.holder in inbox:
                        inbox[share.holder].append(share)
                        dealings[share.holder].append(dealt.dealing)
            self._stage = Stage.MASKED_INPUT
            return {
                p: SharesDelivery(
                    self._cfg.run_id,
                    self._cfg.round_number,
                    p,
                    tuple(inbox[p]),
                    tuple(dealings[p]),
                )
                for p in self._in_order(u2)
            }

    def survivor_list(self) -> SurvivorList:
        """Close stage 2: the participants whose masked inputs are in the total (U3)."""
        with self._closing(Stage.MASKED_INPUT, self._inputs):
            self._survivors = self._in_order(self._inputs)
            self._check_recoverable(self._inputs, self._dealt)
            self._stage = Stage.CONSISTENCY
            return SurvivorList(
                self._cfg.run_id, self._cfg.round_number, self._survivors
            )

    def survivor_signatures(self) -> SurvivorSignatures:
        """Close stage 3: U3 with the signatures collected over it (from U4)."""
        with self._closing(Stage.CONSISTENCY, self._signatures):
            self._check_recoverable(set(self._signatures), self._dealt)
            self._stage = Stage.UNMASK
            signed = self._in_order(self._signatures)
            return SurvivorSignatures(
                self._cfg.run_id,
                self._cfg.round_number,
                self._survivors,
                tuple(self._signatures[p] for p in signed),
            )

    def aggregate(self) -> SecAggResult:
        """Close stage 4: rebuild the secrets needed and unmask the total."""
        with self._closing(Stage.UNMASK, self._reveals):
            total = self._total
            offenders = remove_masks(
                self._cfg,
                total=total,
                graph=self._graph,
                adverts=self._adverts,
                survivors=self._survivors,
                dealers=self._dealt,
                commitments={d: m.dealing.commitments for d, m in self._dealt.items()},
                reveals=[self._reveals[p] for p in self._in_order(self._reveals)],
                masks=self._masks,
            )
            total.flags.writeable = False
            self._stage = Stage.DONE
            survivors = set(self._survivors)
            return SecAggResult(
                total,
                self._survivors,
                tuple(p for p in self._cfg.participants if p not in survivors),
                offenders,
            )

    # -- plumbing ------------------------------------------------------------
    def _check_recoverable(self, alive: set[str], dealers: Iterable[str]) -> None:
        """Abort now if some secret needed later could no longer be rebuilt."""
        t = self._cfg.threshold
        for dealer in self._in_order(set(dealers)):
            needed = dealer in alive or bool(self._graph.of(dealer) & alive)
            left = sum(1 for h in self._index[dealer] if h in alive)
            if needed and left < t:
                raise SecAggAborted(
                    f"too many dropouts: only {left} holders of the shares of "
                    f"{dealer!r} are left, fewer than the threshold {t}, so its mask "
                    "could not be removed. No sum is released",
                    stage=str(self._stage),
                )

    @contextmanager
    def _closing(self, stage: Stage, arrived: Iterable[str]) -> Iterator[None]:
        if self._stage is not stage:
            raise RuntimeError(
                f"stage {stage} is not open (the round is at {self._stage})"
            )
        count, t = len(list(arrived)), self._cfg.threshold
        try:
            if count < t:
                raise SecAggAborted(
                    f"only {count} participants remain, fewer than the threshold {t}; "
                    "no sum is released",
                    stage=str(stage),
                )
            yield
        except SecAggAborted:
            self._stage = Stage.ABORTED
            self._total = np.zeros(0, dtype=np.uint32)  # nothing partial survives
            raise

    def _in_order(self, ids: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(ids, key=self._order.__getitem__))


def _refuse(kind: RefusalKind, reason: str, who: str) -> SubmissionRefused:
    return SubmissionRefused(kind, reason, participant=who)
