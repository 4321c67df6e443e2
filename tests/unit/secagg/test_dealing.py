"""One signed list of salted commitments per dealer (bundle format 3).

The dealer signs once; every check a per-share signature made is still made:
the coordinator refuses an unsigned dealing, a holder refuses a share that does not
match what its dealer signed (blaming the dealer) and aborts when the coordinator
relays a dealing the dealer did not sign (blaming no dealer), and a revealed share
that does not match its commitment is attributed to the holder that revealed it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from accord.errors import SecAggAborted, ShareRejected, SubmissionRefused
from accord.secagg import transcript as tx
from accord.secagg.crypto import open_sealed, seal
from accord.secagg.shamir import SHARE_BYTES


def _flip(raw: bytes, at: int = 0) -> bytes:
    return raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1 :]


@pytest.mark.parametrize(
    "change",
    [
        lambda d: dataclasses.replace(d, signature=_flip(d.signature)),
        lambda d: dataclasses.replace(d, commitments=_flip(d.commitments, 40)),
        lambda d: dataclasses.replace(d, commitments=d.commitments[:-32]),
        lambda d: dataclasses.replace(d, commitments=d.commitments + bytes(32)),
        lambda d: dataclasses.replace(d, dealer="site01"),
    ],
    ids=["signature", "a-commitment", "one-short", "one-over", "other-dealer"],
)
def test_the_coordinator_refuses_a_dealing_its_dealer_did_not_sign(harness, change):
    directory = harness.advertise()
    message = harness.parts["site00"].share_keys(directory)
    forged = dataclasses.replace(message, dealing=change(message.dealing))
    with pytest.raises(SubmissionRefused, match="not signed by the dealer") as info:
        harness.server.receive(forged)
    assert info.value.kind == "corrupt"
    harness.server.receive(message)  # the state is untouched: the real one fits


def test_the_dealing_lists_one_commitment_pair_per_holder_in_index_order(harness):
    directory = harness.advertise()
    message = harness.parts["site00"].share_keys(directory)
    holders = harness.config.graph().holders(
        "site00", alive=frozenset(a.sender for a in directory.keys)
    )
    assert len(message.dealing.commitments) == 2 * tx.COMMITMENT_BYTES * len(holders)


def test_a_dealing_altered_on_its_way_aborts_the_holder_and_blames_no_dealer(harness):
    deliveries = harness.share(harness.advertise())
    inbox = deliveries["site00"]
    altered = tuple(
        dataclasses.replace(d, commitments=_flip(d.commitments, 5))
        if d.dealer == "site01"
        else d
        for d in inbox.dealings
    )
    match = "without the commitments it signed"
    with pytest.raises(SecAggAborted, match=match) as info:
        harness.parts["site00"].masked_input(
            dataclasses.replace(inbox, dealings=altered), harness.inputs["site00"]
        )
    assert not isinstance(info.value, ShareRejected)
    assert harness.parts["site00"].stage == "aborted"


@pytest.mark.parametrize("how", ["missing", "twice"])
def test_a_delivery_without_exactly_one_dealing_per_dealer_aborts(harness, how):
    deliveries = harness.share(harness.advertise())
    inbox = deliveries["site00"]
    if how == "missing":
        dealings = tuple(d for d in inbox.dealings if d.dealer != "site02")
        match = "without the commitments"
    else:
        dealings = (*inbox.dealings, inbox.dealings[0])
        match = "two dealings"
    with pytest.raises(SecAggAborted, match=match):
        harness.parts["site00"].masked_input(
            dataclasses.replace(inbox, dealings=dealings), harness.inputs["site00"]
        )


def test_a_share_that_does_not_match_its_signed_commitment_blames_the_dealer(harness):
    # Arrange: site01 seals for site00 its real shares with another salt: the
    # ciphertext is authentic (only site01 and site00 hold the pair key), but the
    # share no longer matches the commitment site01 signed.
    directory = harness.advertise()
    deliveries = harness.share(directory)
    dealer, holder = harness.parts["site01"], harness.parts["site00"]
    key = tx.share_encryption_key(
        harness.config,
        dealer._encryption,
        holder._advert.encryption_key,
        "site01",
        "site00",
    )
    ad = tx.share_associated_data(harness.config, "site01", "site00")
    inbox = deliveries["site00"]
    (real,) = [s for s in inbox.shares if s.dealer == "site01"]
    plain = open_sealed(key, real.ciphertext, associated_data=ad)
    bundle = tx.ShareBundle.unpack(plain)
    other = dataclasses.replace(bundle, mask_key_salt=_flip(bundle.mask_key_salt))
    resealed = dataclasses.replace(
        real, ciphertext=seal(key, other.pack(), associated_data=ad)
    )
    shares = tuple(resealed if s is real else s for s in inbox.shares)
    # Act / Assert
    with pytest.raises(ShareRejected, match="does not match the commitment") as info:
        holder.masked_input(
            dataclasses.replace(inbox, shares=shares), harness.inputs["site00"]
        )
    assert info.value.offender == "site01"
    assert info.value.detected_by == "site00"


@pytest.mark.parametrize("forge_value", [True, False], ids=["value+salt", "salt"])
def test_a_share_revealed_with_another_salt(make_harness, forge_value):
    h = make_harness(n=6, threshold=4)
    signed = h.consistency(h.masked(h.share(h.advertise())))
    for p in h.parts:
        msg = h.parts[p].unmask(signed)
        if p == "site03":  # among the first four holders the batch combines
            forged = [
                dataclasses.replace(
                    s,
                    salt=_flip(s.salt),
                    value=bytes(SHARE_BYTES) if forge_value else s.value,
                )
                if s.dealer == "site01"
                else s
                for s in msg.shares
            ]
            msg = dataclasses.replace(msg, shares=tuple(forged))
        h.server.receive(msg)
    result = h.server.aggregate()
    np.testing.assert_array_equal(result.total, h.expected(h.parts))
    # A forged value fails the rebuild, then its commitment: site03 is named. A
    # right value under a wrong salt rebuilds the committed seed, so nothing needs
    # checking and nobody is blamed (the sum is right either way).
    assert result.offenders == (("site03",) if forge_value else ())


@pytest.mark.parametrize("size", [0, tx.SALT_BYTES - 1, tx.SALT_BYTES + 1, 64])
def test_a_revealed_share_with_a_salt_of_another_size_is_refused(harness, size):
    signed = harness.consistency(harness.masked(harness.share(harness.advertise())))
    message = harness.parts["site01"].unmask(signed)
    bad = dataclasses.replace(
        message,
        shares=(
            dataclasses.replace(message.shares[0], salt=bytes(size)),
            *message.shares[1:],
        ),
    )
    with pytest.raises(SubmissionRefused, match="salt") as info:
        harness.server.receive(bad)
    assert info.value.kind == "malformed"
    harness.server.receive(message)


def test_every_share_gets_its_own_salt_from_one_draw(kit):
    # Arrange: a salt source that records its calls
    from accord.secagg.crypto import generate_x25519
    from accord.secagg.dealing import deal
    from accord.secagg.participant import SecAggParticipant

    identities = kit.make_identities(5)
    cfg = kit.make_config(identities, 8)
    parts = {p: SecAggParticipant(cfg, p, k) for p, k in identities.items()}
    adverts = {p: part.advertise() for p, part in parts.items()}
    holders = list(cfg.participants)
    calls: list[int] = []
    rng = np.random.default_rng(5)

    def salts(n: int) -> bytes:
        calls.append(n)
        return rng.bytes(n)

    # Act
    own, sealed, dealing = deal(
        cfg,
        dealer=holders[0],
        identity=identities[holders[0]],
        encryption=generate_x25519()[0],
        seed=bytes(16),
        masking_secret=bytes(range(16)),
        holders=holders,
        peers=adverts,
        salts=salts,
    )
    # Assert: one call for all 2 m salts, each used once
    assert calls == [2 * tx.SALT_BYTES * len(holders)]
    assert own.self_mask_salt != own.mask_key_salt
    assert len(sealed) == len(holders) - 1
    with pytest.raises(ValueError, match="wrong number"):
        deal(
            cfg,
            dealer=holders[0],
            identity=identities[holders[0]],
            encryption=generate_x25519()[0],
            seed=bytes(16),
            masking_secret=bytes(16),
            holders=holders,
            peers=adverts,
            salts=lambda n: bytes(n - 1),
        )
