"""DSSE envelopes: the specification's encoding, signatures, strict parsing."""

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from accord.errors import LedgerError
from accord.ledger.dsse import (
    MAX_ENVELOPE_BYTES,
    Envelope,
    KeySigner,
    key_id,
    pae,
    verify_signature,
)


def test_pae_matches_the_specification_test_vector():
    # DSSE protocol.md: "DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters():
    assert pae("t\u00e9", b"x") == b"DSSEv1 3 t\xc3\xa9 1 x"


@pytest.mark.parametrize(
    "key", [Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())]
)
def test_signed_envelope_round_trips_and_verifies(key):
    signer = KeySigner(key, key_id(key.public_key()))

    env = Envelope.signed("application/x-test", b'{"a":1}', signer)
    back = Envelope.from_json(env.to_json())

    assert back == env
    assert back.digest() == env.digest()
    assert verify_signature(key.public_key(), back.pae(), back.signatures[0].sig)
    assert not verify_signature(
        key.public_key(), pae("application/x-other", b'{"a":1}'), back.signatures[0].sig
    )


def test_p384_keys_are_refused_for_signing():
    key = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(LedgerError, match="secp384r1"):
        Envelope.signed("t", b"x", KeySigner(key, "k"))


def _doc(**change):
    doc = {
        "payload": "eA==",
        "payloadType": "t",
        "signatures": [{"keyid": "k", "sig": "eA=="}],
    }
    doc.update(change)
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("not json", "not JSON"),
        ("[]", "exactly payload"),
        (_doc(extra=1), "exactly payload"),
        (_doc(payload="***"), "payload is not base64"),
        (_doc(signatures=[]), "1 to 16 signatures"),
        (_doc(signatures=[{"keyid": "k", "sig": "eA=="}] * 17), "1 to 16 signatures"),
        (_doc(signatures=[{"keyid": 1, "sig": "eA=="}]), "keyid and sig"),
        (_doc(payloadType=3), "must be strings"),
    ],
)
def test_malformed_envelopes_are_refused_naming_the_fault(text, why):
    with pytest.raises(LedgerError, match=why):
        Envelope.from_json(text)


def test_sixteen_signatures_are_accepted():
    env = Envelope.from_json(_doc(signatures=[{"keyid": "k", "sig": "eA=="}] * 16))
    assert len(env.signatures) == 16


def test_an_envelope_past_the_size_bound_is_refused_before_parsing():
    payload = base64.b64encode(b"x" * MAX_ENVELOPE_BYTES).decode()
    with pytest.raises(LedgerError, match="larger than"):
        Envelope.from_json(_doc(payload=payload))
