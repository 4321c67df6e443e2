"""How much a deployed site keeps in its state folder: the newest runs' state only.

A site keeps state per run (``state/<kind>/<run>/<site>/``): top-k's error
feedback (``compression``), SCAFFOLD's ``c_i`` (``scaffold``) and FedPer's or
Ditto's own tensors (``personal``), each model-sized. Inside a run, each kind keeps
its two newest rounds; across runs nothing bounded it, so a coordinator that
reconnected under a new run id each time grew the folder without end. The runtime
binds each connection to one run and, at the first task of a run this process has
not served, calls :func:`prune_runs`, which keeps each kind's :data:`MAX_RUNS`
most recently written runs (and the run starting) and removes the rest.

An older run's state matters only to a resume of that run, which would then start
its site state afresh (SCAFFOLD's ``c_i`` at zero, top-k without its residual, a
new personal model): training goes on, with a weaker start. A folder that is a
symlink, or anything not a folder, is left alone: the site wrote neither.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from accord.task.personal_state import run_folder

__all__ = ["KINDS", "MAX_RUNS", "prune_runs"]

logger = logging.getLogger(__name__)

#: The state kinds kept per run, each in ``state/<kind>/<run>/``.
KINDS = ("compression", "scaffold", "personal")
#: The runs whose state a site keeps, per kind, besides the one starting.
MAX_RUNS = 8


def prune_runs(state_dir: Path, *, keep: str, max_runs: int = MAX_RUNS) -> list[Path]:
    """Remove all but the ``max_runs`` newest runs' state; return what was removed.

    ``keep`` is the (wire) run id starting: its folders stay whatever their age.
    A run's age is the newest modification time of anything under its folder.
    """
    kept = run_folder(keep)
    removed: list[Path] = []
    for kind in KINDS:
        parent = state_dir / kind
        if not parent.is_dir() or parent.is_symlink():
            continue
        runs = [
            p
            for p in parent.iterdir()
            if p.name != kept and p.is_dir() and not p.is_symlink()
        ]
        runs.sort(key=lambda p: (_newest(p), p.name), reverse=True)
        for old in runs[max_runs:]:
            shutil.rmtree(old)
            logger.info("removed the state of an older run: %s", old)
            removed.append(old)
    return removed


def _newest(folder: Path) -> float:
    """The newest modification time under ``folder`` (itself included)."""
    newest = folder.stat().st_mtime
    for root, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            try:
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
            except FileNotFoundError:  # removed meanwhile
                continue
    return newest
