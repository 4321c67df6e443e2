"""The Skellam mechanism: integer noise for distributed DP inside secure aggregation.

Under secure aggregation (masking) no single party may add the noise: each site
adds its *share* to its own integer-encoded update, and the coordinator only ever
sees the sum. The noise must therefore be integer (the encoding lives in a ring)
and its shares must add up to a distribution that can be accounted. accord uses
the symmetric Skellam distribution ``Sk(mu) = Poisson(mu) - Poisson(mu)``
(Agarwal, Kairouz and Liu 2021, "The Skellam Mechanism for Differentially Private
Federated Learning") rather than the discrete Gaussian (Canonne, Kamath and Steinke
2020), because:

- the sum of independent ``Sk(mu_i)`` is exactly ``Sk(sum mu_i)``: whatever set of
  sites survives a round, the noise in the sum is a Skellam whose parameter is the
  sum of the survivors' shares, so the round is accounted *exactly* for the
  realised survivors. A sum of discrete Gaussians is not a discrete Gaussian, and
  needs the looser "distributed discrete Gaussian" bound of Kairouz, Liu and
  Steinke (2021);
- sampling needs only a Poisson sampler, which numpy has (no maintained exact
  discrete-Gaussian sampler exists for numpy; ``dp-accounting`` does not sample).
  numpy's Poisson draws integers, so the low-bit floating-point attacks on
  continuous samplers (Mironov 2012) have no low bits to read; the generator is
  seeded with 128 bits from the OS CSPRNG per draw
  (:class:`~accord.privacy.NoiseSource`). numpy's sampler (transformed rejection,
  in double precision) is only accurate for moderate parameters: measured with a
  seeded sample, its variance is right to 1e-4 up to 1e13 but 4 % too high at 1e15
  and 10 % at 2.25e15. :func:`sample_skellam` refuses parameters above
  :data:`MAX_MU` (2^40), and the ring encoding keeps shares far below it.

**Privacy.** For a vector query with integer L2 sensitivity ``l2`` and L1
sensitivity ``l1``, adding ``Sk(mu)`` to every coordinate is ``(alpha, eps(alpha))``
Rényi DP for every integer ``alpha > 1`` with (Agarwal et al. 2021, Theorem 3.5)::

    eps(alpha) = alpha * l2^2 / (4 mu)
                 + min(((2 alpha - 1) l2^2 + 6 l1) / (16 mu^2), 3 l1 / (4 mu))

The first term is the Gaussian mechanism's RDP at the same variance (``2 mu``);
the second vanishes as ``mu`` grows. ``dp-accounting`` has no Skellam event, so
:mod:`accord.privacy.distributed` composes these curves itself and converts them
to (epsilon, delta) with ``dp-accounting``'s conversion.

**Tails.** ``Sk(mu)`` is a difference of two centred Poissons, each satisfying
Bernstein's inequality with variance ``mu`` and scale 1, so
``P(|Sk(mu)| >= tau) <= 2 exp(-tau^2 / (2 (2 mu + tau / 3)))``:
:func:`tail_bound` inverts it to size the ring against wraparound.

This module is pure (numpy and math only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "MAX_MU",
    "RDP_ORDERS",
    "integer_sensitivity",
    "sample_skellam",
    "skellam_rdp",
    "tail_bound",
]

#: The integer Rényi orders the Skellam bound is stated for.
RDP_ORDERS: tuple[int, ...] = (*range(2, 65), 80, 96, 128, 192, 256, 512, 1024)

#: The largest Skellam parameter sampled: numpy's Poisson sampler drifts above
#: about 1e14 (module docstring), so 2^40 (1.1e12) leaves a wide margin.
MAX_MU = 2.0**40


def sample_skellam(
    mu: float, size: int, rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    """``size`` independent draws of ``Sk(mu) = Poisson(mu) - Poisson(mu)``.

    Integers (int64); ``mu = 0`` gives zeros. The caller brings the generator
    (fresh per draw and CSPRNG-seeded in a deployment).
    """
    m = float(mu)
    if not (math.isfinite(m) and 0 <= m <= MAX_MU):
        raise ValueError(f"a Skellam parameter must be in [0, {MAX_MU:g}], not {mu!r}")
    if size < 0:
        raise ValueError(f"size must be >= 0, not {size}")
    if m == 0:
        return np.zeros(size, dtype=np.int64)
    plus = rng.poisson(m, size).astype(np.int64)
    plus -= rng.poisson(m, size).astype(np.int64)
    return plus


def integer_sensitivity(units: float, dim: int) -> tuple[float, float]:
    """L2 and L1 sensitivity of a vector of ``dim`` integers, rounded from L2 ``units``.

    Rounding each coordinate (stochastically or not) moves it by less than 1, so
    the rounded vector's L2 norm is below ``units + sqrt(dim)`` (triangle
    inequality). For an integer vector ``|x|_1 <= |x|_2^2`` (each ``|x_i| <= x_i^2``)
    and ``|x|_1 <= sqrt(dim) |x|_2``; the smaller of the two is the L1 bound.
    """
    if not (math.isfinite(units) and units > 0) or dim < 1:
        raise ValueError(f"need units > 0 and dim >= 1, got {units!r}, {dim}")
    l2 = units + math.sqrt(dim)
    return l2, min(l2 * l2, math.sqrt(dim) * l2)


def skellam_rdp(
    mu: float, *, l2: float, l1: float, orders: Sequence[int] = RDP_ORDERS
) -> npt.NDArray[np.float64]:
    """The Skellam mechanism's RDP at each integer order (Agarwal et al. 2021)."""
    if not (math.isfinite(mu) and mu > 0):
        raise ValueError(f"a Skellam parameter must be > 0 to be private, not {mu!r}")
    if not (l2 > 0 and l1 > 0):
        raise ValueError(f"sensitivities must be > 0, got l2={l2!r}, l1={l1!r}")
    out = np.empty(len(orders), dtype=np.float64)
    for i, alpha in enumerate(orders):
        if int(alpha) != alpha or alpha < 2:
            raise ValueError(f"the Skellam bound holds at integer orders >= 2: {alpha}")
        gaussian = alpha * l2 * l2 / (4 * mu)
        second = min(
            ((2 * alpha - 1) * l2 * l2 + 6 * l1) / (16 * mu * mu), 3 * l1 / (4 * mu)
        )
        out[i] = gaussian + second
    return out


def tail_bound(mu: float, *, coordinates: int, failure: float) -> float:
    """A ``tau`` that no coordinate of ``coordinates`` draws of ``Sk(mu)`` reaches.

    Except with probability at most ``failure``.

    From Bernstein's inequality (module docstring) and a union bound over the
    coordinates: ``tau = L/3 + sqrt(L^2/9 + 4 L mu)`` with
    ``L = ln(2 coordinates / failure)``.
    """
    if not (0 < failure < 1) or coordinates < 1 or mu < 0:
        raise ValueError("need mu >= 0, coordinates >= 1 and failure in (0, 1)")
    log_term = math.log(2 * coordinates / failure)
    return log_term / 3 + math.sqrt(log_term * log_term / 9 + 4 * log_term * mu)
