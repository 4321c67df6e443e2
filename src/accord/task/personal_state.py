"""What a site keeps for itself under FedPer and Ditto, and where it keeps it.

Both methods give each site tensors that never leave it: FedPer's private layers
(chosen by glob patterns over parameter names, :class:`PrivateSelection`) and
Ditto's whole personal model. A :class:`PersonalStore` holds them per site name:

* :class:`MemoryStore` in a simulation, where each site is served by one warm
  worker process for the whole run (as the compression error feedback is);
* :class:`FileStore` at a deployed site: one safetensors file per site in the
  participant's state folder, written atomically, so that it survives a restart.

:class:`PersonalModels` is what the evaluation asks of a wrapper that keeps such
state: the site's own model for the published one
(:mod:`accord.task.personalization`).
"""

from __future__ import annotations

import fnmatch
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from safetensors.numpy import load_file, save_file

from accord.errors import ConfigError, StoreError
from accord.params import Params
from accord.task.protocol import Task

__all__ = [
    "FileStore",
    "MemoryStore",
    "PersonalModels",
    "PersonalStore",
    "PrivateSelection",
    "find_personal",
]

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class PrivateSelection:
    """FedPer's private tensors: the names matching any of the glob ``patterns``."""

    def __init__(self, patterns: Sequence[str]) -> None:
        if not patterns:
            raise ConfigError(
                "FedPer needs at least one pattern naming the private (head) "
                'tensors, e.g. private = ["fc2.*"]',
                key="personalization.private",
            )
        self.patterns = tuple(patterns)

    def is_private(self, name: str) -> bool:
        """True if ``name`` matches one of the patterns."""
        return any(fnmatch.fnmatchcase(name, p) for p in self.patterns)

    def check(self, names: Sequence[str]) -> None:
        """Refuse patterns that keep nothing, or everything, at the site."""
        private = [n for n in names if self.is_private(n)]
        listed = ", ".join(names)
        if not private:
            raise ConfigError(
                f"the patterns {list(self.patterns)} match none of the model's "
                f"parameters ({listed}): FedPer would keep nothing at the sites; "
                "name the head's tensors",
                key="personalization.private",
            )
        if len(private) == len(names):
            raise ConfigError(
                f"the patterns {list(self.patterns)} match every parameter of the "
                f"model ({listed}): nothing would be federated; keep only the "
                "head private",
                key="personalization.private",
            )

    def split(self, params: Params) -> tuple[Params, Params]:
        """``(shared, private)``, each in ``params``' order."""
        shared = [(n, a) for n, a in params.items() if not self.is_private(n)]
        private = [(n, a) for n, a in params.items() if self.is_private(n)]
        return Params(shared), Params(private)


class PersonalStore(Protocol):
    """A site's own tensors, by site name."""

    def load(self, site: str, *, like: Params) -> Params | None:
        """The site's tensors (shaped as ``like``), or None if it has none yet."""
        ...

    def save(self, site: str, params: Params) -> None:
        """Keep ``params`` as the site's tensors."""
        ...


class MemoryStore:
    """A simulated site's tensors, in the memory of the process serving it."""

    def __init__(self) -> None:
        self._kept: dict[str, Params] = {}

    def load(self, site: str, *, like: Params) -> Params | None:
        """The site's tensors, or None (``like`` is checked against them)."""
        kept = self._kept.get(site)
        if kept is not None:
            like.spec.check(kept)
        return kept

    def save(self, site: str, params: Params) -> None:
        """Keep a copy of ``params`` (the caller may reuse its buffers)."""
        self._kept[site] = params.copy()


class FileStore:
    """A deployed site's tensors: ``<directory>/<site>.safetensors``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, site: str) -> Path:
        if not _SAFE.match(site):
            raise ConfigError(
                f"site name {site!r} cannot name a file "
                "(letters, digits, '.', '_', '-')"
            )
        return self.directory / f"{site}.safetensors"

    def load(self, site: str, *, like: Params) -> Params | None:
        """The site's tensors; :class:`StoreError` if the file does not fit."""
        path = self._path(site)
        if not path.exists():
            return None
        try:
            raw = load_file(path)
            out = Params({n: raw[n] for n in like})
            like.spec.check(out)
        except Exception as exc:  # a torn or foreign file: say which
            raise StoreError(
                f"the site's personal model {path} is unreadable or does not fit the "
                f"model ({exc}); delete it to start the site's own tensors afresh"
            ) from exc
        return out

    def save(self, site: str, params: Params) -> None:
        """Write ``params`` atomically (a crash leaves the old file or the new)."""
        target = self._path(site)
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        os.close(fd)
        try:
            save_file({n: np.ascontiguousarray(a) for n, a in params.items()}, tmp)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


@runtime_checkable
class PersonalModels(Protocol):
    """A task wrapper that keeps each site's own model (FedPer, Ditto)."""

    @property
    def inner(self) -> Task:
        """The user's task, which scores the site's own (full) model."""
        ...

    def personal_model(self, params: Params, site: str) -> Params:
        """The site's own model, given the published model ``params``."""
        ...


def find_personal(task: object) -> PersonalModels | None:
    """The :class:`PersonalModels` wrapper in ``task``'s chain of wrappers, if any.

    Wrappers (the strategy's site part, a simulated site policy) expose what they
    wrap as ``task``.
    """
    seen = 0
    while task is not None and seen < 10:
        if isinstance(task, PersonalModels):
            return task
        task = getattr(task, "task", None)
        seen += 1
    return None
