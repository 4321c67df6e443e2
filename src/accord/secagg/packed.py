"""Quantized updates packed several to a ring word: ``q8``/``q4`` under masking.

:class:`~accord.secagg.encoding.FixedPointEncoding` spends one 32-bit ring word per
value. With ``[compression] method = "q8"`` (or ``"q4"``) a site instead
quantizes each value to a small integer and packs ``32 // bits`` of them into one
word, so the masked vector (what travels) is 4 (or 8) times shorter. The masks
stay what they are (uniform words of Z_2^32, :mod:`accord.secagg.mask`): only the
encoding is narrower, so the protocol, its dropout recovery and its wire format
are untouched.

**Why packing survives masking.** The unmasked total of word ``j`` is
``sum_i word_ij mod 2^32``. Each field of ``bits`` bits holds a non-negative
integer, and the encoding guarantees that the *sum* of a field over every
participant stays below ``2^bits``: then no field carries into its neighbour, the
word sum never reaches ``2^32``, and the total read field by field is exactly the
sum of each participant's integers (tests check it to the unit).

**Scale shared by the federation.** Every site uses the same integer range
``[-m, m]`` with ``m = (2^bits - 1) // (2 n)`` for ``n`` participants (the
roster): it quantizes ``w * clip(x)``, with ``x`` clipped to the declared
``[-clip, clip]`` and ``w`` its weight in ``[0, max_weight]``, as
``q = floor(w x m / (max_weight clip) + U)`` (stochastic rounding, unbiased), and
stores ``q + m`` in ``[0, 2m]``. ``n (2m) <= 2^bits - 1`` is the headroom check;
a roster too large for the field (``m < 1``: more than 127 sites for ``q8``, 7
for ``q4``) is refused with the limit. The coordinator subtracts ``k m`` for the
``k`` contributors and divides by the scale. The weight travels in one last
32-bit word, encoded as the fixed-point encoding does it.

**Price.** One unit is ``max_weight * clip / m``, coarse (``clip / 12`` for 10
sites and ``q8``): the error is unbiased but large unless ``clip`` is near the
updates' range and ``max_examples`` near the largest site's example count
(``docs/compression.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from accord.secagg.encoding import Encoded

__all__ = ["PackedEncoding"]

_WORD_BITS = 32
_INT31 = 2**31 - 1


@dataclass(frozen=True, slots=True)
class PackedEncoding:
    """Values as ``bits``-bit integers, ``32 // bits`` per ring word; see the module.

    ``participants`` is the most inputs that will ever be summed (the roster).
    """

    bits: int
    clip: float
    participants: int
    max_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.bits not in (4, 8, 16):
            raise ValueError(f"bits must be 4, 8 or 16, not {self.bits}")
        if not (np.isfinite(self.clip) and self.clip > 0):
            raise ValueError(f"clip must be a positive finite number, not {self.clip}")
        if not (np.isfinite(self.max_weight) and self.max_weight > 0):
            raise ValueError(f"max_weight must be positive, not {self.max_weight}")
        if self.participants < 1:
            raise ValueError("participants must be at least 1")
        if self.levels < 1:
            most = ((1 << self.bits) - 1) // 2
            raise ValueError(
                f"{self.bits}-bit quantization under secure aggregation cannot sum "
                f"{self.participants} sites: their sum of {self.bits}-bit integers "
                f"would overflow its field (n × 2 × max|q| must stay below "
                f"2^{self.bits}); it sums at most {most} sites. Use a wider method "
                '(q8 before q4), fewer sites per round ([selection] count) or "none"'
            )

    @property
    def levels(self) -> int:
        """``m``: a site's integers lie in ``[-m, m]``."""
        return ((1 << self.bits) - 1) // (2 * self.participants)

    @property
    def per_word(self) -> int:
        """Values packed into one ring word."""
        return _WORD_BITS // self.bits

    @property
    def scale(self) -> float:
        """Integer units per unit of ``w * x``."""
        return self.levels / (self.max_weight * self.clip)

    @property
    def weight_scale(self) -> float:
        """Ring units per unit of weight (the last, unpacked word)."""
        return (_INT31 // self.participants - 1) / self.max_weight

    @property
    def weight_bound(self) -> float:
        """Worst-case absolute error of the decoded total weight."""
        return self.participants / self.weight_scale

    def words(self, values: int) -> int:
        """Ring words for ``values`` floats: packed values, then the weight."""
        return -(-values // self.per_word) + 1

    def quantize(
        self, parts: Sequence[npt.ArrayLike], weight: float, rng: np.random.Generator
    ) -> tuple[npt.NDArray[np.int64], int]:
        """A site's integers ``q`` in ``[-m, m]`` and how many values were clipped.

        Raises ValueError for a non-finite value or a weight outside
        ``[0, max_weight]``.
        """
        if not (np.isfinite(weight) and 0 <= weight <= self.max_weight):
            raise ValueError(
                f"weight {weight} is outside [0, {self.max_weight}]; raise max_weight "
                "in the secure-aggregation settings or normalise the weights"
            )
        flat = np.concatenate(
            [np.asarray(p, dtype=np.float64).reshape(-1) for p in parts]
            or [np.zeros(0)]
        )
        if not np.isfinite(flat).all():
            raise ValueError("the update holds NaN or infinity; it cannot be encoded")
        clipped = int(np.count_nonzero(np.abs(flat) > self.clip))
        np.clip(flat, -self.clip, self.clip, out=flat)
        flat *= weight * self.scale
        flat += rng.random(flat.size)
        np.floor(flat, out=flat)
        # Rounding can reach m + 1 only through float error at the very edge.
        np.clip(flat, -self.levels, self.levels, out=flat)
        return flat.astype(np.int64), clipped

    def pack(
        self, q: npt.NDArray[np.int64], weight_word: int
    ) -> npt.NDArray[np.uint32]:
        """Ring words of integers ``q`` (each in ``[-m, m]``) and the weight word."""
        if q.size and int(np.abs(q).max()) > self.levels:
            raise ValueError(
                f"a quantized value is outside [-{self.levels}, {self.levels}]"
            )
        per, bits = self.per_word, self.bits
        fields = np.full(-(-q.size // per) * per, self.levels, dtype=np.uint64)
        fields[: q.size] += q.astype(np.uint64, casting="unsafe")
        rows = fields.reshape(-1, per)
        shifts = (np.arange(per, dtype=np.uint64) * np.uint64(bits))[None, :]
        # Fields never overlap, so the sum of the shifted fields is their OR.
        packed = (rows << shifts).sum(axis=1, dtype=np.uint64)
        out = np.empty(packed.size + 1, dtype=np.uint32)
        out[:-1] = packed.astype(np.uint32)
        out[-1:] = (
            np.array([weight_word], dtype=np.int64).astype(np.int32).view(np.uint32)
        )
        return out

    def encode_parts(
        self, parts: Sequence[npt.ArrayLike], weight: float, rng: np.random.Generator
    ) -> Encoded:
        """Quantize ``weight * clip(concat(parts))`` and pack it, with the weight."""
        q, clipped = self.quantize(parts, weight, rng)
        w = weight * self.weight_scale
        weight_word = int(np.floor(w + rng.random()))
        return Encoded(self.pack(q, weight_word), clipped)

    def integers(
        self, total: npt.NDArray[np.uint32], contributors: int
    ) -> npt.NDArray[np.int64]:
        """``sum_i q_i`` of ``contributors`` inputs from their ring total, exactly.

        Padding fields included (they sum to zero). Raises ValueError when a field
        is outside what ``contributors`` honest inputs can sum to.
        """
        if total.dtype != np.uint32 or total.ndim != 1 or total.size < 1:
            raise ValueError("a ring total is a non-empty 1-D uint32 array")
        if not 1 <= contributors <= self.participants:
            raise ValueError(
                f"{contributors} contributors; this encoding sums 1 to "
                f"{self.participants}"
            )
        per, bits = self.per_word, self.bits
        words = total[:-1].astype(np.uint64)[:, None]
        shifts = (np.arange(per, dtype=np.uint64) * np.uint64(bits))[None, :]
        mask = np.uint64((1 << bits) - 1)
        fields = ((words >> shifts) & mask).reshape(-1).astype(np.int64)
        offset = contributors * self.levels
        if fields.size and int(fields.max()) > 2 * offset:
            raise ValueError(
                "a field of the sum exceeds what the contributors' quantized "
                "inputs can add up to: an input was not this encoding"
            )
        return fields - offset

    def decode(
        self, total: npt.NDArray[np.uint32], contributors: int, values: int
    ) -> tuple[npt.NDArray[np.float64], float]:
        """The ring total as (``sum w_i x_i`` over ``values`` values, ``sum w_i``)."""
        summed = self.integers(total, contributors)
        if summed.size < values:
            raise ValueError(f"the total holds {summed.size} values, not {values}")
        weighted = summed[:values].astype(np.float64)
        weighted /= self.scale
        weight = float(total[-1:].view(np.int32)[0]) / self.weight_scale
        return weighted, weight
