"""What every process of a simulation builds once: the sites' data and the task.

Partitioning is deterministic in the seed, so each worker process rebuilds exactly the
same federation from the configuration instead of receiving data over a pipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from accord.config import FedConfig
from accord.data.federation import FederatedData, Site, build_federation
from accord.task.loading import load_task
from accord.task.protocol import Task

__all__ = ["SimContext", "build_context"]


@dataclass(frozen=True, slots=True)
class SimContext:
    """The federation's data (every site, and the central test set) and the task."""

    data: FederatedData
    task: Task

    @property
    def participants(self) -> tuple[str, ...]:
        """Site names in partition order."""
        return tuple(s.name for s in self.data.sites)

    def site(self, name: str) -> Site:
        """The site called ``name``."""
        for s in self.data.sites:
            if s.name == name:
                return s
        raise KeyError(name)


def build_context(config: FedConfig) -> SimContext:
    """Load and split the data, then build the task for it."""
    d = config.data
    base = Path(config.base_dir)
    options = dict(d.options)
    if d.dataset.startswith("csv:"):
        path = Path(d.dataset[4:])
        dataset = f"csv:{path if path.is_absolute() else base / path}"
    else:
        dataset = d.dataset
    data = build_federation(
        dataset,
        partition=d.partition,
        sites=d.sites,
        seed=config.federation.seed,
        alpha=d.alpha,
        test_fraction=d.test_fraction,
        holdout_fraction=d.holdout_fraction,
        site_column=d.site_column,
        other=d.other,
        min_site_size=d.min_site_size,
        options=options,
    )
    task = load_task(
        config.task.factory, data.info, options=config.task.options, base_dir=base
    )
    return SimContext(data=data, task=task)
