"""Update-level poisoning: what a malicious site sends instead of its honest update.

Pure numpy over flat float64 vectors (one row per update), so every attack is a
function that can be tested on its own:

- **sign flipping**: ``-scale * own`` (scale 1 unless set).
- **scaling / model replacement** (Bagdasaryan et al., 2020): ``scale * own``;
  with ``scale`` left unset it is the number of participants in the round, the
  boost that makes the attacker's model replace the global one under FedAvg.
  Combined with a backdoor (``[attack.backdoor]``) it is their model replacement.
- **Gaussian noise**: ``N(0, noise_std^2)`` per coordinate, seeded per round and site.
- **ALIE**, "A little is enough" (Baruch et al., 2019): ``mean + z * std`` of the
  honest updates per coordinate; by default ``z`` is the paper's ``z_max``:
  ``s = floor(n / 2 + 1) - f`` and ``z = Phi^-1((n - s) / n)`` for ``n``
  participants of which ``f`` are malicious. With a backdoor (``[attack.backdoor]``)
  it is the paper's backdooring attack instead: each malicious site trains on its
  poisoned rows, then sends its own update projected per coordinate into
  ``[mean - z * std, mean + z * std]`` of the honest updates, so that the backdoor
  rides inside the honest spread.
- **IPM**, inner-product manipulation (Xie et al., 2019): ``-epsilon * mean``.
- **min-max / min-sum** (Shejwalkar & Houmansadr, NDSS 2021): ``mean - gamma * p``
  with ``p`` the unit vector of the mean, the coordinate-wise std or the sign of
  the mean; ``gamma`` is the largest found by their halving search such that the
  malicious update's largest (min-max) or summed squared (min-sum) distance to the
  honest updates stays within the largest such value among honest updates.

ALIE, IPM and min-max / min-sum are *omniscient*: they are given the round's honest
updates, which the simulation engine has (:mod:`accord.simulation.adversary`); every
colluding site sends the same crafted vector. With no honest update in the round
they use the malicious sites' own honest-trained updates instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "KINDS",
    "OMNISCIENT",
    "UpdateAttack",
    "alie",
    "alie_backdoor",
    "alie_z",
    "ipm",
    "min_max",
    "min_sum",
]

Vector = npt.NDArray[np.float64]
Direction = Literal["unit_vec", "std", "sign"]

#: Attacks that need the round's honest updates.
OMNISCIENT = frozenset({"alie", "ipm", "min_max", "min_sum"})
#: Every kind :class:`UpdateAttack` knows; the data attacks leave updates alone.
KINDS = OMNISCIENT | {"sign_flip", "scaling", "gaussian", "label_flip", "backdoor"}


def alie_z(n: int, f: int) -> float:
    """Baruch et al.'s ``z_max`` for ``n`` participants, ``f`` of them malicious.

    ``s = floor(n / 2 + 1) - f`` honest participants must be won over; ``z`` is
    the standard normal quantile of ``(n - s) / n``, kept inside (0, 1) so that
    ``z`` stays finite.
    """
    if n < 1 or not 0 <= f <= n:
        raise ValueError(f"need 0 <= f <= n and n >= 1, got n={n}, f={f}")
    s = math.floor(n / 2 + 1) - f
    p = min(max((n - s) / n, 1e-6), 1 - 1e-6)
    return NormalDist().inv_cdf(p)


def _stats(honest: Vector) -> tuple[Vector, Vector]:
    mean = honest.mean(axis=0)
    std = honest.std(axis=0) if len(honest) > 1 else np.zeros_like(mean)
    return mean, std


def alie(honest: Vector, *, z: float) -> Vector:
    """``mean + z * std`` of the rows of ``honest``, per coordinate."""
    mean, std = _stats(honest)
    return mean + z * std


def alie_backdoor(own: Vector, honest: Vector, *, z: float) -> Vector:
    """Each row of ``own`` clipped per coordinate to ``mean +- z * std`` of ``honest``.

    Baruch et al.'s backdooring attack in its projection form: the malicious sites'
    backdoor-trained updates, kept within ``z`` standard deviations of the honest
    mean at every coordinate, where robust rules cannot tell them from honest ones.
    """
    mean, std = _stats(honest)
    return np.clip(own, mean - z * std, mean + z * std)


def ipm(honest: Vector, *, epsilon: float) -> Vector:
    """``-epsilon * mean`` of the rows of ``honest``."""
    return np.asarray(-epsilon * honest.mean(axis=0), dtype=np.float64)


def _deviation(honest: Vector, direction: Direction) -> Vector:
    mean, std = _stats(honest)
    if direction == "std":
        return std
    if direction == "sign":
        return np.asarray(np.sign(mean), dtype=np.float64)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else np.zeros_like(mean)


def _sq_distances(rows: Vector, point: Vector) -> Vector:
    return np.asarray(((rows - point) ** 2).sum(axis=1), dtype=np.float64)


def _honest_bound(honest: Vector, reduce: Literal["max", "sum"]) -> float:
    """Largest max (or sum) of squared distances from one honest update to the rest."""
    gram = honest @ honest.T
    sq = np.diag(gram)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0)
    per = d2.max(axis=1) if reduce == "max" else d2.sum(axis=1)
    return float(per.max())


def _gamma_search(
    honest: Vector,
    direction: Direction,
    reduce: Literal["max", "sum"],
    *,
    gamma_init: float,
    tolerance: float,
) -> Vector:
    """Shejwalkar & Houmansadr's halving search for the largest admissible gamma."""
    mean, _ = _stats(honest)
    dev = _deviation(honest, direction)
    bound = _honest_bound(honest, reduce)
    gamma, step, best = gamma_init, gamma_init, 0.0
    while abs(best - gamma) > tolerance:
        d2 = _sq_distances(honest, mean - gamma * dev)
        if (d2.max() if reduce == "max" else d2.sum()) <= bound:
            best = gamma
            gamma += step / 2
        else:
            gamma -= step / 2
        step /= 2
    return mean - best * dev


def min_max(
    honest: Vector,
    *,
    direction: Direction = "std",
    gamma_init: float = 10.0,
    tolerance: float = 1e-5,
) -> Vector:
    """Min-max: as far as possible while no farther from any honest than they are."""
    return _gamma_search(
        honest, direction, "max", gamma_init=gamma_init, tolerance=tolerance
    )


def min_sum(
    honest: Vector,
    *,
    direction: Direction = "std",
    gamma_init: float = 10.0,
    tolerance: float = 1e-5,
) -> Vector:
    """Min-sum: summed squared distance to the honest within theirs to each other."""
    return _gamma_search(
        honest, direction, "sum", gamma_init=gamma_init, tolerance=tolerance
    )


@dataclass(frozen=True, slots=True)
class UpdateAttack:
    """One configured update attack; :meth:`craft` makes the malicious updates."""

    kind: str
    scale: float | None = None
    noise_std: float = 1.0
    z: float | None = None
    epsilon: float = 0.5
    direction: Direction = "std"
    gamma_init: float = 10.0
    tolerance: float = 1e-5
    #: The malicious sites trained on backdoored rows (``[attack.backdoor]``):
    #: ALIE then projects their own updates instead of replacing them.
    backdoor: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"unknown attack kind {self.kind!r}; choose one of "
                f"{', '.join(sorted(KINDS))}"
            )

    @property
    def omniscient(self) -> bool:
        """True when the attack needs the round's honest updates."""
        return self.kind in OMNISCIENT

    def craft(
        self,
        own: Vector,
        honest: Vector,
        *,
        n_round: int,
        rng: np.random.Generator,
    ) -> Vector:
        """The malicious updates, one row per row of ``own`` (their honest ones).

        ``honest`` holds the round's honest updates (rows; may be empty), used by
        omniscient attacks; ``n_round`` counts every participant of the round.
        """
        if self.kind == "sign_flip":
            return -(1.0 if self.scale is None else self.scale) * own
        if self.kind == "scaling":
            return (float(n_round) if self.scale is None else self.scale) * own
        if self.kind == "gaussian":
            return rng.normal(0.0, self.noise_std, size=own.shape)
        if not self.omniscient:
            return own  # a data attack: the update is what the poisoned data gave
        ref = honest if len(honest) else own
        if self.kind == "alie" and self.backdoor:
            z = alie_z(n_round, len(own)) if self.z is None else self.z
            return alie_backdoor(own, ref, z=z)
        crafted = self._omniscient(ref, n_round=n_round, f=len(own))
        return np.tile(crafted, (len(own), 1))

    def _omniscient(self, ref: Vector, *, n_round: int, f: int) -> Vector:
        if self.kind == "alie":
            z = alie_z(n_round, f) if self.z is None else self.z
            return alie(ref, z=z)
        if self.kind == "ipm":
            return ipm(ref, epsilon=self.epsilon)
        search = min_max if self.kind == "min_max" else min_sum
        return search(
            ref,
            direction=self.direction,
            gamma_init=self.gamma_init,
            tolerance=self.tolerance,
        )
