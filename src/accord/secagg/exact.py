"""Exact encoding of float64 values into ring words: the secure sum is the exact sum.

:class:`~accord.secagg.encoding.FixedPointEncoding` trades resolution for one ring
word per value, which suits model updates (noise well below training noise). The
statistics a deployment's preprocessing is fitted from (counts, sums and sums of
squares) are different: the plain fit adds them with :func:`math.fsum`, exactly
rounded, and a secure fit that differs in the last bit gives another encoder, so
another model than ``accord simulate``. :class:`ExactEncoding` therefore encodes
each value *exactly*, whatever its magnitude, at the price of more words:

1. every finite float64 ``x`` is an integer multiple of ``2^-1074`` (the smallest
   subnormal) and below ``2^1024`` in magnitude, so ``X = x * 2^1074`` is an
   integer with ``|X| < 2^2098``; adding the offset ``2^2098`` makes it a
   non-negative integer below ``2^2099``;
2. that integer is split into :data:`LIMBS` limbs of :data:`LIMB_BITS` bits, one
   ring word each (the words of one value are consecutive);
3. the ring sum of ``n`` participants' words is, limb by limb, at most
   ``n * (2^16 - 1)``, which stays below ``2^32`` for ``n <=``
   :data:`MAX_PARTICIPANTS`: no limb wraps, so the carries are recovered after the
   sum and ``sum_i X_i`` is known exactly (the offsets, ``n * 2^2098``, are taken
   off with the number of contributors);
4. the exact sum, divided by ``2^1074`` with Python's correctly rounded integer
   division, is the float64 nearest to the exact sum of the inputs: what
   :func:`math.fsum` returns, bit for bit.

No bound has to be declared and no input can overflow the ring, because the range
is that of float64 itself. The cost is :data:`LIMBS` (132) words per value: a
preprocessing fit over ``k`` numeric columns sends ``132 * (3k + 1)`` words (52 KB
for 32 columns), once per run. A site that sends words of its own making (limbs
of more than 16 bits) can only corrupt the sum, as any input to a secure sum can;
:meth:`ExactEncoding.decode` then refuses a sum no honest inputs give.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["LIMBS", "LIMB_BITS", "MAX_PARTICIPANTS", "ExactEncoding"]

#: Bits of a value per ring word; the other 16 hold the carries of the sum.
LIMB_BITS = 16
#: ``x * 2^SHIFT`` is an integer for every finite float64 ``x``.
_SHIFT = 1074
#: ``|x * 2^SHIFT| < 2^_SPAN`` for every finite float64 ``x``.
_SPAN = 1024 + _SHIFT
_OFFSET = 1 << _SPAN
#: Ring words per value (2099 bits, rounded up to whole limbs).
LIMBS = -(-(_SPAN + 1) // LIMB_BITS)
_BYTES = LIMBS * LIMB_BITS // 8
#: Most inputs whose limbs can be summed in 32 bits without wrapping.
MAX_PARTICIPANTS = (2**32 - 1) // (2**LIMB_BITS - 1)


@dataclass(frozen=True, slots=True)
class ExactEncoding:
    """How ``values`` float64 numbers become ring words, exactly; see the module."""

    values: int

    def __post_init__(self) -> None:
        if self.values < 1:
            raise ValueError("an exact encoding needs at least one value")

    @property
    def words(self) -> int:
        """Ring words of one encoded vector."""
        return self.values * LIMBS

    def encode(self, values: npt.ArrayLike) -> npt.NDArray[np.uint32]:
        """The ring words of ``values`` (float64, ``self.values`` of them).

        Raises ValueError for another number of values or one that is not finite.
        """
        flat = np.asarray(values, dtype=np.float64).reshape(-1)
        if flat.size != self.values:
            raise ValueError(f"expected {self.values} values, got {flat.size}")
        if not np.isfinite(flat).all():
            raise ValueError("the values hold NaN or infinity; they cannot be summed")
        raw = bytearray()
        for x in flat.tolist():
            numerator, denominator = float(x).as_integer_ratio()
            scaled = numerator * ((1 << _SHIFT) // denominator) + _OFFSET
            raw += scaled.to_bytes(_BYTES, "little")
        limbs = np.frombuffer(bytes(raw), dtype="<u2")
        return limbs.astype(np.uint32)

    def decode(
        self, total: npt.NDArray[np.uint32], contributors: int
    ) -> npt.NDArray[np.float64]:
        """The exactly rounded sums of ``contributors`` inputs from their ring sum.

        Raises ValueError when ``total`` is not such a sum: its length is not
        :attr:`words`, ``contributors`` is out of range, or a value's sum lies
        outside what ``contributors`` finite inputs can add up to.
        """
        if total.dtype != np.uint32 or total.shape != (self.words,):
            raise ValueError(f"a ring total of {self.words} uint32 words is expected")
        contributors = int(contributors)
        if not 1 <= contributors <= MAX_PARTICIPANTS:
            raise ValueError(
                f"{contributors} contributors; the exact encoding sums 1 to "
                f"{MAX_PARTICIPANTS}"
            )
        words = total.astype("<u4").reshape(self.values, LIMBS)
        low = (words & 0xFFFF).astype("<u2")
        high = (words >> 16).astype("<u2")
        out = np.empty(self.values, dtype=np.float64)
        offsets = contributors * _OFFSET
        for i in range(self.values):
            exact = int.from_bytes(low[i].tobytes(), "little")
            exact += int.from_bytes(high[i].tobytes(), "little") << LIMB_BITS
            exact -= offsets
            if abs(exact) >= contributors << _SPAN:
                raise ValueError(
                    f"value {i} of the sum is outside what {contributors} finite "
                    "inputs can add up to: an input was not an exact encoding"
                )
            try:
                out[i] = exact / (1 << _SHIFT)  # correctly rounded
            except OverflowError:
                out[i] = math.inf if exact > 0 else -math.inf
        return out
