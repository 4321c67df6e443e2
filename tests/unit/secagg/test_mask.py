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
