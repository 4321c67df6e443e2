"""The CA key's wrapping: scrypt parameters read back, tampering, and old files."""

import base64
import json
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from accord.errors import PkiError
from accord.transport import keywrap, pki

PASS = b"correct horse battery"


def _reseal_header(data: bytes, **kdf: object) -> bytes:
    doc = json.loads(data)
    doc["kdf"].update(kdf)
    return json.dumps(doc).encode()


def test_a_new_ca_key_states_owasp_scrypt_parameters(ca):
    data = (ca / pki.CA_KEY).read_bytes()

    params = keywrap.kdf_parameters(data)

    assert (params.name, params.n, params.r, params.p) == ("scrypt", 2**15, 8, 3)
    assert len(params.salt) == 16
    assert json.loads(data)["cipher"] == "AES-256-GCM"


def test_two_wraps_of_one_key_share_no_salt_or_nonce():
    key = ec.generate_private_key(ec.SECP256R1())

    first, second = (json.loads(keywrap.wrap(key, PASS)) for _ in range(2))

    assert first["kdf"]["salt"] != second["kdf"]["salt"]
    assert first["nonce"] != second["nonce"]


def test_lowering_the_work_factor_in_the_file_is_refused():
    data = keywrap.wrap(ec.generate_private_key(ec.SECP256R1()), PASS)

    with pytest.raises(PkiError, match="too weak"):
        keywrap.unwrap(_reseal_header(data, n=2**14), PASS)
    with pytest.raises(PkiError, match="too weak"):
        keywrap.unwrap(_reseal_header(data, p=2), PASS)
    # Still strong, but not what the ciphertext was sealed with: GCM's tag fails.
    with pytest.raises(PkiError, match="passphrase does not open"):
        keywrap.unwrap(_reseal_header(data, n=2**16, p=2), PASS)


def test_a_file_asking_for_more_than_a_gibibyte_is_refused_before_deriving():
    data = keywrap.wrap(ec.generate_private_key(ec.SECP256R1()), PASS)

    with pytest.raises(PkiError, match="over 1 GiB"):
        keywrap.unwrap(_reseal_header(data, n=2**21, r=8, p=1), PASS)


def test_a_tampered_ciphertext_is_refused():
    doc = json.loads(keywrap.wrap(ec.generate_private_key(ec.SECP256R1()), PASS))
    sealed = bytearray(base64.b64decode(doc["ciphertext"]))
    sealed[0] ^= 1
    doc["ciphertext"] = base64.b64encode(bytes(sealed)).decode()

    with pytest.raises(PkiError, match="passphrase does not open"):
        keywrap.unwrap(json.dumps(doc).encode(), PASS)


@pytest.mark.parametrize(
    "data", [b"", b"{}", b"not json", b'{"format": "accord-wrapped-key-v1"}']
)
def test_an_unreadable_key_file_is_a_clear_error(data):
    with pytest.raises(PkiError, match="the CA key"):
        keywrap.unwrap(data, PASS)


def test_a_ca_key_of_an_earlier_accord_opens_and_is_rewrapped_on_next_use(
    ca, enrol, clock
):
    # Arrange: the PKCS#8 (PBKDF2, 2,048 iterations) file an earlier accord wrote.
    key = keywrap.unwrap((ca / pki.CA_KEY).read_bytes(), PASS).key
    legacy = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASS),
    )
    (ca / pki.CA_KEY).write_bytes(legacy)
    assert keywrap.unwrap(legacy, PASS).legacy

    # Act: the next signature opens it.
    enrol("site-1", now=clock)

    # Assert: the same key, now under scrypt, still owner-only.
    data = (ca / pki.CA_KEY).read_bytes()
    assert keywrap.kdf_parameters(data).n == keywrap.SCRYPT_N
    reopened = keywrap.unwrap(data, PASS)
    assert not reopened.legacy
    assert reopened.key.private_numbers() == key.private_numbers()
    assert stat.S_IMODE((ca / pki.CA_KEY).stat().st_mode) == 0o600


def test_a_wrong_passphrase_leaves_an_old_key_file_untouched(ca):
    key = keywrap.unwrap((ca / pki.CA_KEY).read_bytes(), PASS).key
    legacy = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASS),
    )
    (ca / pki.CA_KEY).write_bytes(legacy)

    with pytest.raises(PkiError, match="passphrase does not open"):
        pki.revoke(ca, "nobody", passphrase=b"wrong passphrase!")

    assert (ca / pki.CA_KEY).read_bytes() == legacy
