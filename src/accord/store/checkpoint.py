"""Checkpoints of the global model as safetensors files, written atomically.

One file per round: ``{directory}/{run_id}/round-{n:05d}.safetensors``. safetensors
holds raw tensors and a str -> str header, and is never unpickled, so a checkpoint
from elsewhere can be read safely. Two things it does not do are done here:

* **Order.** safetensors sorts tensor names; :class:`~accord.params.Params` is
  ordered. The order is kept in the metadata and restored on load.
* **Integrity.** The params digest is kept in the metadata and checked on load, so a
  truncated or edited file raises :class:`StoreError` instead of loading.
* **Bounded reading.** The JSON header (and the JSON inside its metadata) is read
  only if it is at most :data:`MAX_HEADER_BYTES` and nests at most
  :data:`MAX_JSON_DEPTH` deep, measured before it is parsed: Python's json parser
  recurses per level, so a header nested a few thousand deep would raise
  ``RecursionError`` on ``--resume`` instead of a message.

A write goes to a temporary file in the same directory, is fsynced, then renamed over
the final name (``os.replace`` is atomic): a crash leaves the old file or the new
one, never half of one. Once on disk, its pages are dropped from the page cache
(``POSIX_FADV_DONTNEED``): a checkpoint is read again only by a resume, and a run
writes one a round, whose cached pages the kernel would otherwise have to reclaim
while the next ones are written (on the benchmark machine a 40 MB write cost 16 ms
of CPU into a page cache without them, 150 ms into one that kept them).

``extra`` groups (server-optimizer state) are stored next to the model under
``{group}/{name}`` and verified the same way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from safetensors.numpy import load_file, save_file

from accord.errors import StoreError, excerpt
from accord.params import Array, Params

if TYPE_CHECKING:
    from accord.store.updates import UpdateArchive

__all__ = [
    "MAX_HEADER_BYTES",
    "MAX_JSON_DEPTH",
    "Checkpoint",
    "CheckpointStore",
    "bounded_json",
    "checkpoint_origin",
    "json_depth",
]

logger = logging.getLogger(__name__)

_FORMAT = "accord-checkpoint/1"
_NAME = re.compile(r"^round-(\d{5,})\.safetensors$")
#: A checkpoint's temporary file while it is written (:func:`_write_atomically`).
_PARTIAL = re.compile(r"^\.round-\d+\.safetensors\..+\.tmp$")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: The largest JSON header read (accord writes ~150 bytes per tensor: 100k tensors).
MAX_HEADER_BYTES = 16 << 20
#: How deep the header's JSON may nest; accord's nests 3 deep, its metadata 2.
MAX_JSON_DEPTH = 8
# A JSON string, escapes included (the unrolled form: no backtracking).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A loaded, verified checkpoint: the model, its extra groups and their origin."""

    run_id: str
    round_number: int
    params: Params
    extra: dict[str, Params] = field(default_factory=dict)


class CheckpointStore:
    """Saves and loads per-round checkpoints under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self._directory = Path(directory)

    @property
    def directory(self) -> Path:
        """The root folder; each run has a subfolder named by its id."""
        return self._directory

    def path(self, run_id: str, round_number: int) -> Path:
        """Where the checkpoint of ``round_number`` of ``run_id`` lives."""
        if not _SAFE_ID.match(run_id):
            raise StoreError(
                f"run id {run_id!r} cannot name a folder; use letters, digits, '.', "
                "'_' and '-' only"
            )
        if round_number < 0:
            raise StoreError(f"round number is {round_number}; must be >= 0")
        return self._directory / run_id / f"round-{round_number:05d}.safetensors"

    def save(
        self,
        run_id: str,
        round_number: int,
        params: Params,
        *,
        extra: Mapping[str, Params] | None = None,
        digest: str | None = None,
    ) -> Path:
        """Write the checkpoint atomically and durably; return its path.

        ``digest``, when the caller has it already, is ``params.digest()`` (it is
        not recomputed: hashing a large model takes a while).
        """
        target = self.path(run_id, round_number)
        tensors, metadata = _layout(params, extra or {}, digest)
        metadata.update({"accord.run_id": run_id, "accord.round": str(round_number)})
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(target, tensors, metadata)
        except OSError as exc:
            raise StoreError(
                f"cannot write checkpoint {target}: {exc.strerror or exc}; check "
                "that the directory is writable and the disk is not full"
            ) from exc
        logger.debug("saved checkpoint %s", target)
        return target

    def updates(self) -> UpdateArchive:
        """The run updates kept next to these checkpoints (``[contribution]``)."""
        from accord.store.updates import UpdateArchive  # it builds on this module

        return UpdateArchive(self)

    def check_writable(self) -> None:
        """:class:`StoreError` naming the folder if checkpoints cannot be written.

        Creates the folder and a scratch file in it (removed at once): checked
        before a run starts, so that a read-only or missing folder stops it with a
        reason instead of aborting it after its first round.
        """
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self._directory, prefix=".write-check-"):
                pass
        except OSError as exc:
            raise StoreError(
                f"cannot write checkpoints in {self._directory}: "
                f"{exc.strerror or exc}; make the folder writable for this user, or "
                "point [store] directory elsewhere"
            ) from exc

    def load(self, path: Path) -> Params:
        """The model stored at ``path``, verified against its digest."""
        return self.load_checkpoint(path).params

    def load_checkpoint(self, path: Path) -> Checkpoint:
        """The model and extra groups at ``path``, each verified against its digest."""
        metadata = _read_metadata(path)
        try:
            tensors = load_file(path)
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise _corrupt(path, str(exc)) from exc
        return _assemble(path, tensors, metadata)

    def latest(self, run_id: str) -> tuple[int, Path] | None:
        """The highest round with a checkpoint for ``run_id``, and its path."""
        found = self._found(run_id)
        return max(found) if found else None

    def rounds(self, run_id: str) -> list[int]:
        """The rounds of ``run_id`` that have a checkpoint file, in order.

        Only the file names are read: cheap enough to check before a run resumes
        that the store has not lost rounds its checkpoints show were committed.
        """
        return sorted(number for number, _ in self._found(run_id))

    def discard_partial(self, run_id: str) -> list[Path]:
        """Remove the half-written files a killed writer left in ``run_id``'s folder.

        A checkpoint is written to a temporary file and renamed into place
        (:func:`_write_atomically`); a process killed before the rename leaves the
        temporary file, a whole model's size, that nothing reads. Call this only
        while holding the run (its lease), before it writes again. Returns what
        was removed.
        """
        folder = self.path(run_id, 0).parent
        if not folder.is_dir():
            return []
        removed = []
        for p in folder.iterdir():
            if _PARTIAL.match(p.name) and p.is_file():
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed.append(p)
        return removed

    def _found(self, run_id: str) -> list[tuple[int, Path]]:
        folder = self.path(run_id, 0).parent
        if not folder.is_dir():
            return []
        return [
            (int(m.group(1)), p)
            for p in folder.iterdir()
            if (m := _NAME.match(p.name)) and p.is_file()
        ]


def _layout(
    params: Params, extra: Mapping[str, Params], digest: str | None = None
) -> tuple[dict[str, Array], dict[str, str]]:
    """The tensors to write under their file names, and the metadata describing them."""
    tensors: dict[str, Array] = dict(params.items())
    for group, group_params in extra.items():
        if not group:
            raise StoreError("extra checkpoint groups need a non-empty name")
        for name, array in group_params.items():
            key = f"{group}/{name}"
            if key in tensors:
                raise StoreError(
                    f"checkpoint tensor name {key!r} is used twice (by the model and "
                    f"extra group {group!r}); rename the group"
                )
            tensors[key] = array
    metadata = {
        "accord.format": _FORMAT,
        "accord.digest": params.digest() if digest is None else digest,
        "accord.order": json.dumps(list(params)),
        "accord.extra": json.dumps({g: list(p) for g, p in extra.items()}),
        "accord.extra_digests": json.dumps({g: p.digest() for g, p in extra.items()}),
    }
    return tensors, metadata


def _write_atomically(
    target: Path, tensors: dict[str, Array], metadata: dict[str, str]
) -> None:
    fd, tmp_name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        save_file(tensors, tmp, metadata=metadata)
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
            _drop_cached(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


def _drop_cached(fd: int) -> None:
    """Let the kernel drop a file's cached pages, written out already (POSIX)."""
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (POSIX); directories cannot be opened on Windows."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _corrupt(path: Path, why: str) -> StoreError:
    return StoreError(
        f"checkpoint {path} is damaged or not an accord checkpoint ({why}); "
        "resume from an earlier round's checkpoint or start a new run"
    )


def _read_metadata(path: Path) -> dict[str, str]:
    """The safetensors header's metadata (its typed numpy API does not return it)."""
    try:
        with Path(path).open("rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 0 < size <= MAX_HEADER_BYTES:
                raise _corrupt(
                    path, f"header length {size:,} not in 1..{MAX_HEADER_BYTES:,}"
                )
            header = bounded_json(f.read(size))
    except OSError as exc:
        raise StoreError(
            f"cannot read checkpoint {path}: {exc.strerror or exc}"
        ) from exc
    except ValueError as exc:
        raise _corrupt(path, f"unreadable header: {excerpt(str(exc))}") from exc
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("accord.format") != _FORMAT:
        raise _corrupt(path, "no accord metadata")
    return {str(k): str(v) for k, v in metadata.items()}


def checkpoint_origin(path: Path) -> tuple[str, int]:
    """The run and round a checkpoint (or a model released from one) came from.

    Reads only the bounded header; :class:`StoreError` if it is not accord's.
    """
    metadata = _read_metadata(path)
    try:
        return metadata["accord.run_id"], int(metadata["accord.round"])
    except (KeyError, ValueError) as exc:
        raise _corrupt(path, f"bad metadata: {excerpt(repr(exc))}") from exc


def json_depth(raw: bytes) -> int:
    """How deep arrays and objects nest in the JSON text ``raw``, without parsing it.

    Strings are cut out first (a bracket inside one does not nest), then the depth
    is the running count of openings minus closings: numpy does it in C, so a
    16 MiB header is measured in tens of milliseconds.
    """
    skeleton = np.frombuffer(_JSON_STRING.sub(b"", raw), dtype=np.uint8)
    opens = (skeleton == ord("[")) | (skeleton == ord("{"))
    closes = (skeleton == ord("]")) | (skeleton == ord("}"))
    steps = opens.astype(np.int32) - closes.astype(np.int32)
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0))


def bounded_json(raw: bytes | str) -> object:
    """``json.loads(raw)``, refused with ValueError if it nests past MAX_JSON_DEPTH."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    depth = json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested {depth} deep, more than {MAX_JSON_DEPTH}")
    return json.loads(data)


def _str_list(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of names")
    return value


def _object(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise TypeError("expected a JSON object")
    return value


def _group(
    path: Path, tensors: dict[str, Array], keys: list[str], names: list[str]
) -> Params:
    try:
        return Params(
            [(name, tensors[key]) for key, name in zip(keys, names, strict=True)]
        )
    except KeyError as exc:
        raise _corrupt(path, f"tensor {exc.args[0]!r} is missing") from exc


def _assemble(
    path: Path, tensors: dict[str, Array], meta: dict[str, str]
) -> Checkpoint:
    """Rebuild ordered Params from the loaded tensors and check every digest."""
    try:
        order = _str_list(bounded_json(meta["accord.order"]))
        groups = {
            str(g): _str_list(n)
            for g, n in _object(bounded_json(meta["accord.extra"])).items()
        }
        digests = _object(bounded_json(meta["accord.extra_digests"]))
        run_id, round_number = meta["accord.run_id"], int(meta["accord.round"])
        expected = meta["accord.digest"]
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise _corrupt(path, f"bad metadata: {excerpt(repr(exc))}") from exc
    params = _group(path, tensors, order, order)
    if not params.matches(expected):
        raise _corrupt(path, "model digest does not match its contents")
    extra: dict[str, Params] = {}
    for group, names in groups.items():
        keys = [f"{group}/{n}" for n in names]
        extra[group] = _group(path, tensors, keys, names)
        if not extra[group].matches(str(dict(digests).get(group))):
            raise _corrupt(path, f"digest of extra group {group!r} does not match")
    if len(tensors) != len(order) + sum(len(n) for n in groups.values()):
        raise _corrupt(path, "it holds tensors its metadata does not list")
    return Checkpoint(run_id, round_number, params, extra)
