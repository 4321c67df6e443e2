"""The simulation's virtual clock: how long a site's training job takes.

A simulated federation runs on one machine, so its wall-clock times say nothing
about sites of different speeds; and arrival order left to the scheduler would make
an asynchronous run irreproducible. The simulation therefore charges each train job
a virtual duration: one unit per local batch step (``epochs × ceil(rows /
batch_size)``), times the site's ``[simulation] slowdown`` factor (1 unless named).
A site with more data takes longer, as it would; a slow site takes ``factor`` times
longer still. Synchronous rounds and asynchronous versions are both recorded on
this clock (metric ``train.virtual_time``), so the two modes compare on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from accord.config import FedConfig
from accord.errors import ConfigError

__all__ = ["job_times"]


def job_times(
    config: FedConfig, site_rows: Mapping[str, int]
) -> Callable[[str], float]:
    """Each site's train-job duration in batch steps (see module doc).

    :class:`ConfigError` if ``[simulation] slowdown`` names a site the
    federation does not have.
    """
    slowdown = config.simulation.slowdown
    unknown = sorted(set(slowdown) - set(site_rows))
    if unknown:
        known = ", ".join(sorted(site_rows)[:10]) + (
            ", ..." if len(site_rows) > 10 else ""
        )
        raise ConfigError(
            f"names {', '.join(unknown)}, not a site of this federation (its sites: "
            f"{known})",
            key="simulation.slowdown",
        )
    train = config.train
    durations = {
        site: train.epochs
        * max(1, math.ceil(rows / train.batch_size))
        * slowdown.get(site, 1.0)
        for site, rows in site_rows.items()
    }

    def job_time(site: str) -> float:
        return durations[site]

    return job_time
