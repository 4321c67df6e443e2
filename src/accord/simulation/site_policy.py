"""Simulated sites' own privacy policies (``[privacy.sites.NAME]`` in fed.toml).

A real site enforces its policy in ``accord participant`` (``--max-epsilon``,
``--delta``, ``--require-dp``), with a privacy ledger in its identity folder. A
simulated site does the same, from fed.toml: :class:`GuardedTask` wraps the task
each simulation process builds, and before a site trains it asks that site's
:class:`~accord.participant.privacy_guard.PrivacyGuard`, which refuses (a
:class:`~accord.errors.TaskRefused`, reported as the site's refusal with its
reason; the round goes on without it) or lets it train and enters the round in the
site's ledger before the update leaves. Every path a simulated site trains by
(plain and secure rounds, every executor) goes through the task, so none skips the
check. The coordinator's settings never reach the guard.

A simulated site's ledger lives at ``<store directory>/sites/NAME/`` (the
``[store] directory`` of fed.toml), so that it carries over from one ``accord
simulate`` to the next as a real site's does.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from accord.config import FedConfig
from accord.data.arrays import ArrayData
from accord.errors import ConfigError, TaskRefused
from accord.params import Params
from accord.participant.policy import SitePolicy
from accord.participant.privacy_guard import PrivacyGuard, supports_dp_sgd
from accord.participant.privacy_ledger import LEDGER_FILE, PrivacyLedger
from accord.task.protocol import Task, TrainConfig, TrainResult

__all__ = ["GuardedTask", "guard_sites", "ledger_path"]


def ledger_path(config: FedConfig, site: str) -> Path:
    """Where simulated ``site`` keeps its privacy ledger."""
    directory = Path(config.store.directory)
    if not directory.is_absolute():
        directory = Path.cwd() / directory
    return directory / "sites" / site / LEDGER_FILE


class GuardedTask:
    """``task``, with each site's privacy guard consulted before it trains."""

    def __init__(self, task: Task, guards: Mapping[str, PrivacyGuard]) -> None:
        self.task = task
        self.guards = dict(guards)
        self.supports_dp_sgd = supports_dp_sgd(task)

    def init_params(self, seed: int) -> Params:
        """The wrapped task's initial parameters."""
        return self.task.init_params(seed)

    def train(
        self, params: Params, data: ArrayData, config: TrainConfig
    ) -> TrainResult:
        """Refuse (TaskRefused) what the site's policy forbids; else train, enter."""
        guard = self.guards.get(config.participant)
        if guard is None:
            return self.task.train(params, data, config)
        refusal = guard.refusal(config, supports_dp=self.supports_dp_sgd)
        if refusal is not None:
            raise TaskRefused(refusal)
        result = self.task.train(params, data, config)
        guard.spent(config)
        return result

    def predict(self, params: Params, x: npt.NDArray[np.float32]) -> Any:
        """The wrapped task's predictions."""
        return self.task.predict(params, x)


def guard_sites(config: FedConfig, task: Task, sites: tuple[str, ...]) -> Task:
    """``task`` guarded by the policies of ``[privacy.sites]`` (itself if none)."""
    policies = config.privacy.sites
    if not policies:
        return task
    unknown = sorted(set(policies) - set(sites))
    if unknown:
        raise ConfigError(
            f"no such sites: {', '.join(unknown)}; the sites are {', '.join(sites)}",
            key="privacy.sites",
        )
    guards = {}
    for name, settings in policies.items():
        policy = SitePolicy(
            require_dp=settings.require_dp,
            max_epsilon=settings.max_epsilon,
            dp_delta=settings.delta,
        )
        ledger = PrivacyLedger(ledger_path(config, name), delta=settings.delta)
        guards[name] = PrivacyGuard(policy, ledger=ledger)
    return GuardedTask(task, guards)
