"""Histograms and sketch counts as ring words: 64-bit fixed point in four 16-bit limbs.

The masking protocol sums vectors of uint32 words mod 2^32. Histograms are sums
of floats, so each site quantises them (``round(v * 2^FRACTION_BITS)``, an int64),
writes each int64 in two's complement as four 16-bit limbs, one ring word each,
and the ring sum of ``n <= 65537`` sites is, limb by limb, below 2^32: no limb
wraps, so the carries are recovered after the sum and the total is known mod
2^64, i.e. exactly, as long as the true total fits an int64. With
``FRACTION_BITS = 30`` one unit is 9.3e-10 and totals up to 2^33 (8.6e9) fit,
far above any gradient or hessian sum of a federation of at most
:data:`MAX_ROWS` rows (|g| <= 1, h <= 1/4 for the log loss). Counts use scale 1.

:class:`~accord.secagg.exact.ExactEncoding` would sum floats bit-exactly, but at
132 words per value; a tree level of 8 nodes x 20 features x 64 bins x 2 would
take 2.7 M words instead of 82 k, at every level of every tree.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from accord.errors import DatasetError

__all__ = [
    "FRACTION_BITS",
    "LIMBS",
    "MAX_ROWS",
    "decode_limbs",
    "encode_limbs",
    "quantise",
    "dequantise",
]

#: Binary digits after the point of a quantised histogram value.
FRACTION_BITS = 30
#: Ring words per int64.
LIMBS = 4
#: Most rows a federation's histograms may sum (totals stay within int64).
MAX_ROWS = 2**32
#: Most contributions whose limbs add up without wrapping 32 bits.
MAX_CONTRIBUTORS = (2**32 - 1) // (2**16 - 1)
_LIMIT = float(2 ** (62 - FRACTION_BITS))


def quantise(values: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """``values`` in fixed point (int64); refuses magnitudes that could overflow."""
    if not np.isfinite(values).all() or np.abs(values).max(initial=0.0) >= _LIMIT:
        raise DatasetError(
            "a histogram value is not finite or too large for the fixed-point secure "
            f"sum (|v| < {_LIMIT:.3g}); check the site's labels and features"
        )
    return np.rint(values * 2.0**FRACTION_BITS).astype(np.int64)


def dequantise(total: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """The float values of a fixed-point total."""
    return total.astype(np.float64) / 2.0**FRACTION_BITS


def encode_limbs(values: npt.NDArray[np.int64]) -> npt.NDArray[np.uint32]:
    """Four ring words per int64 (16-bit limbs, least significant first)."""
    raw = np.ascontiguousarray(values, dtype="<i8").reshape(-1).view("<u2")
    return raw.astype(np.uint32)


def decode_limbs(
    total: npt.NDArray[np.uint32], contributors: int
) -> npt.NDArray[np.int64]:
    """The int64 sum of ``contributors`` encoded vectors from their ring sum."""
    if total.dtype != np.uint32 or total.size % LIMBS:
        raise DatasetError(
            f"a ring total of uint32 words in groups of {LIMBS} expected"
        )
    if not 1 <= contributors <= MAX_CONTRIBUTORS:
        raise DatasetError(f"{contributors} contributors; at most {MAX_CONTRIBUTORS}")
    words = total.astype(np.uint64).reshape(-1, LIMBS)
    out = np.zeros(words.shape[0], dtype=np.uint64)
    for k in range(LIMBS):  # uint64 arithmetic wraps mod 2^64, as wanted
        out += words[:, k] << np.uint64(16 * k)
    return out.view(np.int64)
