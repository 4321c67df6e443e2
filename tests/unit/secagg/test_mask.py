from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from accord.secagg.mask import MaskGenerator

KEY = bytes(range(32))


def test_mask_is_the_aes256_ctr_keystream():
    # Arrange: the reference keystream straight from cryptography
    enc = Cipher(algorithms.AES(KEY), modes.CTR(bytes(16))).encryptor()
    reference = np.frombuffer(enc.update(bytes(4 * 1000)), dtype="<u4")
    # Act
    mask = MaskGenerator().expand(KEY, np.empty(1000, dtype=np.uint32))
    # Assert
    np.testing.assert_array_equal(mask, reference)


@pytest.mark.parametrize("chunk", [4, 7, 64, 1 << 18])
def test_chunk_size_does_not_change_the_mask(chunk):
    expected = MaskGenerator().expand(KEY, np.empty(10_001, dtype=np.uint32))
    got = MaskGenerator(chunk_words=chunk).expand(KEY, np.empty(10_001, np.uint32))
    np.testing.assert_array_equal(got, expected)


def test_add_then_subtract_is_identity_mod_2_32():
    gen = MaskGenerator(chunk_words=100)
    vec = np.random.default_rng(0).integers(0, 2**32, 1_001, dtype=np.uint32)
    work = vec.copy()
    gen.add(KEY, work)
    assert not np.array_equal(work, vec)
    np.testing.assert_array_equal(work - gen.expand(KEY, np.empty_like(vec)), vec)
    gen.add(KEY, work, sign=-1)
    np.testing.assert_array_equal(work, vec)


def test_different_keys_give_unrelated_masks():
    gen = MaskGenerator()
    a = gen.expand(KEY, np.empty(4096, np.uint32))
    b = gen.expand(bytes(32), np.empty(4096, np.uint32))
    assert np.mean(a == b) < 0.01


def test_bad_inputs_are_refused():
    gen = MaskGenerator()
    with pytest.raises(ValueError, match="32 bytes"):
        gen.add(KEY[:16], np.zeros(4, np.uint32))
    with pytest.raises(TypeError):
        gen.add(KEY, np.zeros(4, np.int64))
    with pytest.raises(ValueError):
        gen.add(KEY, np.zeros(8, np.uint32)[::2])
    with pytest.raises(ValueError):
        gen.add(KEY, np.zeros(4, np.uint32), sign=2)
    with pytest.raises(ValueError):
        MaskGenerator(chunk_words=1)


def _signed_keys(count: int) -> list[tuple[bytes, int]]:
    rng = np.random.default_rng(7)
    return [
        (rng.bytes(32), 1 if i % 3 else -1)  # both signs, in no particular order
        for i in range(count)
    ]


@pytest.mark.parametrize("chunk", [4, 7, 1000, 1 << 15])
def test_combine_equals_adding_each_mask_in_turn(chunk):
    # Arrange
    keys = _signed_keys(9)
    vec = np.random.default_rng(1).integers(0, 2**32, 10_001, dtype=np.uint32)
    expected = vec.copy()
    for key, sign in keys:
        MaskGenerator().add(key, expected, sign=sign)
    # Act
    got = MaskGenerator(chunk_words=chunk).combine(vec.copy(), keys)
    # Assert
    np.testing.assert_array_equal(got, expected)


def test_combine_onto_a_base_leaves_the_base_unchanged():
    keys = _signed_keys(4)
    base = np.random.default_rng(2).integers(0, 2**32, 3_333, dtype=np.uint32)
    kept = base.copy()
    out = MaskGenerator(chunk_words=100).combine(np.empty_like(base), keys, base=base)
    np.testing.assert_array_equal(base, kept)
    in_place = MaskGenerator().combine(base.copy(), keys)
    np.testing.assert_array_equal(out, in_place)
    # Taking the masks off again gives the base back.
    undo = [(key, -sign) for key, sign in keys]
    np.testing.assert_array_equal(MaskGenerator().combine(out, undo), kept)


def test_combine_without_masks_copies_the_base():
    base = np.arange(10, dtype=np.uint32)
    out = MaskGenerator().combine(np.zeros(10, np.uint32), [], base=base)
    np.testing.assert_array_equal(out, base)


def test_combine_refuses_bad_inputs():
    gen = MaskGenerator()
    with pytest.raises(ValueError, match="sign"):
        gen.combine(np.zeros(4, np.uint32), [(KEY, 0)])
    with pytest.raises(ValueError, match="32 bytes"):
        gen.combine(np.zeros(4, np.uint32), [(KEY[:16], 1)])
    with pytest.raises(ValueError, match="base"):
        gen.combine(np.zeros(4, np.uint32), [(KEY, 1)], base=np.zeros(5, np.uint32))
    with pytest.raises(TypeError):
        gen.combine(np.zeros(4, np.int32), [(KEY, 1)])
