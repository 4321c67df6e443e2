"""What a site releases after decrypting a CKKS sum: flooded with noise, rounded.

**Why.** A CKKS decryption is not the plaintext: it is the plaintext plus an error
that depends linearly on the secret key. Whoever learns both a decryption and the
plaintext behind it learns that error exactly, and a handful of such errors give
away the key (Li and Micciancio 2021, "On the security of homomorphic encryption on
approximate numbers": IND-CPA-D). So a site never releases the exact decryption.
It adds Gaussian noise that swamps the decryption error ("noise flooding"), then
rounds to a fixed-point grid, and only that leaves it (:func:`release`).

**Parameters** (for the default CKKS parameters, scale ``2**40``, ``N = 8192``):

* The decryption error of one upload is about ``1.9e-10`` RMS per value (largest
  seen ``8.7e-10``), ``2**7.7`` in units of the scale; a sum of ``n`` uploads
  carries ``sqrt(n)`` times that (``2e-9`` for 100 uploads).
* The flooding noise has standard deviation :data:`FLOOD_SIGMA` = ``2**-26``
  (``1.5e-8``; ``2**14`` units of the scale): 78 times the error of one upload, 25
  times that of a sum of 10 and 7.8 times that of a sum of 100. Each release is
  then a noisy linear equation in the key whose noise is at least that many times
  the error an IND-CPA-D attack needs exactly; recovering the key from such
  equations is a Ring-LWE problem in dimension 8192 with a modulus of 2**140 and
  an error of more than 2**10 units, far inside the parameters the homomorphic
  encryption standard rates at 128 bits (which assume an error of 3.2). It is a
  computational argument, not a statistical one: noise that made a release
  statistically independent of the error (2**40 or more times larger) would leave
  no precision for the model at this scale.
* The released value is rounded to :data:`RELEASE_STEP` = ``2**-30`` (``9.3e-10``),
  the resolution masking's fixed-point encoding gives a sum of two participants
  with ``clip = 1``: finer than any masking federation gets, and coarser than the
  decryption error of a single upload, whose low-order bits it drops.
* Noise comes from the operating system's cryptographic generator
  (:func:`system_normal`, Box-Muller over ``os.urandom``): numpy's generators are
  fast but predictable from their outputs, and predictable noise can be subtracted.

**Precision.** A released value differs from the exact sum by less than
``7 * FLOOD_SIGMA + RELEASE_STEP / 2 + 2e-9 * sqrt(n)`` (about ``1.1e-7`` for up to
100 uploads), except with probability ``2.6e-12`` per value (a Gaussian beyond 7
standard deviations): :data:`PRECISION`. The weighted mean ``sum(w x) / sum(w)``
is then within about ``PRECISION / sum(w)`` (plus the same relative error times the
mean): a federation whose weights are tiny (``max_examples`` far above the sites'
example counts) loses precision, as it does under masking.

**What it does not stop.** An *active* coordinator can have a site decrypt a
ciphertext it crafted instead of the sum (nothing in a CKKS ciphertext proves what
it adds up, and a crafted one passes the freshness checks): one whose decryption is
a large multiple of the key reveals the key through any noise. Noise flooding makes
releases safe against an honest-but-curious coordinator, which is all CKKS in
accord protects against (``docs/security.md``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "FLOOD_SIGMA",
    "PRECISION",
    "RELEASE_STEP",
    "NormalSource",
    "release",
    "system_normal",
]

#: Standard deviation of the flooding noise, per released value.
FLOOD_SIGMA = 2.0**-26
#: The grid a released value is rounded to.
RELEASE_STEP = 2.0**-30
#: Most a released value differs from the exact sum of up to 100 uploads, but for
#: a probability of 2.6e-12 per value.
PRECISION = 7 * FLOOD_SIGMA + RELEASE_STEP / 2 + 2e-9 * math.sqrt(100)

#: Draws ``size`` independent standard normal samples.
NormalSource = Callable[[int], npt.NDArray[np.float64]]

_U53 = 2.0**-53


def system_normal(size: int) -> npt.NDArray[np.float64]:
    """``size`` standard normal samples from ``os.urandom`` (Box-Muller)."""
    if size < 0:
        raise ValueError(f"size must not be negative, not {size}")
    pairs = (size + 1) // 2
    words = np.frombuffer(os.urandom(16 * pairs), dtype="<u8").reshape(2, pairs)
    radius_u = ((words[0] >> np.uint64(11)) + 1).astype(np.float64) * _U53  # (0, 1]
    angle_u = (words[1] >> np.uint64(11)).astype(np.float64) * _U53  # [0, 1)
    radius = np.sqrt(-2.0 * np.log(radius_u))
    angle = 2.0 * np.pi * angle_u
    return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])[:size]


def release(
    values: npt.NDArray[np.floating[Any]],
    *,
    normal: NormalSource = system_normal,
) -> npt.NDArray[np.float64]:
    """``values`` flooded with ``N(0, FLOOD_SIGMA**2)`` noise, rounded to the grid.

    ``normal`` is the noise source (tests pass a seeded one; nothing else should).
    ValueError if ``values`` holds NaN or infinity: a decryption that is not a sum.
    """
    exact = np.asarray(values, dtype=np.float64)
    if not np.isfinite(exact).all():
        raise ValueError("the decrypted sum holds NaN or infinity; nothing released")
    noise = np.asarray(normal(exact.size), dtype=np.float64).reshape(exact.shape)
    noisy = exact + FLOOD_SIGMA * noise
    return np.round(noisy / RELEASE_STEP) * RELEASE_STEP
