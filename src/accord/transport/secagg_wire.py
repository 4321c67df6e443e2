"""Secure-aggregation messages as bytes: the one converter to and from protobuf.

It lives in :mod:`accord.transport`, beside the generated modules it uses, so that
:mod:`accord.secagg` stays pure (no protobuf, no grpc: a test checks it); the
protocol's state machines take and return the dataclasses of
:mod:`accord.secagg.messages` and their callers convert here.

Every executor carries the protocol's messages as opaque bytes (a worker pipe in a
simulation, a gRPC stream in a deployment), encoded here as the ``SecAggMessage`` of
``accord.proto``, so a message is parsed the same way wherever it travelled. Parsing
is strict: the expected kind of message is named by the caller, and a blob that does
not parse, holds another kind, or breaks a size rule is refused with
:class:`~accord.errors.SubmissionRefused` (kind ``malformed``) before any of it
reaches a state machine. Needs ``protobuf`` (the ``secagg`` and ``deploy`` extras).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf.message import DecodeError

from accord.errors import SubmissionRefused
from accord.secagg.messages import (
    AdvertiseKeys,
    ConsistencySignature,
    Dealing,
    EncryptedShares,
    FromCoordinator,
    KeyDirectory,
    MaskedInput,
    RevealedShare,
    ShareKeys,
    ShareKind,
    SharesDelivery,
    Stage,
    SurvivorList,
    SurvivorSignatures,
    ToCoordinator,
    UnmaskShares,
)
from accord.transport.frames import varint
from accord.transport.proto import accord_pb2 as pb

__all__ = [
    "FromCoordinator",
    "decode_from_coordinator",
    "decode_to_coordinator",
    "encode",
    "reply_stage",
]

Message = ToCoordinator | FromCoordinator

#: The participant's message that answers each stage's coordinator message.
_REPLY_FIELD: dict[Stage, str] = {
    Stage.ADVERTISE: "advertise",
    Stage.SHARE_KEYS: "share_keys",
    Stage.MASKED_INPUT: "masked_input",
    Stage.CONSISTENCY: "consistency",
    Stage.UNMASK: "unmask",
}
#: The coordinator's message that opens each stage after the first.
_INPUT_FIELD: dict[Stage, str] = {
    Stage.SHARE_KEYS: "key_directory",
    Stage.MASKED_INPUT: "shares_delivery",
    Stage.CONSISTENCY: "survivor_list",
    Stage.UNMASK: "survivor_signatures",
}


def reply_stage(stage: str) -> Stage:
    """The stage named on the wire; SubmissionRefused for an unknown name."""
    try:
        value = Stage(stage)
    except ValueError:
        raise _malformed(f"unknown secure-aggregation stage {stage!r}") from None
    if value not in _REPLY_FIELD:
        raise _malformed(f"stage {stage!r} has no participant message")
    return value


def encode(message: Message) -> bytes:
    """The wire form of any protocol message."""
    if isinstance(message, MaskedInput):
        return _masked_input(message)
    out = pb.SecAggMessage()
    match message:
        case AdvertiseKeys():
            _advert_to(out.advertise, message)
        case ShareKeys():
            _head(out.share_keys, message)
            out.share_keys.sender = message.sender
            out.share_keys.shares.extend(_shares_to(message.shares))
            _dealing_to(out.share_keys.dealing, message.dealing)
        case ConsistencySignature():
            _signature_to(out.consistency, message)
        case UnmaskShares():
            _head(out.unmask, message)
            out.unmask.sender = message.sender
            out.unmask.shares.extend(
                pb.SecAggRevealedShare(
                    dealer=s.dealer,
                    kind=s.kind.value,
                    index=s.index,
                    value=s.value,
                    salt=s.salt,
                )
                for s in message.shares
            )
        case KeyDirectory():
            _head(out.key_directory, message)
            for advert in message.keys:
                _advert_to(out.key_directory.keys.add(), advert)
        case SharesDelivery():
            _head(out.shares_delivery, message)
            out.shares_delivery.recipient = message.recipient
            out.shares_delivery.shares.extend(_shares_to(message.shares))
            for dealing in message.dealings:
                _dealing_to(out.shares_delivery.dealings.add(), dealing)
        case SurvivorList():
            _head(out.survivor_list, message)
            out.survivor_list.survivors.extend(message.survivors)
        case SurvivorSignatures():
            _head(out.survivor_signatures, message)
            out.survivor_signatures.survivors.extend(message.survivors)
            for sig in message.signatures:
                _signature_to(out.survivor_signatures.signatures.add(), sig)
    return out.SerializeToString()


def _masked_input(message: MaskedInput) -> bytes:
    """A masked input's wire form, its vector copied once instead of three times.

    The vector is the whole message (4 MB at 1M parameters); through protobuf it
    would be copied into the message, then into the serialized string. Protobuf's
    encoding of a message is the concatenation of its fields, in field-number order
    when serialized, and the vector is ``SecAggMaskedInput``'s last field (4), the
    masked input ``SecAggMessage``'s only one (3): so protobuf serializes the
    other fields, and the two fields' tags and lengths are written around the
    vector here, as :mod:`accord.transport.frames` does for model chunks. The bytes
    are exactly ``SerializeToString``'s (tested), parsed by the same parser as
    every other message.
    """
    head = pb.SecAggMaskedInput(
        run_id=message.run_id, round=message.round_number, sender=message.sender
    ).SerializeToString()
    vector = message.vector
    # proto3 leaves an empty bytes field out.
    field = _tag(4) + varint(len(vector)) if vector else b""
    size = len(head) + len(field) + len(vector)
    return b"".join((_tag(3), varint(size), head, field, vector))


def _tag(number: int) -> bytes:
    """The key of a length-delimited field (wire type 2)."""
    return varint(number << 3 | 2)


def decode_to_coordinator(data: bytes, stage: Stage) -> ToCoordinator:
    """Parse a participant's message that must answer ``stage``."""
    body = _parse(data, _REPLY_FIELD[stage], stage)
    match stage:
        case Stage.ADVERTISE:
            return _advert_from(body)
        case Stage.SHARE_KEYS:
            return ShareKeys(
                body.run_id,
                body.round,
                body.sender,
                tuple(_shares_from(body.shares)),
                _dealing_from(body.dealing),
            )
        case Stage.MASKED_INPUT:
            return MaskedInput(body.run_id, body.round, body.sender, body.vector)
        case Stage.CONSISTENCY:
            return _signature_from(body)
        case _:
            return UnmaskShares(
                body.run_id,
                body.round,
                body.sender,
                tuple(
                    RevealedShare(
                        s.dealer,
                        _kind(s.kind),
                        s.index,
                        s.value,
                        s.salt,
                    )
                    for s in body.shares
                ),
            )


def decode_from_coordinator(data: bytes, stage: Stage) -> FromCoordinator:
    """Parse the coordinator's message that opens ``stage`` (not the first)."""
    if stage not in _INPUT_FIELD:
        raise _malformed(f"stage {stage.value!r} has no coordinator message")
    body = _parse(data, _INPUT_FIELD[stage], stage)
    match stage:
        case Stage.SHARE_KEYS:
            return KeyDirectory(
                body.run_id, body.round, tuple(_advert_from(a) for a in body.keys)
            )
        case Stage.MASKED_INPUT:
            return SharesDelivery(
                body.run_id,
                body.round,
                body.recipient,
                tuple(_shares_from(body.shares)),
                tuple(_dealing_from(d) for d in body.dealings),
            )
        case Stage.CONSISTENCY:
            return SurvivorList(body.run_id, body.round, tuple(body.survivors))
        case _:
            return SurvivorSignatures(
                body.run_id,
                body.round,
                tuple(body.survivors),
                tuple(_signature_from(s) for s in body.signatures),
            )


def _parse(data: bytes, field: str, stage: Stage) -> Any:
    message = pb.SecAggMessage()
    try:
        message.ParseFromString(data)
    except (DecodeError, ValueError, TypeError) as exc:
        raise _malformed(f"not a secure-aggregation message ({exc})") from None
    kind = message.WhichOneof("body")
    if kind != field:
        raise _malformed(
            f"stage {stage.value!r} expects a {field} message, got {kind or 'nothing'}"
        )
    return getattr(message, field)


def _malformed(reason: str) -> SubmissionRefused:
    return SubmissionRefused("malformed", reason)


def _kind(value: str) -> ShareKind:
    try:
        return ShareKind(value)
    except ValueError:
        raise _malformed(f"unknown share kind {value!r}") from None


def _head(target: Any, message: Message) -> None:
    target.run_id = message.run_id
    target.round = message.round_number


def _advert_to(target: pb.SecAggAdvertise, advert: AdvertiseKeys) -> None:
    _head(target, advert)
    target.sender = advert.sender
    target.encryption_key = advert.encryption_key
    target.masking_key = advert.masking_key
    target.seed_commitment = advert.seed_commitment
    target.signature = advert.signature


def _advert_from(body: pb.SecAggAdvertise) -> AdvertiseKeys:
    return AdvertiseKeys(
        body.run_id,
        body.round,
        body.sender,
        body.encryption_key,
        body.masking_key,
        body.seed_commitment,
        body.signature,
    )


def _signature_to(target: pb.SecAggConsistency, sig: ConsistencySignature) -> None:
    _head(target, sig)
    target.sender = sig.sender
    target.signature = sig.signature


def _signature_from(body: pb.SecAggConsistency) -> ConsistencySignature:
    return ConsistencySignature(body.run_id, body.round, body.sender, body.signature)


def _shares_to(
    shares: tuple[EncryptedShares, ...],
) -> list[pb.SecAggEncryptedShares]:
    return [
        pb.SecAggEncryptedShares(
            dealer=s.dealer, holder=s.holder, ciphertext=s.ciphertext
        )
        for s in shares
    ]


def _shares_from(shares: Iterable[pb.SecAggEncryptedShares]) -> list[EncryptedShares]:
    return [EncryptedShares(s.dealer, s.holder, s.ciphertext) for s in shares]


def _dealing_to(target: pb.SecAggDealing, dealing: Dealing) -> None:
    target.dealer = dealing.dealer
    target.commitments = dealing.commitments
    target.signature = dealing.signature


def _dealing_from(body: pb.SecAggDealing) -> Dealing:
    return Dealing(body.dealer, body.commitments, body.signature)
