"""A participant's share handling: checking keys, dealing shares, opening them.

Three pure functions that :class:`~accord.secagg.participant.SecAggParticipant`
calls at stages 1 and 2; each raises ValueError with a readable reason, which the
state machine turns into an abort (or, for a bad share, into blame of its dealer).

* :func:`verify_directory` keeps the neighbours' advertisements, each checked
  against the roster's identity key, so the coordinator cannot slip in its own keys.
* :func:`deal` splits the self-mask seed and the masking secret t-of-m among
  the live closed neighbourhood, commits to every share with a fresh salt, signs
  the list of commitments once (so a holder can later prove which share it was
  given), and encrypts each holder's bundle (its shares and their salts) under
  the pair's AES-GCM key, with the round and both ids as associated data.
* :func:`open_bundle` is the reverse, and checks that the share index is the one
  this holder is owed, that the dealing carries the dealer's signature, and that
  both shares match their commitments in it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

from accord.secagg import transcript as tx
from accord.secagg.config import SecAggConfig
from accord.secagg.crypto import (
    Ed25519PrivateKey,
    KeyAgreement,
    SignatureCheck,
    X25519PrivateKey,
    open_sealed,
    seal,
    sign,
    small_order,
    verify,
)
from accord.secagg.messages import (
    AdvertiseKeys,
    Dealing,
    EncryptedShares,
    KeyDirectory,
    ShareKind,
)
from accord.secagg.shamir import split_secrets

__all__ = ["deal", "dealing_is_signed", "open_bundle", "verify_directory"]


def verify_directory(
    cfg: SecAggConfig,
    directory: KeyDirectory,
    *,
    me: str,
    own: AdvertiseKeys,
    neighbours: frozenset[str],
    check: SignatureCheck = verify,
) -> dict[str, AdvertiseKeys]:
    """The neighbours' advertisements in ``directory``, each signature verified.

    ``check`` verifies a signature (a :class:`~accord.secagg.crypto.Verifier` shared
    by the sites of one process verifies each advertisement once).
    """
    keys = cfg.identity_keys()
    peers: dict[str, AdvertiseKeys] = {}
    seen: set[str] = set()
    for advert in directory.keys:
        who = advert.sender
        if who not in keys or who in seen:
            raise ValueError(f"the key directory lists {who!r} twice or off the roster")
        seen.add(who)
        if who == me:
            if advert != own:
                raise ValueError("the coordinator altered this participant's keys")
            continue
        if who not in neighbours:
            continue
        statement = tx.advertisement(
            cfg, who, advert.encryption_key, advert.masking_key, advert.seed_commitment
        )
        if not check(keys[who], advert.signature, statement):
            raise ValueError(
                f"the advertisement of {who!r} is not signed by its identity key; "
                "the coordinator relayed a forged or altered key"
            )
        peers[who] = advert
    if me not in seen:
        raise ValueError("the coordinator left out this participant's advertisement")
    for who, advert in peers.items():
        if small_order(advert.encryption_key) or small_order(advert.masking_key):
            raise ValueError(
                f"the advertisement of {who!r} carries a small-order X25519 key, "
                "which agrees on the all-zero secret with anyone"
            )
    public = [
        k for a in (own, *peers.values()) for k in (a.encryption_key, a.masking_key)
    ]
    if len(set(public)) != len(public):
        raise ValueError("two advertisements carry the same public key")
    return peers


def deal(
    cfg: SecAggConfig,
    *,
    dealer: str,
    identity: Ed25519PrivateKey,
    encryption: X25519PrivateKey | KeyAgreement,
    seed: bytes,
    masking_secret: bytes,
    holders: Sequence[str],
    peers: Mapping[str, AdvertiseKeys],
    salts: Callable[[int], bytes] = os.urandom,
) -> tuple[tx.ShareBundle, tuple[EncryptedShares, ...], Dealing]:
    """Shares of ``seed`` and ``masking_secret`` for ``holders`` (the dealer included).

    Returns the dealer's own bundle (kept, never sent), one ciphertext per other
    holder, and the signed :class:`~accord.secagg.messages.Dealing`. ``salts``
    draws the commitments' salts (the OS CSPRNG; tests may seed it).
    """
    t, m = cfg.threshold, len(holders)
    seeds, secrets = split_secrets([seed, masking_secret], threshold=t, holders=m)
    bundles: list[tx.ShareBundle] = []
    commitments: list[bytes] = []
    g = tx.SALT_BYTES
    drawn = salts(2 * g * m)  # every salt in one draw from the CSPRNG
    if len(drawn) != 2 * g * m:
        raise ValueError("the salt source returned the wrong number of bytes")
    for i, (holder, seed_share, key_share) in enumerate(
        zip(holders, seeds, secrets, strict=True)
    ):
        index = seed_share.index
        bundle = tx.ShareBundle(
            index,
            seed_share.value,
            key_share.value,
            drawn[2 * g * i : 2 * g * i + g],
            drawn[2 * g * i + g : 2 * g * (i + 1)],
        )
        for kind in ShareKind:
            value, salt = bundle.share(kind)
            commitments.append(
                tx.share_commitment(cfg, kind, dealer, holder, index, value, salt)
            )
        bundles.append(bundle)
    listed = b"".join(commitments)
    dealing = Dealing(
        dealer,
        listed,
        sign(identity, tx.dealing_statement(cfg, dealer, holders, listed)),
    )
    own: tx.ShareBundle | None = None
    out: list[EncryptedShares] = []
    for holder, bundle in zip(holders, bundles, strict=True):
        if holder == dealer:
            own = bundle
            continue
        key = tx.share_encryption_key(
            cfg, encryption, peers[holder].encryption_key, dealer, holder
        )
        ad = tx.share_associated_data(cfg, dealer, holder)
        out.append(
            EncryptedShares(
                dealer, holder, seal(key, bundle.pack(), associated_data=ad)
            )
        )
    if own is None:
        raise ValueError("the dealer must be one of its own share holders")
    return own, tuple(out), dealing


def dealing_is_signed(
    cfg: SecAggConfig,
    dealing: Dealing,
    *,
    holders: Sequence[str],
    check: SignatureCheck = verify,
) -> bool:
    """True when ``dealing`` lists a commitment pair per holder and is signed."""
    if len(dealing.commitments) != 2 * tx.COMMITMENT_BYTES * len(holders):
        return False
    identity = cfg.identity_key(dealing.dealer)
    statement = tx.dealing_statement(cfg, dealing.dealer, holders, dealing.commitments)
    return check(identity, dealing.signature, statement)


def open_bundle(
    cfg: SecAggConfig,
    shares: EncryptedShares,
    *,
    encryption: X25519PrivateKey | KeyAgreement,
    dealer_keys: AdvertiseKeys,
    dealing: Dealing,
    expected_index: int,
) -> tx.ShareBundle:
    """Decrypt and check the bundle ``shares.dealer`` dealt to ``shares.holder``.

    ``dealing`` is the dealer's, its signature already checked
    (:func:`dealing_is_signed`).
    """
    dealer, holder = shares.dealer, shares.holder
    key = tx.share_encryption_key(
        cfg, encryption, dealer_keys.encryption_key, dealer, holder
    )
    ad = tx.share_associated_data(cfg, dealer, holder)
    try:
        bundle = tx.ShareBundle.unpack(
            open_sealed(key, shares.ciphertext, associated_data=ad)
        )
    except ValueError as exc:
        raise ValueError(f"its shares failed to decrypt ({exc})") from None
    if bundle.index != expected_index:
        raise ValueError(f"it dealt share index {bundle.index}, not {expected_index}")
    for kind in ShareKind:
        value, salt = bundle.share(kind)
        made = tx.share_commitment(cfg, kind, dealer, holder, bundle.index, value, salt)
        if made != tx.commitment_of(dealing.commitments, bundle.index, kind):
            raise ValueError(
                f"its {kind} share does not match the commitment it signed"
            )
    return bundle
