"""What a site keeps for itself under FedPer and Ditto, and where it keeps it.

Both methods give each site tensors that never leave it: FedPer's private layers
(chosen by glob patterns over parameter names, :class:`PrivateSelection`) and
Ditto's whole personal model. A :class:`PersonalStore` holds them per site name:

* :class:`MemoryStore` in a simulation, where each site is served by one warm
  worker process for the whole run (as the compression error feedback is);
* :class:`FileStore` at a deployed site: safetensors files in the participant's
  state folder, written atomically, so that they survive a restart.

Both keep the tensors by the round that produced them, and a round loads the
newest of an *earlier* round: a round trained again (the coordinator was
interrupted before recording it) starts from what the first attempt started from,
so a resumed run matches an uninterrupted one, as SCAFFOLD's ``c_i`` does.

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
from accord.task.site_folder import site_folder

__all__ = [
    "FileStore",
    "MemoryStore",
    "PersonalModels",
    "PersonalStore",
    "PrivateSelection",
    "find_personal",
    "run_folder",
]

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_WIRE = re.compile(r"\.[0-9a-f]{8}$")
_FILE = re.compile(r"^round-(\d{5,})\.safetensors$")
#: Rounds a store keeps per site: the newest, and the one before for a re-run.
_KEPT = 2


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
    """A site's own tensors, by site name and the round that produced them."""

    def load(self, site: str, *, like: Params, before: int) -> Params | None:
        """The newest tensors of a round before ``before`` (shaped as ``like``).

        None if the site has none yet.
        """
        ...

    def save(self, site: str, round_number: int, params: Params) -> None:
        """Keep ``params`` as the site's tensors after ``round_number``."""
        ...


class MemoryStore:
    """A simulated site's tensors, in the memory of the process serving it."""

    def __init__(self) -> None:
        self._kept: dict[str, dict[int, Params]] = {}

    def load(self, site: str, *, like: Params, before: int) -> Params | None:
        """The newest tensors before round ``before``, or None."""
        rounds = [r for r in self._kept.get(site, {}) if r < before]
        if not rounds:
            return None
        kept = self._kept[site][max(rounds)]
        like.spec.check(kept)
        return kept

    def save(self, site: str, round_number: int, params: Params) -> None:
        """Keep a copy of ``params`` (the caller may reuse its buffers)."""
        kept = self._kept.setdefault(site, {})
        kept[round_number] = params.copy()
        for old in sorted(kept)[:-_KEPT]:
            del kept[old]


def run_folder(wire_run_id: str) -> str:
    """The folder name of a run's state: its id before the wire suffix.

    :class:`ConfigError` for an id that cannot name a folder (``../..``, a
    separator, a leading dot): a site refuses such a task before anything.
    """
    run = _WIRE.sub("", wire_run_id)
    if not _SAFE.match(run):
        raise ConfigError(f"run id {run[:100]!r} cannot name a folder")
    return run


class FileStore:
    """A deployed site's tensors: ``<directory>/<site>/round-NNNNN.safetensors``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def for_run(cls, state_dir: Path, wire_run_id: str) -> FileStore:
        """The store of one run under a site's ``state_dir``: ``personal/<run>``.

        ``wire_run_id`` is the id a coordinator process uses on the wire
        (``{run}.{8 hex}``); the store's run id before its suffix names the
        folder, so a coordinator that resumes the run finds the same tensors.
        :class:`ConfigError` for an id that cannot name a folder.
        """
        return cls(state_dir / "personal" / run_folder(wire_run_id))

    def folder(self, site: str) -> Path:
        """Where ``site``'s files are."""
        return self.directory / site_folder(site)

    def _rounds(self, folder: Path) -> list[int]:
        if not folder.is_dir():
            return []
        return sorted(
            int(m.group(1)) for p in folder.iterdir() if (m := _FILE.match(p.name))
        )

    def load(self, site: str, *, like: Params, before: int) -> Params | None:
        """The newest file before ``before``; :class:`StoreError` if it is unfit."""
        folder = self.folder(site)
        earlier = [r for r in self._rounds(folder) if r < before]
        if not earlier:
            return None
        path = folder / f"round-{earlier[-1]:05d}.safetensors"
        try:
            raw = load_file(path)
            out = Params({n: raw[n] for n in like})
            like.spec.check(out)
        except Exception as exc:  # a torn or foreign file: say which
            raise StoreError(
                f"the site's own tensors in {path} are unreadable or do not fit the "
                f"model ({exc}); delete {folder} to start them afresh"
            ) from exc
        return out

    def save(self, site: str, round_number: int, params: Params) -> None:
        """Write atomically (a crash leaves the old file or the new); prune."""
        folder = self.folder(site)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"round-{round_number:05d}.safetensors"
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        os.close(fd)
        try:
            save_file({n: np.ascontiguousarray(a) for n, a in params.items()}, tmp)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        for r in self._rounds(folder)[:-_KEPT]:
            if r < round_number:
                (folder / f"round-{r:05d}.safetensors").unlink(missing_ok=True)


@runtime_checkable
class PersonalModels(Protocol):
    """A task wrapper that keeps each site's own model (FedPer, Ditto)."""

    @property
    def inner(self) -> Task:
        """The user's task, which scores the site's own (full) model."""
        ...

    def personal_model(
        self, params: Params, site: str, *, before: int = 2**62
    ) -> Params:
        """The site's own model (as of a round before ``before``) for ``params``."""
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
