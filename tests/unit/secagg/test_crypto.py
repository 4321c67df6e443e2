from __future__ import annotations

import numpy as np
import pytest

from accord.secagg import crypto
from accord.secagg.crypto import Ed25519PrivateKey


def test_frame_is_unambiguous():
    # Arrange / Act: the same bytes split differently must frame differently
    a = crypto.frame(b"ab", b"c")
    b = crypto.frame(b"a", b"bc")
    # Assert
    assert a != b
    assert crypto.frame("x", 1) != crypto.frame("x", 2)
    assert crypto.frame("x").startswith(len(crypto.PROTOCOL).to_bytes(4, "big"))


def test_frame_encodes_each_kind_of_field_and_extends_a_frame():
    parts = ("label", 7, -1, True, b"\x00raw", bytearray(b"ba"), memoryview(b"mv"), "é")
    expected = crypto.frame()
    for part in parts:
        if isinstance(part, str):
            raw = part.encode()
        elif isinstance(part, int):
            raw = part.to_bytes(8, "big", signed=True)
        else:
            raw = bytes(part)
        expected += len(raw).to_bytes(4, "big") + raw
    assert crypto.frame(*parts) == expected
    for cut in range(len(parts) + 1):
        head = crypto.frame(*parts[:cut])
        assert crypto.extend_frame(head, *parts[cut:]) == expected


def test_x25519_agreement_is_symmetric():
    a, a_pub = crypto.generate_x25519()
    b, b_pub = crypto.generate_x25519()
    assert crypto.agree(a, b_pub) == crypto.agree(b, a_pub)
    assert crypto.agree(a.private_bytes_raw(), b_pub) == crypto.agree(b, a_pub)
    assert crypto.x25519_public(a.private_bytes_raw()) == a_pub


def test_low_order_peer_key_is_refused():
    a, _ = crypto.generate_x25519()
    with pytest.raises(ValueError):
        crypto.agree(a, bytes(32))
    with pytest.raises(ValueError):
        crypto.agree(a, bytes(31))


def test_derived_keys_are_separated_by_purpose_and_context():
    secret = b"s" * 32
    k1 = crypto.derive_key(secret, purpose="pairwise-mask", context=b"r1")
    k2 = crypto.derive_key(secret, purpose="self-mask", context=b"r1")
    k3 = crypto.derive_key(secret, purpose="pairwise-mask", context=b"r2")
    assert len({k1, k2, k3}) == 3
    assert all(len(k) == 32 for k in (k1, k2, k3))
    assert k1 == crypto.derive_key(secret, purpose="pairwise-mask", context=b"r1")


def test_seal_binds_associated_data_and_detects_tampering():
    key = crypto.random_secret()
    sealed = crypto.seal(key, b"share", associated_data=b"a->b round 1")
    assert crypto.open_sealed(key, sealed, associated_data=b"a->b round 1") == b"share"
    with pytest.raises(ValueError, match="authentication"):
        crypto.open_sealed(key, sealed, associated_data=b"a->b round 2")
    flipped = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(ValueError, match="authentication"):
        crypto.open_sealed(key, flipped, associated_data=b"a->b round 1")
    with pytest.raises(ValueError):
        crypto.open_sealed(key, b"short", associated_data=b"")


def test_signatures_verify_only_the_signed_payload():
    identity = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    public = crypto.identity_public(identity)
    sig = crypto.sign(identity, b"payload")
    assert crypto.verify(public, sig, b"payload")
    assert not crypto.verify(public, sig, b"payload!")
    assert not crypto.verify(public, sig[:-1], b"payload")
    assert not crypto.verify(public[:-1], sig, b"payload")


def test_a_key_agreement_agrees_once_per_peer_and_matches_agree():
    # Arrange: a private key that counts its exchanges
    real, _ = crypto.generate_x25519()
    calls = []

    class Counting:
        def exchange(self, peer):
            calls.append(peer)
            return real.exchange(peer)

        def public_key(self):
            return real.public_key()

    pair = crypto.KeyAgreement(Counting())
    _, b_pub = crypto.generate_x25519()
    _, c_pub = crypto.generate_x25519()
    # Act
    first = pair.agree(b_pub)
    again = pair.agree(b_pub)
    other = pair.agree(c_pub)
    # Assert
    assert first == again == crypto.agree(real, b_pub)
    assert other == crypto.agree(real, c_pub) != first
    assert len(calls) == 2
    assert crypto.agree(pair, b_pub) == first and len(calls) == 2
    assert pair.public_bytes() == real.public_key().public_bytes_raw()
    pair.forget()
    assert pair.agree(b_pub) == first and len(calls) == 3
    with pytest.raises(ValueError):
        pair.agree(bytes(32))  # a low-order key is refused, and not remembered
    with pytest.raises(ValueError):
        pair.agree(bytes(32))


def test_a_verifier_verifies_each_valid_signature_once():
    key = Ed25519PrivateKey.generate()
    public = crypto.identity_public(key)
    good = crypto.sign(key, b"payload")
    verifier = crypto.Verifier()
    assert verifier(public, good, b"payload")
    assert verifier(public, good, b"payload")
    assert verifier.verifications == 1
    # Anything else is verified, and an invalid triple is never remembered
    assert not verifier(public, good, b"payloaD")
    assert not verifier(public, good, b"payloaD")
    assert not verifier(public, good[:-1] + bytes([good[-1] ^ 1]), b"payload")
    assert verifier.verifications == 4
    other = crypto.identity_public(Ed25519PrivateKey.generate())
    assert not verifier(other, good, b"payload")
    # Wrong lengths are invalid without a verification
    assert not verifier(public[:31], good, b"payload")
    assert not verifier(public, good[:63], b"payload")
    assert verifier.verifications == 5


def test_a_verifier_stays_within_its_capacity():
    key = Ed25519PrivateKey.generate()
    public = crypto.identity_public(key)
    verifier = crypto.Verifier(capacity=2)
    payloads = [bytes([i]) for i in range(3)]
    sigs = [crypto.sign(key, p) for p in payloads]
    for p, s in zip(payloads, sigs, strict=True):
        assert verifier(public, s, p)
    assert verifier(public, sigs[2], payloads[2])  # the newest is remembered
    assert verifier.verifications == 3
    assert verifier(public, sigs[0], payloads[0])  # the oldest was forgotten
    assert verifier.verifications == 4
    with pytest.raises(ValueError):
        crypto.Verifier(capacity=0)


def test_hkdf_is_rfc_5869_test_case_3():
    # RFC 5869 A.3: SHA-256, IKM = 22 bytes of 0x0b, no salt, no info; the first
    # 32 bytes of its 42-byte OKM.
    okm = crypto.hkdf_sha256(bytes([0x0B] * 22), b"")
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
    )


def test_derive_key_is_cryptographys_hkdf_byte_for_byte():
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    rng = np.random.default_rng(11)
    for size in (16, 32, 33, 64, 65, 200):
        secret = rng.bytes(size)
        context = crypto.frame("run", 4, "a", "b")
        expected = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=crypto.frame("hkdf", "pairwise-mask", context),
        ).derive(secret)
        got = crypto.derive_key(secret, purpose="pairwise-mask", context=context)
        assert got == expected
