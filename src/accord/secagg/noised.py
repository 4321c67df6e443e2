"""The ring encoding of a distributed-DP round: L2 clip, uniform weight, noise share.

With participant-level DP under masking the coordinator cannot clip or noise a
single update, so each site does both before its update enters the ring
(:class:`DistributedNoise`):

1. clip the whole update to L2 norm ``clip`` (the sensitivity bound), with weight 1
   for every site (uniform weights keep the sensitivity exactly one clipped update);
2. multiply by ``scale`` and round stochastically to integers;
3. add its noise share, ``Sk(noise_share)`` per coordinate
   (:mod:`accord.privacy.skellam`), drawn from its own CSPRNG-seeded generator;
4. write the words into ``Z_2^32`` (two's complement), plus one word holding 1, so
   the ring sum's last word counts the contributors.

**Noise size.** The target is the central mechanism's noise: standard deviation
``noise_multiplier * l2`` in ring units, where ``l2 = clip * scale + sqrt(values)``
is the sensitivity of one rounded update. Skellam's variance is ``2 mu``, so the
sum needs ``mu = (noise_multiplier * l2)^2 / 2``. The protocol never unmasks a sum
of fewer than ``threshold`` sites, so each site adds ``mu / threshold``: every sum
the coordinator can see carries at least the target noise, and one of ``k``
survivors carries exactly ``k`` shares (Skellam sums are Skellam), which is what the
round is accounted for.

**Wraparound.** The scale is the largest power of two for which each site's noise
share stays within :data:`MAX_SHARE` (2^36, where numpy's Poisson sampler is
accurate; a unit is then still about ``noise_multiplier * clip / 10^5``, far below
the noise) and the sum of all
``participants`` contributions, at its largest (``participants * (clip * scale + 1)``)
plus the noise of all of them past its ``2^-40`` tail (union bound over the
coordinates), stays within ``±(2^31 - 1)``: the signed sum decodes exactly except
with probability below ``2^-40``. A configuration where rounding alone would add
more than a tenth to the sensitivity (too many sites or values for 32 bits) is
refused with what to change.

A site checks a declared plan with :meth:`DistributedNoise.refusal` before it
trains: a noise share below what the declared noise multiplier needs for the
round's threshold, or a scale other than the safe one, is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from accord.privacy.skellam import (
    MAX_MU,
    integer_sensitivity,
    sample_skellam,
    tail_bound,
)

__all__ = ["MAX_SHARE", "WRAP_FAILURE", "DistributedNoise"]

_INT31 = 2**31 - 1
#: The probability, at most, that a round's noised sum wraps around the ring.
WRAP_FAILURE = 2.0**-40
#: Rounding may add at most this fraction of ``clip * scale`` to the sensitivity.
_MAX_ROUNDING_SHARE = 0.1
#: The largest noise share a site draws: far inside the range where numpy's
#: Poisson sampler is accurate (see :mod:`accord.privacy.skellam`).
MAX_SHARE = MAX_MU / 2**4


@dataclass(frozen=True, slots=True)
class DistributedNoise:
    """One round's distributed-noise plan; build it with :meth:`plan`.

    ``participants`` is the roster (the most contributions ever summed),
    ``threshold`` the fewest the protocol unmasks, ``values`` the model's size.
    """

    clip: float
    noise_multiplier: float
    participants: int
    threshold: int
    values: int
    scale: float
    noise_share: float

    def __post_init__(self) -> None:
        for name in ("clip", "noise_multiplier", "scale", "noise_share"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, not {v!r}")
        if not 1 <= self.threshold <= self.participants:
            raise ValueError(
                f"threshold {self.threshold} must be in 1..{self.participants}"
            )
        if self.values < 1:
            raise ValueError("values must be at least 1")

    @classmethod
    def plan(
        cls,
        *,
        clip: float,
        noise_multiplier: float,
        participants: int,
        threshold: int,
        values: int,
    ) -> DistributedNoise:
        """The safe scale and the share each site adds; ValueError if none fits."""
        if not (math.isfinite(clip) and clip > 0 and noise_multiplier > 0):
            raise ValueError("clip and noise_multiplier must be > 0")
        if not 1 <= threshold <= participants:
            raise ValueError(f"threshold {threshold} must be in 1..{participants}")
        scale = 2.0 ** math.floor(math.log2(_INT31 / (participants * clip)))
        while scale * clip >= math.sqrt(values) / _MAX_ROUNDING_SHARE:
            share = _share(clip * scale, values, noise_multiplier, threshold)
            if share <= MAX_SHARE and _fits(clip * scale, values, participants, share):
                return cls(
                    clip,
                    noise_multiplier,
                    participants,
                    threshold,
                    values,
                    scale,
                    share,
                )
            scale /= 2
        raise ValueError(
            f"no fixed-point scale fits {participants} sites' noised sums of "
            f"{values} values into 32 bits without wraparound or rounding that "
            "swamps the clip; use fewer sites per round, a smaller model, or a "
            "lower noise multiplier"
        )

    @property
    def sensitivity(self) -> tuple[float, float]:
        """L2 and L1 sensitivity of one site's rounded contribution, in ring units."""
        return integer_sensitivity(self.clip * self.scale, self.values)

    def summed_noise(self, contributors: int) -> float:
        """The Skellam parameter of the noise in a sum of ``contributors`` inputs."""
        return contributors * self.noise_share

    @staticmethod
    def words(values: int) -> int:
        """Ring words for an update of ``values`` floats (one more, the count)."""
        return values + 1

    def refusal(self) -> str | None:
        """Why a site refuses this declared plan (None: it is what the round needs).

        The plan is recomputed from its declared clip, noise multiplier, roster
        size, threshold and model size; a smaller noise share than that needs, or
        another scale (one that could wrap, or round away the signal), is refused.
        """
        try:
            needed = DistributedNoise.plan(
                clip=self.clip,
                noise_multiplier=self.noise_multiplier,
                participants=self.participants,
                threshold=self.threshold,
                values=self.values,
            )
        except ValueError as exc:
            return f"the distributed-noise settings cannot be met: {exc}"
        if self.noise_share < needed.noise_share * (1 - 1e-12):
            return (
                f"the task's noise share {self.noise_share:.6g} is below the "
                f"{needed.noise_share:.6g} that noise multiplier "
                f"{self.noise_multiplier:g} needs with threshold {self.threshold}; "
                "this site refuses to release its update with less noise"
            )
        if self.scale != needed.scale:
            return (
                f"the task's ring scale {self.scale:g} is not the safe "
                f"{needed.scale:g} for {self.participants} sites and clip "
                f"{self.clip:g}; the noised sum could wrap around the ring"
            )
        return None

    def encode(
        self,
        values: npt.ArrayLike,
        rounding: np.random.Generator,
        noise: np.random.Generator,
    ) -> tuple[npt.NDArray[np.uint32], bool]:
        """The update, L2-clipped, scaled, rounded and noised, as ring words.

        Returns the words and whether the update was clipped. ``rounding`` drives
        the stochastic rounding, ``noise`` the site's noise share.
        """
        flat = np.asarray(values, dtype=np.float64).reshape(-1)
        if flat.size != self.values:
            raise ValueError(f"the plan is for {self.values} values, got {flat.size}")
        if not np.isfinite(flat).all():
            raise ValueError("the update holds NaN or infinity; it cannot be encoded")
        norm = float(np.linalg.norm(flat))
        clipped = norm > self.clip
        work = flat * (self.scale * (self.clip / norm if clipped else 1.0))
        work += rounding.random(work.size)
        ints = np.floor(work).astype(np.int64)
        ints += sample_skellam(self.noise_share, ints.size, noise)
        out = np.empty(ints.size + 1, dtype=np.uint32)
        out[:-1] = (ints & 0xFFFFFFFF).astype(np.uint32)
        out[-1] = 1
        return out, clipped

    def decode(
        self, total: npt.NDArray[np.uint32]
    ) -> tuple[npt.NDArray[np.float64], int]:
        """The ring sum as (noised sum of clipped updates, number of contributors)."""
        if total.dtype != np.uint32 or total.shape != (self.values + 1,):
            raise ValueError(f"a ring total here is {self.values + 1} uint32 words")
        signed = total.view(np.int32)
        return signed[:-1].astype(np.float64) / self.scale, int(signed[-1])


def _share(units: float, values: int, multiplier: float, threshold: int) -> float:
    l2, _ = integer_sensitivity(units, values)
    return (multiplier * l2) ** 2 / 2 / threshold


def _fits(units: float, values: int, participants: int, share: float) -> bool:
    # Every coordinate of one contribution is within clip * scale (+1 by rounding).
    signal = participants * (units + 1)
    tau = tail_bound(participants * share, coordinates=values, failure=WRAP_FAILURE)
    return signal + tau <= _INT31
