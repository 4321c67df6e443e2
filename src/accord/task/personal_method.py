"""Which site-kept personalization a site runs (FedPer or Ditto), as a value.

The simulation reads it from ``[personalization]`` (:meth:`PersonalMethod.of`); a
deployed site from ``accord participant --personalize`` or its ``sim:`` fed.toml.
:meth:`PersonalMethod.wrap` composes the user's task with the method and the
store that keeps the site's own tensors (memory in a simulation, the state folder
at a deployed site: :mod:`accord.task.personal_state`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from accord.config import FedConfig
from accord.task.ditto import DittoSite
from accord.task.fedper import FedPerSite
from accord.task.personal_state import MemoryStore, PersonalStore, PrivateSelection
from accord.task.protocol import Task

__all__ = ["PersonalMethod", "with_store"]


@dataclass(frozen=True, slots=True)
class PersonalMethod:
    """FedPer's private patterns, or Ditto's ``lambda``; ``seed`` of FedPer's head."""

    method: Literal["fedper", "ditto"]
    private: tuple[str, ...] = ()
    lam: float = 0.1
    seed: int = 0

    @classmethod
    def of(cls, config: FedConfig) -> PersonalMethod | None:
        """The method ``[personalization]`` declares; None for off and finetune."""
        p = config.personalization
        if p.method not in ("fedper", "ditto"):
            return None
        return cls(
            method=p.method,
            private=tuple(p.private),
            lam=p.lam,
            seed=config.federation.seed,
        )

    def wrap(self, task: Task, store: PersonalStore) -> Task:
        """``task`` doing this method, keeping the site's tensors in ``store``.

        :class:`~accord.errors.ConfigError` for FedPer patterns that match nothing
        or everything, or a task that cannot do Ditto.
        """
        if self.method == "fedper":
            return FedPerSite(
                task,
                private=PrivateSelection(self.private),
                store=store,
                seed=self.seed,
            )
        return DittoSite(task, lam=self.lam, store=store)

    def check(self, task: Task) -> None:
        """:class:`~accord.errors.ConfigError` now if ``task`` cannot do this."""
        self.wrap(task, MemoryStore())


def with_store(task: object, store: PersonalStore) -> Task | None:
    """``task``, a FedPer or Ditto wrapper, keeping its tensors in ``store``.

    None if ``task`` is neither.
    """
    if isinstance(task, FedPerSite | DittoSite):
        return task.with_store(store)
    return None
