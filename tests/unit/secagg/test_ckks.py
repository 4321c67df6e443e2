"""CKKS secure aggregation: exact enough, key-separated, and strict on arrival.

Error bound: one upload decrypts with an absolute error of RMS 1.9e-10 per value
(max 8.7e-10 over 82k values, measured with TenSEAL 0.3.18 at the default
parameters), whatever the values' magnitude; a sum of n uploads adds n independent
errors. The tests assert ``2e-9 * sqrt(n)``, about ten times the RMS.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ts = pytest.importorskip("tenseal")

from accord.errors import ConfigError, SecAggAborted, SubmissionRefused  # noqa: E402
from accord.secagg.ckks import (  # noqa: E402
    CkksAggregator,
    CkksParticipant,
    decrypt_sum,
)
from accord.secagg.ckks_keys import CkksParams, KeyHolder, load_context  # noqa: E402

SIZE = 10


def error_bound(n: int) -> float:
    return 2e-9 * np.sqrt(n)


@pytest.fixture(scope="module")
def keys() -> KeyHolder:
    return KeyHolder.create()


@pytest.fixture(scope="module")
def participant(keys: KeyHolder) -> CkksParticipant:
    return CkksParticipant(keys.secret_context)


def updates(n: int, size: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    values = [rng.normal(0.0, 1.0, size).astype(np.float32) for _ in range(n)]
    return values, rng.uniform(1.0, 1000.0, n)


def with_key_id(blob: bytes, key_id: bytes) -> bytes:
    """``blob`` relabelled as if made under ``key_id`` (header: 4s B 16s I)."""
    return blob[:5] + key_id + blob[21:]


# -- correctness ---------------------------------------------------------------


@pytest.mark.parametrize(("size", "n"), [(1, 3), (4095, 2), (4097, 20), (50_000, 4)])
def test_the_decrypted_sum_matches_the_plain_sum(keys, participant, size, n):
    # Arrange
    values, weights = updates(n, size, seed=size)
    aggregator = CkksAggregator(keys.public_context, size)
    # Act
    for i, (x, w) in enumerate(zip(values, weights, strict=True)):
        aggregator.add(f"site{i}", participant.encrypt(x, float(w)))
    sum_wx, sum_w = decrypt_sum(keys.secret_context, aggregator.result(), size)
    # Assert
    plain = sum(w * x.astype(np.float64) for x, w in zip(values, weights, strict=True))
    assert sum_wx.dtype == np.float64 and sum_wx.shape == (size,)
    assert np.abs(sum_wx - plain).max() < error_bound(n)
    assert abs(sum_w - weights.sum()) < error_bound(n)
    mean_error = np.abs(sum_wx / sum_w - plain / weights.sum()).max()
    assert mean_error < error_bound(n) / weights.sum()


@settings(max_examples=25)
@given(
    n=st.integers(1, 8),
    size=st.integers(1, 300),
    magnitude=st.sampled_from([1e-3, 1.0, 1e3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_error_bound_holds_whatever_the_magnitude(
    keys, participant, n, size, magnitude, seed
):
    rng = np.random.default_rng(seed)
    values = [rng.uniform(-magnitude, magnitude, size) for _ in range(n)]
    weights = rng.uniform(0.0, 1000.0, n)
    aggregator = CkksAggregator(keys.public_context, size)

    for i, (x, w) in enumerate(zip(values, weights, strict=True)):
        aggregator.add(f"site{i}", participant.encrypt(x, float(w)))
    sum_wx, sum_w = decrypt_sum(keys.secret_context, aggregator.result(), size)

    plain = sum(w * x for x, w in zip(values, weights, strict=True))
    assert np.abs(sum_wx - plain).max() < error_bound(n)
    assert abs(sum_w - weights.sum()) < error_bound(n)


def test_any_participant_can_decrypt_the_sum(keys):
    values, weights = updates(2, SIZE, seed=1)
    aggregator = CkksAggregator(keys.public_context, SIZE)
    for i in range(2):
        upload = CkksParticipant(keys.secret_context).encrypt(values[i], weights[i])
        aggregator.add(f"site{i}", upload)

    total, _ = decrypt_sum(keys.secret_context, aggregator.result(), SIZE)

    assert np.allclose(total, weights[0] * values[0] + weights[1] * values[1])


def test_chunks_cover_the_update_and_its_weight():
    params = CkksParams()

    assert params.slots == 4096
    assert params.chunk_sizes(4095) == [4096]
    assert params.chunk_sizes(4096) == [4096, 1]
    assert sum(params.chunk_sizes(50_000)) == 50_001


# -- key separation ------------------------------------------------------------


def test_the_coordinators_context_holds_no_key_and_cannot_decrypt(keys, participant):
    # Arrange: the coordinator's context, and one ciphertext of an upload
    public = load_context(keys.public_context, secret=False)
    upload = participant.encrypt(np.ones(SIZE), 1.0)
    (length,) = struct.unpack_from(">I", upload, 25)
    chunk = upload[29 : 29 + length]
    # Act / Assert
    assert not public.context.has_secret_key()
    vector = ts.ckks_vector_from(public.context, chunk)
    with pytest.raises(ValueError, match="secret_key"):
        vector.decrypt()


def test_each_side_refuses_the_other_sides_context(keys):
    with pytest.raises(ConfigError, match="public CKKS context"):
        CkksParticipant(keys.public_context)
    with pytest.raises(ConfigError, match="public CKKS context"):
        decrypt_sum(keys.public_context, b"", SIZE)
    with pytest.raises(ConfigError, match="only the public context"):
        CkksAggregator(keys.secret_context, SIZE)


def test_a_forged_header_does_not_give_the_coordinator_a_secret_key(keys):
    # the secret context relabelled "public" still carries the key: refused
    forged = keys.secret_context[:5] + b"P" + keys.secret_context[6:]

    with pytest.raises(ConfigError, match="carries the secret key"):
        CkksAggregator(forged, SIZE)


def test_the_repr_shows_no_key_material(keys):
    assert "secret_context" not in repr(keys)
    assert "public_context" not in repr(keys)


def test_unusable_contexts_are_config_errors():
    with pytest.raises(ConfigError):
        load_context(b"ACKC\x01S" + bytes(16) + b"junk", secret=True)
    with pytest.raises(ConfigError):
        load_context(b"not a context at all, not at all", secret=False)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"poly_modulus_degree": 6000},
        {"coeff_mod_bit_sizes": (60,)},
        {"coeff_mod_bit_sizes": (60, 70, 60)},
        {"scale_bits": 5},
        {"scale_bits": 135},
    ],
)
def test_invalid_params_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        CkksParams(**kwargs)


def test_insecure_params_are_refused_by_seal():
    with pytest.raises(ConfigError, match="SEAL refused"):
        KeyHolder.create(CkksParams(4096, (60, 60, 60)))


# -- refusals ------------------------------------------------------------------


@pytest.fixture
def started(keys, participant):
    """An aggregator holding one upload, and the sum it should keep."""
    aggregator = CkksAggregator(keys.public_context, SIZE, roster={"a", "b", "c"})
    aggregator.add("a", participant.encrypt(np.arange(SIZE, dtype=np.float64), 2.0))
    return aggregator, aggregator.result()


def bad_uploads(keys, participant):
    good = participant.encrypt(np.ones(SIZE), 1.0)
    other = KeyHolder.create()
    scaled = KeyHolder.create(CkksParams(scale_bits=30))
    small = KeyHolder.create(CkksParams(4096, (40, 20, 40), scale_bits=20))
    tail = struct.pack(">I", 3) + b"abc"
    garbled = bytearray(good)
    garbled[40:60] = bytes(20)
    return {
        "empty": (b"", "malformed"),
        "junk": (b"\x00" * 64, "malformed"),
        "truncated": (good[:-100], "malformed"),
        "stray byte": (good + b"\x00", "malformed"),
        "garbled ciphertext": (bytes(garbled), "malformed"),
        "another vector size": (
            participant.encrypt(np.ones(5000), 1.0),
            "mismatch",
        ),
        "one value too many": (participant.encrypt(np.ones(SIZE + 1), 1.0), "mismatch"),
        "an extra chunk": (
            good[:21] + struct.pack(">I", 2) + good[25:] + tail,
            "mismatch",
        ),
        "too large": (good + bytes(10_000_000), "too_large"),
        "foreign key": (
            CkksParticipant(other.secret_context).encrypt(np.ones(SIZE), 1.0),
            "mismatch",
        ),
        "foreign key relabelled, other scale": (
            with_key_id(
                CkksParticipant(scaled.secret_context).encrypt(np.ones(SIZE), 1.0),
                keys.key_id,
            ),
            "mismatch",
        ),
        "foreign key relabelled, other ring": (
            with_key_id(
                CkksParticipant(small.secret_context).encrypt(np.ones(SIZE), 1.0),
                keys.key_id,
            ),
            "malformed",
        ),
    }


def test_bad_uploads_are_refused_and_leave_the_sum_unchanged(
    keys, participant, started
):
    aggregator, before = started
    for name, (blob, kind) in bad_uploads(keys, participant).items():
        with pytest.raises(SubmissionRefused) as caught:
            aggregator.add("b", blob)

        assert caught.value.kind == kind, name
        assert caught.value.participant == "b"
        assert aggregator.result() == before, name
        assert aggregator.participants == {"a"}, name


def test_refusals_say_what_went_wrong(keys, participant, started):
    aggregator, _ = started
    other = KeyHolder.create()
    foreign = CkksParticipant(other.secret_context).encrypt(np.ones(SIZE), 1.0)

    with pytest.raises(SubmissionRefused, match="another key.*key holder"):
        aggregator.add("b", foreign)
    with pytest.raises(SubmissionRefused, match="2 ciphertext.*1 are expected"):
        aggregator.add("b", participant.encrypt(np.ones(5000), 1.0))


def test_a_second_upload_is_refused(participant, started):
    aggregator, before = started

    with pytest.raises(SubmissionRefused) as caught:
        aggregator.add("a", participant.encrypt(np.ones(SIZE), 1.0))

    assert caught.value.kind == "duplicate"
    assert aggregator.result() == before


def test_uploads_from_off_the_roster_are_refused(participant, started):
    aggregator, before = started

    with pytest.raises(SubmissionRefused) as caught:
        aggregator.add("mallory", participant.encrypt(np.ones(SIZE), 1.0))

    assert caught.value.kind == "forbidden"
    assert aggregator.result() == before


def test_a_refused_participant_may_send_again(keys, participant, started):
    aggregator, _ = started
    with pytest.raises(SubmissionRefused):
        aggregator.add("b", b"garbage")

    aggregator.add("b", participant.encrypt(np.ones(SIZE), 3.0))
    total, weight = decrypt_sum(keys.secret_context, aggregator.result(), SIZE)

    assert np.allclose(total, 2.0 * np.arange(SIZE) + 3.0)
    assert weight == pytest.approx(5.0)


def test_an_empty_sum_releases_nothing(keys):
    with pytest.raises(SecAggAborted, match="no upload"):
        CkksAggregator(keys.public_context, SIZE).result()


def test_decryption_refuses_a_sum_of_another_shape_or_key(keys, started):
    _, blob = started
    other = KeyHolder.create()

    with pytest.raises(SecAggAborted, match="decrypt"):
        decrypt_sum(keys.secret_context, blob, 5000)
    with pytest.raises(SecAggAborted, match="another key"):
        decrypt_sum(other.secret_context, blob, SIZE)
    with pytest.raises(ValueError, match="vector_size"):
        decrypt_sum(keys.secret_context, blob, 0)


def test_an_aggregator_needs_a_vector(keys):
    with pytest.raises(ValueError, match="vector_size"):
        CkksAggregator(keys.public_context, 0)


@pytest.mark.parametrize(
    ("values", "weight", "match"),
    [
        (np.array([1.0, np.nan]), 1.0, "NaN"),
        (np.ones(3), -1.0, "weight"),
        (np.ones(3), float("inf"), "weight"),
        (np.ones((2, 2)), 1.0, "1-D"),
        (np.array([], dtype=np.float64), 1.0, "1-D"),
        (np.array([1e30]), 1.0, "exceeds"),
    ],
)
def test_unfit_updates_are_not_encrypted(participant, values, weight, match):
    with pytest.raises(ValueError, match=match):
        participant.encrypt(values, weight)
