"""Fixed-point encoding of weighted float updates into the ring Z_2^32, and back.

Masks live in Z_2^32, so an update must become uint32 words whose *sum* over every
participant decodes to the sum of the floats. Each participant:

1. clips its values to the declared range ``[-clip, clip]`` (so the sum is bounded
   and one participant cannot swamp it);
2. multiplies by its weight ``w`` in ``[0, max_weight]`` (the number of examples, or
   a normalised version of it) and by the common ``scale``;
3. rounds *stochastically* (``floor(y + U)``, ``U ~ Uniform[0, 1)`` from a seeded
   ``numpy.random.Generator``), which is unbiased, and wraps the signed integer into
   uint32 (two's complement);
4. appends its weight, quantised the same way with ``weight_scale``, as one extra
   word, so the coordinator gets ``sum(w_i x_i)`` and ``sum(w_i)`` and can form the
   weighted mean without learning any single weight.

**Headroom.** ``scale = ((2^31 - 1) // n - 1) / (max_weight * clip)`` for ``n``
participants. Every encoded word then satisfies ``|q| <= (2^31 - 1) // n``, so the
sum of up to ``n`` of them stays within ``[-(2^31 - 1), 2^31 - 1]`` and reading the
uint32 total as int32 recovers it exactly: no overflow is possible, whatever the
inputs, as long as at most ``n`` participants are summed and weights stay within
``max_weight`` (both are checked). The price is resolution: one unit is
``1 / scale``, about ``n * max_weight * clip / 2^31`` (5e-8 for 100 participants,
unit weights and ``clip = 1``). A ``max_weight`` far above the weights actually
used wastes resolution: normalise weights (``max_weight = 1``) rather than
declaring a generous cap on raw example counts.

**Speed.** A participant encodes its whole model every secure round, so
:meth:`FixedPointEncoding.encode_parts` works through it in chunks of
:data:`CHUNK` values that stay in the CPU cache: each chunk is converted, checked
(one maximum of the magnitudes: only a chunk that exceeds the clip range is
checked value by value, counted and clipped), scaled, rounded and written in
place, with two reused buffers and no temporary of the model's size (a float64
copy of a 1M model is 8 MB, and the straightforward version made several). The
values are bit for bit those of the one-pass formulas above: the operations are
elementwise and in the same order, and a ``Generator`` draws the same uniforms in
chunks as in one call.

**Error bound.** Stochastic rounding moves each word by less than one unit, so for
every coordinate, deterministically (not only in expectation),
``|decoded_sum - sum_i w_i clip(x_i)| < n_summed / scale <= n / scale`` and
``|decoded_weight - sum_i w_i| < n / weight_scale``. :attr:`FixedPointEncoding.bound`
and :attr:`FixedPointEncoding.weight_bound` give these numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["CHUNK", "Encoded", "FixedPointEncoding"]

_INT31 = 2**31 - 1
#: Values encoded per step: 512 KiB of float64, which stays in a core's L2 cache.
CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class Encoded:
    """An encoded update: its ring ``words`` and how many values were ``clipped``."""

    words: npt.NDArray[np.uint32]
    clipped: int


@dataclass(frozen=True, slots=True)
class FixedPointEncoding:
    """How floats become ring words: the clip range, the weight cap and ``n``.

    ``participants`` is the most inputs that will ever be summed (the number of
    participants selected for the round).
    """

    clip: float
    participants: int
    max_weight: float = 1.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.clip) and self.clip > 0):
            raise ValueError(f"clip must be a positive finite number, not {self.clip}")
        if not (np.isfinite(self.max_weight) and self.max_weight > 0):
            raise ValueError(f"max_weight must be positive, not {self.max_weight}")
        if not 1 <= self.participants <= 2**20:
            raise ValueError(
                f"participants must be in 1..{2**20}; with more, 32-bit words leave "
                "too little resolution"
            )

    @property
    def _units(self) -> int:
        # The largest |word| one participant may send.
        return _INT31 // self.participants - 1

    @property
    def scale(self) -> float:
        """Ring units per unit of ``w * x``."""
        return self._units / (self.max_weight * self.clip)

    @property
    def weight_scale(self) -> float:
        """Ring units per unit of weight."""
        return self._units / self.max_weight

    @property
    def bound(self) -> float:
        """Worst-case absolute error of each coordinate of the decoded weighted sum."""
        return self.participants / self.scale

    @property
    def weight_bound(self) -> float:
        """Worst-case absolute error of the decoded total weight."""
        return self.participants / self.weight_scale

    @staticmethod
    def words(values: int) -> int:
        """Ring words for an update of ``values`` floats (one more, for the weight)."""
        return values + 1

    def encode(
        self, values: npt.ArrayLike, weight: float, rng: np.random.Generator
    ) -> npt.NDArray[np.uint32]:
        """Encode ``weight * clip(values)`` and ``weight`` as ``len(values) + 1`` words.

        Raises ValueError for non-finite values or a weight outside
        ``[0, max_weight]``.
        """
        return self.encode_parts([values], weight, rng).words

    def encode_parts(
        self,
        parts: Sequence[npt.ArrayLike],
        weight: float,
        rng: np.random.Generator,
    ) -> Encoded:
        """:meth:`encode` of the concatenation of ``parts`` (each flattened), chunked.

        Also counts the values outside ``[-clip, clip]``. Raises ValueError as
        :meth:`encode` does.
        """
        if not (np.isfinite(weight) and 0 <= weight <= self.max_weight):
            raise ValueError(
                f"weight {weight} is outside [0, {self.max_weight}]; raise max_weight "
                "in the secure-aggregation settings or normalise the weights"
            )
        flats = [np.asarray(p).reshape(-1) for p in parts]
        total = sum(f.size for f in flats)
        out = np.empty(total + 1, dtype=np.uint32)
        signed = out.view(np.int32)
        work = np.empty(min(CHUNK, max(total, 1)), dtype=np.float64)
        spare = np.empty_like(work)
        factor = weight * self.scale
        clipped, pos = 0, 0
        for flat in flats:
            for lo in range(0, flat.size, CHUNK):
                piece = flat[lo : lo + CHUNK]
                n = piece.size
                w, u = work[:n], spare[:n]
                np.copyto(w, piece)
                # One reduction decides the common case: the largest magnitude is
                # within the clip range (NaN fails this test too), so every value
                # is finite and clipping would change nothing.
                peak = np.abs(w, out=u).max()
                if not peak <= self.clip:
                    if not np.isfinite(w).all():
                        raise ValueError(
                            "the update holds NaN or infinity; it cannot be encoded"
                        )
                    clipped += int(np.count_nonzero(u > self.clip))
                    np.clip(w, -self.clip, self.clip, out=w)
                w *= factor
                w += rng.random(out=u)
                np.floor(w, out=w)
                np.copyto(signed[pos : pos + n], w, casting="unsafe")
                pos += n
        _round_into(np.array([weight * self.weight_scale]), out[-1:], rng)
        return Encoded(out, clipped)

    def decode(
        self, total: npt.NDArray[np.uint32]
    ) -> tuple[npt.NDArray[np.float64], float]:
        """The ring sum of encoded updates as (``sum w_i x_i``, ``sum w_i``)."""
        if total.dtype != np.uint32 or total.ndim != 1 or total.size < 1:
            raise ValueError("a ring total is a non-empty 1-D uint32 array")
        signed = total.view(np.int32)
        weighted = signed[:-1].astype(np.float64)
        weighted /= self.scale
        return weighted, float(signed[-1]) / self.weight_scale

    def decode_mean(self, total: npt.NDArray[np.uint32]) -> npt.NDArray[np.float64]:
        """The weighted mean ``sum w_i x_i / sum w_i`` of the encoded updates.

        Raises ValueError when the total weight is not positive (every weight zero).
        """
        weighted, weight = self.decode(total)
        if weight <= self.weight_bound:
            raise ValueError(
                "the total weight is zero within the quantisation error; there is "
                "no mean to form"
            )
        weighted /= weight
        return weighted


def _round_into(
    work: npt.NDArray[np.float64],
    out: npt.NDArray[np.uint32],
    rng: np.random.Generator,
) -> None:
    """Stochastic rounding ``floor(work + U)`` written as two's-complement uint32."""
    work += rng.random(work.size)
    np.floor(work, out=work)
    out[:] = work.astype(np.int32).view(np.uint32)
