"""The messages of the protocol: frozen dataclasses of strings, ints and bytes.

Every message names the run and the round it belongs to, and each participant's
message its sender, so that either side can refuse a message from another round or
stage, or a second copy, before it touches the round's state. Fields are plain
values (bytes for keys, signatures, ciphertexts and the masked vector as
little-endian uint32), so the transport can map each message to a protobuf message
field for field; nothing here is ever pickled.

Stages, after Bonawitz et al. 2017 (the ``U_i`` are the participants still in):

====================  ==========================  ==============================
stage                 participant sends           coordinator answers (to U_i)
====================  ==========================  ==============================
0 ``advertise``       :class:`AdvertiseKeys`      :class:`KeyDirectory` (U1)
1 ``share_keys``      :class:`ShareKeys`          :class:`SharesDelivery` (U2)
2 ``masked_input``    :class:`MaskedInput`        :class:`SurvivorList` (U3)
3 ``consistency``     :class:`ConsistencySignature`  :class:`SurvivorSignatures` (U4)
4 ``unmask``          :class:`UnmaskShares`       (the sum, to the round loop)
====================  ==========================  ==============================
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "AdvertiseKeys",
    "ConsistencySignature",
    "Dealing",
    "EncryptedShares",
    "KeyDirectory",
    "MaskedInput",
    "RevealedShare",
    "ShareKeys",
    "ShareKind",
    "SharesDelivery",
    "Stage",
    "SurvivorList",
    "SurvivorSignatures",
    "ToCoordinator",
    "UnmaskShares",
]


class Stage(StrEnum):
    """Where a participant or the coordinator is in the round."""

    ADVERTISE = "advertise"
    SHARE_KEYS = "share_keys"
    MASKED_INPUT = "masked_input"
    CONSISTENCY = "consistency"
    UNMASK = "unmask"
    DONE = "done"
    ABORTED = "aborted"


class ShareKind(StrEnum):
    """Which of a dealer's two secrets a revealed share belongs to."""

    SELF_MASK = "self_mask"  # the seed b_u of the dealer's own mask
    MASK_KEY = "mask_key"  # the dealer's X25519 masking private key


@dataclass(frozen=True, slots=True)
class AdvertiseKeys:
    """Stage 0: two fresh X25519 public keys and a commitment to the self-mask seed.

    Signed with the sender's Ed25519 identity key.
    """

    run_id: str
    round_number: int
    sender: str
    encryption_key: bytes
    masking_key: bytes
    seed_commitment: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class EncryptedShares:
    """The dealer's shares for one holder, AES-GCM encrypted under their pair key."""

    dealer: str
    holder: str
    ciphertext: bytes


@dataclass(frozen=True, slots=True)
class Dealing:
    """A dealer's commitments to every share it dealt, signed once.

    ``commitments`` holds, per holder in share-index order, the salted commitment
    to its self-mask share then to its masking-key share (32 bytes each);
    ``signature`` is the dealer's over
    :func:`~accord.secagg.transcript.dealing_statement`.
    """

    dealer: str
    commitments: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class ShareKeys:
    """Stage 1: one :class:`EncryptedShares` per other holder, and the dealing."""

    run_id: str
    round_number: int
    sender: str
    shares: tuple[EncryptedShares, ...]
    dealing: Dealing


@dataclass(frozen=True, slots=True)
class MaskedInput:
    """Stage 2: the masked ring vector (little-endian uint32 words)."""

    run_id: str
    round_number: int
    sender: str
    vector: bytes


@dataclass(frozen=True, slots=True)
class ConsistencySignature:
    """Stage 3: the sender's signature over the survivor set it was shown."""

    run_id: str
    round_number: int
    sender: str
    signature: bytes


@dataclass(frozen=True, slots=True)
class RevealedShare:
    """One share revealed at stage 4, with the salt of the dealer's commitment to it."""

    dealer: str
    kind: ShareKind
    index: int
    value: bytes
    salt: bytes


@dataclass(frozen=True, slots=True)
class UnmaskShares:
    """Stage 4: the shares the sender holds, one per dealer.

    Of the self-mask seed of each surviving neighbour, and of the masking key of
    each neighbour that dropped out; never both for one dealer.
    """

    run_id: str
    round_number: int
    sender: str
    shares: tuple[RevealedShare, ...]


@dataclass(frozen=True, slots=True)
class KeyDirectory:
    """Answer to stage 0: every accepted advertisement, as signed (U1)."""

    run_id: str
    round_number: int
    keys: tuple[AdvertiseKeys, ...]


@dataclass(frozen=True, slots=True)
class SharesDelivery:
    """Answer to stage 1: the shares addressed to ``recipient`` by dealers in U2.

    ``dealings`` holds the signed :class:`Dealing` of each of those dealers.
    """

    run_id: str
    round_number: int
    recipient: str
    shares: tuple[EncryptedShares, ...]
    dealings: tuple[Dealing, ...]


@dataclass(frozen=True, slots=True)
class SurvivorList:
    """Answer to stage 2: who sent a masked input (U3), in protocol order."""

    run_id: str
    round_number: int
    survivors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SurvivorSignatures:
    """Answer to stage 3: U3 again, with every signature collected over it (U4)."""

    run_id: str
    round_number: int
    survivors: tuple[str, ...]
    signatures: tuple[ConsistencySignature, ...]


#: Every message a participant sends to the coordinator.
ToCoordinator = (
    AdvertiseKeys | ShareKeys | MaskedInput | ConsistencySignature | UnmaskShares
)
#: Every message the coordinator sends to a participant.
FromCoordinator = KeyDirectory | SharesDelivery | SurvivorList | SurvivorSignatures
