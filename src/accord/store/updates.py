"""A run's kept round updates, for contribution accounting (``[contribution]``).

With ``keep_updates = true`` each plain round writes, next to the checkpoints::

    {directory}/{run_id}/updates/round-{n:05d}/base.safetensors  # its start model
    {directory}/{run_id}/updates/round-{n:05d}/{k:04d}.safetensors  # k-th update

in the checkpoint format (:mod:`accord.store.checkpoint`: atomic writes, the digest
in the metadata and checked on load, never unpickled), with the participant's name
in the metadata (a site's name need not be a safe file name). Reading a round
checks each update's digest against the one recorded in the round's outcome, so a
file swapped or left from an earlier attempt of the round is refused rather than
scored. Disk cost: ``(valid updates + 1) x model size`` per round.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from accord.errors import StoreError
from accord.params import Params
from accord.records import ParticipantOutcome
from accord.store.checkpoint import (
    CheckpointStore,
    _layout,
    _read_metadata,
    _write_atomically,
)

__all__ = ["KeptRound", "UpdateArchive"]

logger = logging.getLogger(__name__)

_ROUND = re.compile(r"^round-(\d{5,})$")
_UPDATE = re.compile(r"^\d{4,}\.safetensors$")
_PARTICIPANT = "accord.participant"


@dataclass(frozen=True)
class KeptRound:
    """One round's base model and its valid updates with their example counts."""

    number: int
    base: Params
    sites: tuple[str, ...]
    updates: tuple[Params, ...]
    weights: tuple[int, ...]


class UpdateArchive:
    """Writes and reads kept updates under a checkpoint folder."""

    def __init__(self, checkpoints: CheckpointStore) -> None:
        self._checkpoints = checkpoints

    def folder(self, run_id: str, number: int) -> Path:
        """The folder of round ``number``'s kept updates."""
        run_folder = self._checkpoints.path(run_id, number).parent
        return run_folder / "updates" / f"round-{number:05d}"

    def begin(self, run_id: str, number: int, base: Params) -> None:
        """Start round ``number`` afresh (an earlier attempt's files go)."""
        folder = self.folder(run_id, number)
        try:
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
        except OSError as exc:
            raise StoreError(
                f"cannot keep updates in {folder}: {exc.strerror or exc}; make it "
                "writable or set [contribution] keep_updates = false"
            ) from exc
        self._write(folder / "base.safetensors", run_id, number, base, None)

    def keep(
        self, run_id: str, number: int, position: int, participant: str, update: Params
    ) -> Path:
        """Write one valid update of round ``number``."""
        target = self.folder(run_id, number) / f"{position:04d}.safetensors"
        self._write(target, run_id, number, update, participant)
        return target

    def rounds(self, run_id: str) -> list[int]:
        """The rounds of ``run_id`` that have kept updates, in order."""
        root = self._checkpoints.path(run_id, 0).parent / "updates"
        if not root.is_dir():
            return []
        return sorted(
            int(m.group(1))
            for p in root.iterdir()
            if (m := _ROUND.match(p.name)) and p.is_dir()
        )

    def load(
        self, run_id: str, number: int, outcomes: Sequence[ParticipantOutcome]
    ) -> KeptRound:
        """Round ``number``'s base and the updates of its ``ok`` outcomes, verified.

        :class:`StoreError` naming the site if an update is missing, damaged, or
        not the one whose digest the round recorded.
        """
        folder = self.folder(run_id, number)
        base = self._checkpoints.load(folder / "base.safetensors")
        found: dict[str, Params] = {}
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            if _UPDATE.match(path.name):
                who = _read_metadata(path).get(_PARTICIPANT, "")
                found[who] = self._checkpoints.load(path)
        sites, updates, weights = [], [], []
        for outcome in outcomes:
            if outcome.status != "ok":
                continue
            update = found.get(outcome.participant)
            if update is None:
                raise StoreError(
                    f"round {number} of run {run_id}: the update of "
                    f"{outcome.participant} was not kept in {folder}; contributions "
                    "need every valid update of a round"
                )
            if not update.matches(str(outcome.update_digest)):
                raise StoreError(
                    f"round {number} of run {run_id}: the kept update of "
                    f"{outcome.participant} is not the one the round recorded (digest "
                    f"{update.digest()[:12]}, recorded "
                    f"{str(outcome.update_digest)[:12]}); it was replaced or left "
                    "from an earlier attempt: the round's updates cannot be trusted"
                )
            if update.spec != base.spec:
                raise StoreError(
                    f"round {number}: the update of {outcome.participant} does not "
                    "fit the round's base model"
                )
            sites.append(outcome.participant)
            updates.append(update)
            weights.append(outcome.num_examples)
        return KeptRound(number, base, tuple(sites), tuple(updates), tuple(weights))

    def _write(
        self,
        target: Path,
        run_id: str,
        number: int,
        params: Params,
        participant: str | None,
    ) -> None:
        tensors, metadata = _layout(params, {})
        metadata.update({"accord.run_id": run_id, "accord.round": str(number)})
        if participant is not None:
            metadata[_PARTICIPANT] = participant
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(target, tensors, metadata)
        except OSError as exc:
            raise StoreError(
                f"cannot keep an update in {target}: {exc.strerror or exc}; check "
                "the disk, or set [contribution] keep_updates = false"
            ) from exc
        logger.debug("kept %s", target)
