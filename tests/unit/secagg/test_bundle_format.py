"""Bundle format 3 (F_p shares with salts): older bundles are refused by name.

Format 1 bundles (GF(2^128), 16-byte shares, no format byte) and format 2 bundles
(a signature on each share) come from an older accord; every place that reads a
share refuses them with a message naming the format, and nothing of the round
changes.
"""

from __future__ import annotations

import dataclasses
import os

import pytest

from accord.errors import ShareRejected, SubmissionRefused
from accord.secagg import transcript as tx
from accord.secagg.crypto import SEAL_OVERHEAD, seal
from accord.secagg.messages import ShareKind
from accord.secagg.shamir import PRIME, SHARE_BYTES, SHARE_FORMAT


def _bundle(**changes: object) -> tx.ShareBundle:
    base = tx.ShareBundle(
        3, bytes(SHARE_BYTES), b"\x01" * SHARE_BYTES, b"s" * 16, b"m" * 16
    )
    return dataclasses.replace(base, **changes)


def test_a_bundle_round_trips_with_its_format_byte():
    bundle = _bundle()
    raw = bundle.pack()
    assert len(raw) == tx.BUNDLE_BYTES == 1 + 2 + 2 * SHARE_BYTES + 2 * 16
    assert raw[0] == tx.BUNDLE_FORMAT == 3
    assert tx.ShareBundle.unpack(raw) == bundle


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (bytes(tx.FORMAT_1_BUNDLE_BYTES), "bundle format 1"),
        (bytes(tx.FORMAT_2_BUNDLE_BYTES), "bundle format 2"),
        (bytes([tx.BUNDLE_FORMAT + 1]) + bytes(tx.BUNDLE_BYTES - 1), "format 4"),
        (bytes([2]) + bytes(tx.BUNDLE_BYTES - 1), "bundle format 2"),
        (bytes(tx.BUNDLE_BYTES - 1), "bytes"),
        (bytes(tx.BUNDLE_BYTES + 1), "bytes"),
    ],
)
def test_a_bundle_of_another_format_or_size_is_refused(raw, match):
    with pytest.raises(ValueError, match=match):
        tx.ShareBundle.unpack(raw)


def test_a_bundle_with_a_value_past_the_field_is_refused():
    raw = _bundle(mask_key=PRIME.to_bytes(SHARE_BYTES, "big")).pack()
    with pytest.raises(ValueError, match="not a field element"):
        tx.ShareBundle.unpack(raw)


def test_the_signed_dealing_names_both_formats(kit):
    cfg = kit.make_config(kit.make_identities(3), 4)
    statement = tx.dealing_statement(cfg, "site00", ["site00", "site01"], bytes(128))
    assert tx.BUNDLE_FORMAT.to_bytes(8, "big") in statement
    assert SHARE_FORMAT.to_bytes(8, "big") in statement


def test_a_commitment_binds_every_field_and_its_salt(kit):
    cfg = kit.make_config(kit.make_identities(3), 4)
    base = (ShareKind.SELF_MASK, "site00", "site01", 1, bytes(SHARE_BYTES), bytes(16))
    made = tx.share_commitment(cfg, *base)
    assert len(made) == tx.COMMITMENT_BYTES
    for i, other in enumerate(
        (ShareKind.MASK_KEY, "site02", "site02", 2, b"\x01" * SHARE_BYTES, b"\x01" * 16)
    ):
        changed = list(base)
        changed[i] = other
        assert tx.share_commitment(cfg, *changed) != made


@pytest.mark.parametrize(
    ("size", "match"),
    [
        (tx.FORMAT_1_BUNDLE_BYTES, "bundle format 1"),
        (tx.FORMAT_2_BUNDLE_BYTES, "bundle format 2"),
    ],
)
def test_the_coordinator_refuses_older_share_ciphertexts(harness, size, match):
    directory = harness.advertise()
    message = harness.parts["site00"].share_keys(directory)
    old = size + SEAL_OVERHEAD
    forged = dataclasses.replace(
        message,
        shares=tuple(
            dataclasses.replace(s, ciphertext=os.urandom(old)) for s in message.shares
        ),
    )
    with pytest.raises(SubmissionRefused, match=match) as info:
        harness.server.receive(forged)
    assert info.value.kind == "malformed"
    harness.server.receive(message)  # the state is untouched: the real one fits


@pytest.mark.parametrize(
    "size", [tx.FORMAT_1_BUNDLE_BYTES, tx.FORMAT_2_BUNDLE_BYTES], ids=["f1", "f2"]
)
def test_a_holder_refuses_an_older_bundle_and_names_its_dealer(harness, size):
    # Arrange: site01 seals a format-1 plaintext for site00 under the right key
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
    old = seal(key, bytes(size), associated_data=ad)
    inbox = deliveries["site00"]
    shares = tuple(
        dataclasses.replace(s, ciphertext=old) if s.dealer == "site01" else s
        for s in inbox.shares
    )
    # Act / Assert
    with pytest.raises(ShareRejected, match="bundle format") as info:
        holder.masked_input(
            dataclasses.replace(inbox, shares=shares), harness.inputs["site00"]
        )
    assert info.value.offender == "site01"


def test_the_coordinator_refuses_a_revealed_format_1_share(harness):
    signed = harness.consistency(harness.masked(harness.share(harness.advertise())))
    message = harness.parts["site02"].unmask(signed)
    old = dataclasses.replace(
        message,
        shares=(
            dataclasses.replace(message.shares[0], value=bytes(16)),
            *message.shares[1:],
        ),
    )
    with pytest.raises(SubmissionRefused, match="share format 1") as info:
        harness.server.receive(old)
    assert info.value.kind == "corrupt"
    harness.server.receive(message)


def test_commitments_and_dealing_statements_are_the_documented_frames(kit):
    # The shared fields are framed once and the statements remembered; the bytes
    # must stay exactly those of the one-call formulas (what dealers signed).
    from accord.secagg.crypto import digest, frame

    cfg = kit.make_config(kit.make_identities(3), 4)
    for kind in ShareKind:
        for holder, index in (("site01", 2), ("site02", 3)):
            value, salt = os.urandom(SHARE_BYTES), os.urandom(16)
            expected = digest(
                "share-commitment",
                tx.BUNDLE_FORMAT,
                SHARE_FORMAT,
                cfg.run_id,
                cfg.round_number,
                str(kind),
                "site00",
                holder,
                index,
                value,
                salt,
            )
            got = tx.share_commitment(cfg, kind, "site00", holder, index, value, salt)
            assert got == expected
    holders = ["site00", "site01", "site02"]
    listed = os.urandom(2 * tx.COMMITMENT_BYTES * 3)
    for _ in range(2):  # computed, then remembered
        assert tx.dealing_statement(cfg, "site00", holders, listed) == frame(
            "dealing",
            tx.BUNDLE_FORMAT,
            SHARE_FORMAT,
            cfg.run_id,
            cfg.round_number,
            "site00",
            3,
            *holders,
            listed,
        )
    other = bytes([listed[0] ^ 1]) + listed[1:]
    assert tx.dealing_statement(cfg, "site00", holders, other) != (
        tx.dealing_statement(cfg, "site00", holders, listed)
    )
