"""The mask generator: AES-256-CTR keystream read as uint32 words of the ring Z_2^32.

A mask must be indistinguishable from uniform to anyone without its key, so it comes
from a cryptographic PRG keyed with the *full* 32-byte key that HKDF derived: the
AES-256-CTR keystream (a zero counter block; every key is fresh per run, round and
purpose, so a key/counter pair never repeats). The weakness this avoids is a known
one of a popular peer: Flower's SecAgg+ (1.42, ``pseudo_rand_gen``) folds the shared
key into a 32-bit seed by XOR and expands it with numpy's Mersenne Twister, so
anyone can recover a mask by trying 2^32 seeds, and Mersenne Twister output is
predictable from a few hundred words of it anyway.

Speed matters because each participant expands one mask per neighbour plus its own,
and the coordinator one per survivor: the keystream is written by OpenSSL
(``update_into``, AES-NI where the CPU has it) straight into a preallocated uint32
buffer, one chunk at a time, and added to (or subtracted from) the target vector
while the chunk is still in cache. Nothing is allocated per mask; buffers are
reused. uint32 arrays wrap around on overflow, which is exactly arithmetic mod 2^32.

:meth:`MaskGenerator.combine` applies *all* of a vector's masks at once, block by
block: every key's cipher stays open, and each block of the target (a cache-sized
piece) receives every mask's keystream for that block before the next block is
touched. Mask by mask, a 1M-word vector (4 MB, larger than a core's cache) would
be streamed from memory and back once per mask (21 times for a SecAgg+
participant at degree 20); block by block it is read and written once. The
keystream and the result are exactly those of :meth:`MaskGenerator.add` mask after
mask: CTR mode's keystream does not depend on how it is cut into calls.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from accord.errors import MissingExtraError

try:
    from cryptography.hazmat.primitives.ciphers import (
        Cipher,
        CipherContext,
        algorithms,
        modes,
    )
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingExtraError(
        extra="secagg", package="cryptography", feature="Secure aggregation"
    ) from exc

__all__ = ["MaskGenerator", "RingVector", "SignedKey"]

#: A vector of the ring Z_2^32: a 1-D uint32 array; numpy wraps on overflow.
RingVector = npt.NDArray[np.uint32]

_COUNTER_BLOCK = bytes(16)
_DEFAULT_CHUNK_WORDS = 1 << 16  # 256 KiB: a target block and its keystream fit in L2

#: One mask to apply: its 32-byte key and its sign (+1 adds it, -1 subtracts it).
SignedKey = tuple[bytes, int]


class MaskGenerator:
    """Expands 32-byte keys into uint32 masks and folds them into vectors.

    One generator owns two reusable buffers of ``chunk_words`` words (a zero source
    and the keystream target); it is not thread-safe, so use one per thread.
    """

    __slots__ = ("_chunk", "_keystream", "_zeros")

    def __init__(self, chunk_words: int = _DEFAULT_CHUNK_WORDS) -> None:
        if chunk_words < 4:
            raise ValueError("chunk_words must be at least 4")
        self._chunk = chunk_words
        self._zeros = bytes(4 * chunk_words)
        self._keystream = np.empty(chunk_words, dtype="<u4")

    def expand(self, key: bytes, out: RingVector) -> RingVector:
        """Write the mask of ``key`` into ``out`` (its whole length) and return it."""
        _check_ring(out)
        encryptor = self._encryptor(key)
        words = out.size
        raw = out.data.cast("B")
        for lo in range(0, words, self._chunk):
            n = min(self._chunk, words - lo)
            encryptor.update_into(
                memoryview(self._zeros)[: 4 * n], raw[4 * lo : 4 * (lo + n)]
            )
        if out.dtype.byteorder == ">":  # pragma: no cover - big-endian hosts only
            out.byteswap(inplace=True)
        return out

    def add(self, key: bytes, target: RingVector, *, sign: int = 1) -> None:
        """``target += mask(key)``, or ``-=`` with ``sign=-1``, mod 2^32."""
        if sign not in (1, -1):
            raise ValueError("sign must be 1 or -1")
        _check_ring(target)
        encryptor = self._encryptor(key)
        stream = self._keystream
        raw = stream.data.cast("B")
        op = np.add if sign == 1 else np.subtract
        for lo in range(0, target.size, self._chunk):
            n = min(self._chunk, target.size - lo)
            encryptor.update_into(memoryview(self._zeros)[: 4 * n], raw[: 4 * n])
            part = target[lo : lo + n]
            op(part, stream[:n], out=part)

    def combine(
        self,
        target: RingVector,
        masks: Sequence[SignedKey],
        *,
        base: RingVector | None = None,
    ) -> RingVector:
        """``target = base + sum(sign * mask(key))`` mod 2^32, block by block.

        ``base`` None means ``target`` itself (masks are added in place); else it
        must have ``target``'s length and is left unchanged. Exactly what
        :meth:`add` for each ``(key, sign)`` in turn gives, with each block of
        ``target`` read and written once instead of once per mask. Returns
        ``target``.
        """
        _check_ring(target)
        if base is not None and (base.dtype != np.uint32 or base.shape != target.shape):
            raise ValueError("base must be a uint32 vector of the target's length")
        ops = []
        for key, sign in masks:
            if sign not in (1, -1):
                raise ValueError("sign must be 1 or -1")
            ops.append((self._encryptor(key), np.add if sign == 1 else np.subtract))
        zeros = memoryview(self._zeros)
        stream = self._keystream
        raw = stream.data.cast("B")
        for lo in range(0, target.size, self._chunk):
            n = min(self._chunk, target.size - lo)
            part = target[lo : lo + n]
            if base is not None:
                np.copyto(part, base[lo : lo + n])
            source, sink, words = zeros[: 4 * n], raw[: 4 * n], stream[:n]
            for encryptor, op in ops:
                encryptor.update_into(source, sink)
                op(part, words, out=part)
        return target

    @staticmethod
    def _encryptor(key: bytes) -> CipherContext:
        if len(key) != 32:
            raise ValueError("a mask key has 32 bytes (AES-256)")
        return Cipher(algorithms.AES(key), modes.CTR(_COUNTER_BLOCK)).encryptor()


def _check_ring(vector: RingVector) -> None:
    if vector.dtype != np.uint32 or vector.ndim != 1:
        raise TypeError("a ring vector is a 1-D uint32 array")
    if not vector.flags.c_contiguous or not vector.flags.writeable:
        raise ValueError("a ring vector must be contiguous and writable")
