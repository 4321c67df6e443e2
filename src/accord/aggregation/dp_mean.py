"""The mean of clipped updates with Gaussian noise: DP-FedAvg's aggregation.

Participant-level differential privacy (McMahan, Ramage, Talwar, Zhang 2018) bounds
what any one participant can change in the released model. Each update is clipped
to L2 norm ``clip``, so one participant moves the *sum* of updates by at most
``clip``; Gaussian noise of standard deviation ``noise_multiplier * clip`` on that
sum makes it a Gaussian mechanism; dividing by ``denominator`` (the number of
participants the round selected, fixed before any update is seen) gives the mean,
with noise ``noise_multiplier * clip / denominator``.

Weights are uniform: every participant counts once, whatever its number of
examples. McMahan et al. also allow weights bounded by a cap; accord keeps the
uniform ones because then the sensitivity is the clip and nothing else, and a
site's example count (which is itself data about the site) does not enter the
release at all. The denominator is the number selected, not the number that
answered: dividing by a count that depends on who dropped out would make the
scale data-dependent; a dropout only shrinks the update a little.

Updates are folded in the order they are added (the round adds them in selection
order) into a float64 sum, so with the same noise the result is the same bit for
bit in a simulation and a deployment. Memory is one float64 copy of the model.
"""

from __future__ import annotations

import math

import numpy as np

from accord.params import Array, Params, ParamSpec
from accord.privacy.clipping import clip_update
from accord.privacy.noise import add_gaussian

__all__ = ["DpMeanAccumulator"]


class DpMeanAccumulator:
    """Clip each added update, sum them, and release the noised mean once."""

    def __init__(
        self,
        spec: ParamSpec,
        *,
        clip: float,
        noise_multiplier: float,
        denominator: int,
        rng: np.random.Generator,
    ) -> None:
        if not (math.isfinite(clip) and clip > 0):
            raise ValueError(f"clip must be a finite number > 0, got {clip!r}")
        if not (math.isfinite(noise_multiplier) and noise_multiplier >= 0):
            raise ValueError(f"noise multiplier must be >= 0, got {noise_multiplier!r}")
        if denominator < 1:
            raise ValueError(f"the denominator must be >= 1, got {denominator}")
        self._spec = spec
        self._clip = clip
        self._std = noise_multiplier * clip
        self._denominator = denominator
        self._rng = rng
        self._sum: dict[str, Array] = {
            t.name: np.zeros(t.shape, dtype=np.float64) for t in spec.tensors
        }
        self._count = 0
        self._within = 0
        self._released = False

    @property
    def count(self) -> int:
        """Updates added."""
        return self._count

    @property
    def released(self) -> bool:
        """True once the noised mean was computed (the round spent its privacy)."""
        return self._released

    @property
    def within(self) -> int:
        """Updates whose norm was already within the clip (adaptive clipping's bit)."""
        return self._within

    def add(self, update: Params, weight: float) -> None:
        """Clip ``update`` and add it to the sum; ``weight`` is ignored (uniform).

        Raises :class:`~accord.errors.UpdateRejected` if the update's structure
        differs from the spec; the sum is then unchanged.
        """
        del weight  # participant-level DP counts every participant once
        if self._released:
            raise RuntimeError("the noised mean was released; start a new round")
        self._spec.check(update)
        clipped = clip_update(update, self._clip)
        for name, total in self._sum.items():
            np.add(total, clipped.update[name], out=total, dtype=np.float64)
        self._count += 1
        self._within += int(clipped.within)

    def result(self) -> Params:
        """The noised mean, in each tensor's dtype; noise is drawn once per round.

        A second call is refused: two noisy releases of the same sum would spend
        the privacy twice while the accountant counts it once.
        """
        if self._released:
            raise RuntimeError("the noised mean is released once per round")
        if self._count == 0:
            raise ValueError("no update has been added; the mean is undefined")
        self._released = True
        noised = add_gaussian(Params(self._sum), self._std, self._rng)
        return Params(
            {
                t.name: (noised[t.name] / self._denominator).astype(t.dtype)
                for t in self._spec.tensors
            }
        )
