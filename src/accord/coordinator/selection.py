"""Choosing a round's participants and deriving their seeds, reproducibly.

Both depend only on the run seed, the round number and the roster, so a simulated
federation and a deployed one with the same seed select the same sites and train them
with the same randomness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["derive_seed", "select"]


def derive_seed(run_seed: int, round_number: int, index: int) -> int:
    """A 32-bit seed for participant ``index`` in ``round_number`` of a run.

    32 bits because that is what every library accepts (NumPy's legacy RandomState,
    and so scikit-learn, refuses more).
    """
    seq = np.random.SeedSequence([run_seed, round_number, index])
    return int(seq.generate_state(1, dtype=np.uint32)[0])


def select(
    roster: Sequence[str],
    *,
    fraction: float,
    minimum: int,
    run_seed: int,
    round_number: int,
    count: int | None = None,
) -> tuple[str, ...]:
    """Sample ``ceil(fraction * n)`` participants (at least ``minimum``), roster order.

    ``count`` (``[selection] count``) samples that many instead of a fraction:
    a fixed number per round whatever the roster's size, which is how client
    sampling is usually stated. With every participant wanted (``fraction == 1``,
    or ``count`` at least the roster) all are chosen and no randomness is used.
    """
    n = len(roster)
    wanted = math.ceil(fraction * n) if count is None else count
    count = min(n, max(minimum, wanted))
    if count >= n:
        return tuple(roster)
    rng = np.random.default_rng([run_seed, round_number, 0x5E1EC7])
    chosen = np.sort(rng.choice(n, size=count, replace=False))
    return tuple(roster[i] for i in chosen)
