"""The participant's side of one secure-aggregation round, as a pure state machine.

One :class:`SecAggParticipant` per participant and round. Each method takes the
coordinator's message for one stage and returns this participant's answer; there is
no I/O, no thread and no clock (timeouts and transport belong to the caller). The
methods must be called in stage order: a message of another run, round or stage is
refused with :class:`~accord.errors.SubmissionRefused` and leaves the state
untouched, so a replayed or misrouted message costs nothing.

What this side checks, because it cannot trust the coordinator:

* advertisements are signed by the roster's identity keys (a coordinator cannot
  substitute its own keys and read the shares);
* every dealer's list of share commitments carries its signature (else the
  coordinator relayed a forged one: the round aborts), and every received share
  decrypts, is the index the dealer owes this holder, and matches its commitment
  in that list (:class:`~accord.errors.ShareRejected` names the dealer otherwise,
  so a holder can never be blamed for a dealer's bad share);
* enough of its share holders are alive before dealing or sending a masked input;
* at stage 4, that the survivor set it signed is the one all relayed signatures
  cover (:class:`~accord.errors.EquivocationDetected` otherwise), and only then does
  it reveal, per neighbour, *either* the self-mask share (survivor) *or* the
  masking-key share (dropped), never both.

Any :class:`~accord.errors.SecAggAborted` leaves the participant aborted: it sends
nothing more this round, which the coordinator sees as a dropout.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from accord.errors import (
    SecAggAborted,
    ShareRejected,
    SubmissionRefused,
)
from accord.secagg import transcript as tx
from accord.secagg.config import SecAggConfig
from accord.secagg.consistency import check_signatures, check_survivor_list
from accord.secagg.crypto import (
    Ed25519PrivateKey,
    KeyAgreement,
    SignatureCheck,
    Verifier,
    generate_x25519,
    identity_public,
    sign,
)
from accord.secagg.dealing import (
    deal,
    dealing_is_signed,
    open_bundle,
    verify_directory,
)
from accord.secagg.mask import MaskGenerator, RingVector, SignedKey
from accord.secagg.messages import (
    AdvertiseKeys,
    ConsistencySignature,
    Dealing,
    EncryptedShares,
    KeyDirectory,
    MaskedInput,
    RevealedShare,
    ShareKeys,
    ShareKind,
    SharesDelivery,
    Stage,
    SurvivorList,
    SurvivorSignatures,
    UnmaskShares,
)
from accord.secagg.shamir import SECRET_BYTES

__all__ = ["SecAggParticipant"]


class SecAggParticipant:
    """One participant's state for one round.

    ``identity`` is the participant's Ed25519 identity key (its public half must be
    the roster's entry). ``verifier`` checks signatures (a process's sites may share
    one :class:`~accord.secagg.crypto.Verifier`). ``entropy`` replaces the OS
    CSPRNG for the round's secrets and exists for reproducible tests only.
    """

    def __init__(
        self,
        config: SecAggConfig,
        participant_id: str,
        identity: Ed25519PrivateKey,
        *,
        masks: MaskGenerator | None = None,
        verifier: SignatureCheck | None = None,
        entropy: Callable[[int], bytes] = os.urandom,
    ) -> None:
        keys = config.identity_keys()
        if participant_id not in keys:
            raise ValueError(f"{participant_id!r} is not on this round's roster")
        if identity_public(identity) != keys[participant_id]:
            raise ValueError(
                f"the identity key given for {participant_id!r} is not the one on "
                "the roster"
            )
        self._cfg = config
        self._me = participant_id
        self._identity = identity
        self._order = config.order()
        self._graph = config.graph()
        self._neighbours = self._graph.of(participant_id)
        self._masks = masks or MaskGenerator()
        self._check: SignatureCheck = verifier or Verifier()
        self._entropy = entropy
        self._stage = Stage.ADVERTISE
        self._encryption = KeyAgreement(generate_x25519(entropy(32))[0])
        # The two shared secrets are 128 bits (one Shamir field element each); the
        # masking key is derived from its secret, the self-mask key from the seed.
        self._masking_secret = entropy(SECRET_BYTES)
        self._masking, _ = generate_x25519(
            tx.masking_private_key(config, participant_id, self._masking_secret)
        )
        self._seed = entropy(SECRET_BYTES)
        self._advert: AdvertiseKeys | None = None
        self._round_members: frozenset[str] = frozenset()
        self._directory = b""  # the digest of the key directory received (U1)
        self._peers: dict[str, AdvertiseKeys] = {}
        self._bundles: dict[str, tx.ShareBundle] = {}
        self._survivors: tuple[str, ...] = ()

    @property
    def stage(self) -> Stage:
        """The stage whose coordinator message this participant expects next."""
        return self._stage

    @property
    def participant_id(self) -> str:
        """The participant's id."""
        return self._me

    # -- stage 0 -------------------------------------------------------------
    def advertise(self) -> AdvertiseKeys:
        """Two fresh X25519 public keys and the seed commitment, signed."""
        self._accept(Stage.ADVERTISE, self._cfg.run_id, self._cfg.round_number)
        enc = self._encryption.public_bytes()
        mask = self._masking.public_key().public_bytes_raw()
        commitment = tx.seed_commitment(self._cfg, self._me, self._seed)
        statement = tx.advertisement(self._cfg, self._me, enc, mask, commitment)
        self._advert = AdvertiseKeys(
            self._cfg.run_id,
            self._cfg.round_number,
            self._me,
            enc,
            mask,
            commitment,
            sign(self._identity, statement),
        )
        self._stage = Stage.SHARE_KEYS
        return self._advert

    # -- stage 1 -------------------------------------------------------------
    def share_keys(self, directory: KeyDirectory) -> ShareKeys:
        """Deal shares of the seed and masking key to the live neighbourhood."""
        self._accept(Stage.SHARE_KEYS, directory.run_id, directory.round_number)
        assert self._advert is not None
        with self._aborting():
            try:
                self._peers = verify_directory(
                    self._cfg,
                    directory,
                    me=self._me,
                    own=self._advert,
                    neighbours=self._neighbours,
                    check=self._check,
                )
            except ValueError as exc:
                raise self._abort(str(exc)) from None
            self._round_members = frozenset(a.sender for a in directory.keys)
            self._directory = tx.directory_digest(self._cfg, directory.keys)
            t = self._cfg.threshold
            if len(self._round_members) < t:
                raise self._abort(
                    f"only {len(self._round_members)} participants advertised keys; "
                    f"the threshold is {t}"
                )
            holders = self._graph.holders(self._me, alive=frozenset(self._peers))
            if len(holders) < t:
                raise self._abort(
                    f"only {len(holders)} of this participant's share holders are in "
                    f"the round, fewer than the threshold {t}"
                )
            own, sealed, dealing = deal(
                self._cfg,
                dealer=self._me,
                identity=self._identity,
                encryption=self._encryption,
                seed=self._seed,
                masking_secret=self._masking_secret,
                holders=holders,
                peers=self._peers,
                salts=self._entropy,
            )
            self._bundles[self._me] = own
            self._stage = Stage.MASKED_INPUT
            return ShareKeys(
                self._cfg.run_id, self._cfg.round_number, self._me, sealed, dealing
            )

    # -- stage 2 -------------------------------------------------------------
    def masked_input(self, delivery: SharesDelivery, vector: RingVector) -> MaskedInput:
        """Check the shares received, then mask ``vector`` (the encoded update)."""
        self._accept(Stage.MASKED_INPUT, delivery.run_id, delivery.round_number)
        if delivery.recipient != self._me:
            raise SubmissionRefused(
                "mismatch",
                f"shares addressed to {delivery.recipient!r} reached {self._me!r}",
            )
        if vector.dtype != np.uint32 or vector.shape != (self._cfg.vector_size,):
            raise ValueError(
                f"the input must be {self._cfg.vector_size} uint32 words (encode it "
                "with FixedPointEncoding first)"
            )
        with self._aborting():
            dealings: dict[str, Dealing] = {}
            for dealing in delivery.dealings:
                if dealing.dealer in dealings:
                    raise self._abort(
                        f"the coordinator relayed two dealings of {dealing.dealer!r}"
                    )
                dealings[dealing.dealer] = dealing
            for shares in delivery.shares:
                self._receive_bundle(shares, dealings)
            t = self._cfg.threshold
            if len(self._bundles) < t:
                raise self._abort(
                    f"only {len(self._bundles)} of this participant's share holders "
                    f"are still in the round, fewer than the threshold {t}"
                )
            # Every mask at once, block by block, onto a copy of the input (one pass
            # over the vector, whatever the number of masks).
            masks: list[SignedKey] = [
                (tx.self_mask_key(self._cfg, self._me, self._seed), 1)
            ]
            for peer in self._bundles:
                if peer == self._me:
                    continue
                first, second = sorted((self._me, peer), key=self._order.__getitem__)
                key = tx.pairwise_mask_key(
                    self._cfg,
                    self._masking,
                    self._peers[peer].masking_key,
                    first,
                    second,
                )
                masks.append((key, 1 if first == peer else -1))
            masked = self._masks.combine(np.empty_like(vector), masks, base=vector)
            self._stage = Stage.CONSISTENCY
            return MaskedInput(
                self._cfg.run_id,
                self._cfg.round_number,
                self._me,
                masked.astype("<u4", copy=False).tobytes(),
            )

    def _receive_bundle(
        self, shares: EncryptedShares, dealings: dict[str, Dealing]
    ) -> None:
        dealer = shares.dealer
        if (
            shares.holder != self._me
            or dealer not in self._peers
            or dealer in self._bundles
        ):
            raise self._abort(
                f"the coordinator delivered an unexpected share (from {dealer!r} to "
                f"{shares.holder!r})"
            )
        holders = self._graph.holders(dealer, alive=self._round_members)
        dealing = dealings.get(dealer)
        if dealing is None or not dealing_is_signed(
            self._cfg, dealing, holders=holders, check=self._check
        ):
            # The coordinator checked each dealing's signature when it arrived, so
            # a missing or unsigned one here was lost or forged on its way.
            raise self._abort(
                f"the coordinator relayed the shares of {dealer!r} without the "
                "commitments it signed"
            )
        try:
            self._bundles[dealer] = open_bundle(
                self._cfg,
                shares,
                encryption=self._encryption,
                dealer_keys=self._peers[dealer],
                dealing=dealing,
                expected_index=holders.index(self._me) + 1,
            )
        except ValueError as exc:
            raise self._reject(dealer, str(exc)) from None

    # -- stage 3 -------------------------------------------------------------
    def consistency_check(self, survivors: SurvivorList) -> ConsistencySignature:
        """Sign the survivor set the coordinator shows this participant."""
        self._accept(Stage.CONSISTENCY, survivors.run_id, survivors.round_number)
        with self._aborting():
            try:
                check_survivor_list(
                    self._cfg,
                    survivors.survivors,
                    me=self._me,
                    neighbours=self._neighbours,
                    received=self._bundles,
                )
            except ValueError as exc:
                raise self._abort(str(exc)) from None
            self._survivors = survivors.survivors
            statement = tx.survivor_statement(
                self._cfg, self._survivors, self._directory
            )
            self._stage = Stage.UNMASK
            return ConsistencySignature(
                self._cfg.run_id,
                self._cfg.round_number,
                self._me,
                sign(self._identity, statement),
            )

    # -- stage 4 -------------------------------------------------------------
    def unmask(self, signed: SurvivorSignatures) -> UnmaskShares:
        """Verify everyone signed the same survivor set, then reveal shares.

        Per dealer, the self-mask share if it survived, else the masking-key share.
        """
        self._accept(Stage.UNMASK, signed.run_id, signed.round_number)
        with self._aborting():
            try:
                check_signatures(
                    self._cfg,
                    signed,
                    survivors=self._survivors,
                    directory=self._directory,
                    check=self._check,
                )
            except ValueError as exc:
                raise self._abort(str(exc)) from None
            out = []
            for dealer in sorted(self._bundles, key=self._order.__getitem__):
                kind = ShareKind.MASK_KEY
                if dealer in self._survivors:
                    kind = ShareKind.SELF_MASK
                bundle = self._bundles[dealer]
                value, salt = bundle.share(kind)
                out.append(RevealedShare(dealer, kind, bundle.index, value, salt))
            self._forget_secrets()
            self._stage = Stage.DONE
            return UnmaskShares(
                self._cfg.run_id, self._cfg.round_number, self._me, tuple(out)
            )

    # -- plumbing ------------------------------------------------------------
    def _accept(self, stage: Stage, run_id: str, round_number: int) -> None:
        if self._stage is Stage.ABORTED:
            raise SecAggAborted("this participant already aborted the round")
        if (run_id, round_number) != (self._cfg.run_id, self._cfg.round_number):
            raise SubmissionRefused(
                "stale",
                f"a message of run {run_id!r} round {round_number} reached round "
                f"{self._cfg.round_number} of run {self._cfg.run_id!r}",
            )
        if stage is not self._stage:
            raise SubmissionRefused(
                "duplicate" if _rank(stage) < _rank(self._stage) else "mismatch",
                f"a {stage} message arrived while {self._me!r} is at stage "
                f"{self._stage}",
            )

    @contextmanager
    def _aborting(self) -> Iterator[None]:
        try:
            yield
        except SecAggAborted:
            self._stage = Stage.ABORTED
            self._forget_secrets()
            raise

    def _abort(self, reason: str) -> SecAggAborted:
        return SecAggAborted(reason, stage=str(self._stage))

    def _reject(self, dealer: str, reason: str) -> ShareRejected:
        return ShareRejected(
            f"{self._me!r} refused the shares of {dealer!r}: {reason}",
            offender=dealer,
            stage=str(self._stage),
            detected_by=self._me,
        )

    def _forget_secrets(self) -> None:
        # Python cannot wipe memory; dropping the references is what it can do.
        self._seed = b""
        self._masking_secret = b""
        self._bundles = {}
        self._encryption.forget()


def _rank(stage: Stage) -> int:
    return list(Stage).index(stage)
