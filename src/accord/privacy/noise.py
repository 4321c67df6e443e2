"""Gaussian noise for differential privacy, from a secure source, on a grid.

Where the noise comes from. By default every draw starts a fresh generator whose
128-bit seed comes from the operating system's CSPRNG (:mod:`secrets`), so nobody can
predict or replay the noise of a round, and one round's noise tells nothing about
the next one's (each round has its own seed; numpy's PCG64 stream is not itself a
cryptographic generator, which is why it is never continued across draws). A
``seed`` makes the noise reproducible; it exists only so that tests and the
simulation-vs-deployment digest check are deterministic. Anyone who knows a seed
can subtract the noise, so a seeded run has no privacy at all: callers log a
warning when one is set.

Floating-point attacks. Mironov (2012, "On significance of the least significant
bits for differential privacy") showed that the textbook Laplace sampler, run on
doubles, leaves holes in the set of values it can output: which doubles appear
depends on the true value, so one released value can reveal the input exactly. Jin
et al. (2022) showed the same for the Gaussian samplers of common libraries. The
remedy Mironov gave is "snapping": round the noised value to a grid coarser than
the doubles near it, so that the low-order bits, where the artefacts live, are
gone. :func:`add_gaussian` does that: the noised value is computed in float64 and
rounded to a grid of step ``2^(ceil(log2 std) - GRID_BITS)`` (about a millionth of
the noise's standard deviation, far below any effect on the model and far above the
float64 resolution of the values). Rounding is post-processing, so the (epsilon,
delta) of the Gaussian mechanism is unchanged. This is a mitigation for the known
attacks, not a proof: a sampler exact over the integers (the discrete Gaussian of
Canonne, Kamath and Steinke 2020) is the rigorous answer, and the right one for
distributed noise inside secure aggregation's integer encoding.
"""

from __future__ import annotations

import logging
import math
import secrets
from typing import Any

import numpy as np
import numpy.typing as npt

from accord.params import Params

__all__ = ["GRID_BITS", "NoiseSource", "add_gaussian", "grid_step"]

logger = logging.getLogger(__name__)

#: How far below the noise's standard deviation the snapping grid lies (2^-20).
GRID_BITS = 20
#: Mixed into seeded streams so that DP noise never shares a stream with selection
#: or training seeds derived from the same run seed.
_NOISE_TAG = 0xD1F0_0153


class NoiseSource:
    """Hands out one numpy ``Generator`` per draw: secure by default, seeded in tests.

    ``NoiseSource()`` seeds every generator from :func:`secrets.randbits` (128
    bits). ``NoiseSource(seed=7)`` derives the generator of draw ``key`` from
    ``(seed, *key)``, so the same seed and key give the same noise in every process
    (a simulation and a deployment of the same run add the same noise).
    """

    def __init__(self, seed: int | None = None) -> None:
        if seed is not None and not 0 <= seed < 2**128:
            raise ValueError(f"a noise seed must be in [0, 2**128), got {seed}")
        self._seed = seed

    @property
    def seeded(self) -> bool:
        """True when the noise is reproducible (tests only: it protects nothing)."""
        return self._seed is not None

    def generator(self, *key: int) -> np.random.Generator:
        """A generator for one draw; ``key`` (round number, ...) matters when seeded."""
        if self._seed is None:
            entropy: int | list[int] = secrets.randbits(128)
        else:
            entropy = [self._seed, _NOISE_TAG, *key]
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def grid_step(std: float) -> float:
    """The snapping grid for noise of standard deviation ``std`` (a power of two)."""
    return math.ldexp(1.0, math.ceil(math.log2(std)) - GRID_BITS)


def add_gaussian(
    values: Params | npt.NDArray[np.float64],
    std: float,
    rng: np.random.Generator,
) -> Any:
    """``values + N(0, std^2)`` per coordinate, in float64, snapped to the grid.

    Takes a :class:`Params` (returned as float64 Params of the same names and
    shapes) or one float64 array. ``std`` must be finite and positive; ``0``
    returns the values unchanged (a mechanism without noise is the caller's
    decision to make, and to account as not private).
    """
    if not (math.isfinite(std) and std >= 0):
        raise ValueError(f"noise standard deviation must be finite and >= 0: {std!r}")
    if isinstance(values, Params):
        return Params(
            {n: _noised(np.asarray(a, np.float64), std, rng) for n, a in values.items()}
        )
    return _noised(np.asarray(values, dtype=np.float64), std, rng)


def _noised(
    x: npt.NDArray[np.float64], std: float, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    if std == 0:
        return x.copy()
    step = grid_step(std)
    noised = x + rng.normal(0.0, std, size=x.shape)
    return np.round(noised / step) * step
