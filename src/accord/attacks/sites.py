"""Which sites are malicious: named in ``[attack]``, or drawn with the run's seed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from accord.config import AttackConfig
from accord.errors import ConfigError

__all__ = ["malicious_sites"]

#: Salt of the draw, so that it does not repeat any other use of the run's seed.
_SALT = 0xA77AC4


def malicious_sites(
    config: AttackConfig, participants: Sequence[str], seed: int
) -> tuple[str, ...]:
    """The malicious sites among ``participants``, in partition order.

    ``count`` or ``fraction`` (rounded, at least one) of them are drawn with
    ``seed``; names in ``sites`` must all be participants.
    """
    if config.sites:
        unknown = sorted(set(config.sites) - set(participants))
        if unknown:
            raise ConfigError(
                f"names {', '.join(unknown)}, not a site of this federation; its "
                f"sites are {', '.join(participants)}",
                key="attack.sites",
            )
        chosen = set(config.sites)
    else:
        n = len(participants)
        if config.count is not None:
            k = config.count
        else:
            k = max(1, round((config.fraction or 0.0) * n))
        if k >= n:
            raise ConfigError(
                f"{k} malicious sites of {n} leaves no honest site; lower "
                "attack.count or attack.fraction",
                key="attack.count" if config.count is not None else "attack.fraction",
            )
        rng = np.random.default_rng([seed, _SALT])
        chosen = {participants[i] for i in rng.choice(n, size=k, replace=False)}
    return tuple(p for p in participants if p in chosen)
