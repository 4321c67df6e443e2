"""What the workload scripts share: a federation in a temp folder, run and measured.

:func:`run_accord` runs ``python -m accord simulate fed.toml --json`` as a subprocess,
exactly as a user would, and measures it from outside: the wall time of the whole
process (interpreter start to exit, worker shut-down included, like ``peer.py``'s
``peer_process_wall_s``) and the peak summed PSS and RSS of its process tree (a
psutil thread, like the Flower scripts', but sampling every 0.05 s because accord's
runs are short). Round durations come from the run's JSON document.

:func:`alternate` runs accord and Flower one after the other, ``repeats`` times, so
that both see the same machine load. Raw output goes to ``bench/results-raw/``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

BENCH_DIR = Path(__file__).resolve().parent
RAW_DIR = BENCH_DIR / "results-raw"
MIB = 2**20


class TreeMemory(threading.Thread):
    """Peak summed PSS and RSS of a process and all its descendants.

    Every 0.25 s by default, as the Flower peer's scripts sample theirs: a sample
    reads each process's ``smaps_rollup``, which makes the kernel walk its page
    tables, about 9 ms of CPU for a W5 tree of five processes (measured on the 2
    cores of 2026-12-07). Every 0.05 s, as before, that took 17 % of a core from
    the run being timed and made a 20 x 100k masked round 0.23 s instead of 0.17 s.
    """

    def __init__(self, pid: int, period: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.period = period
        self.peak_pss = 0
        self.peak_rss = 0
        self.peak_procs = 0
        self._halt = threading.Event()

    def sample(self) -> None:
        """Add up the tree once and keep the peaks."""
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        pss = rss = 0
        for p in procs:
            try:
                m = p.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            pss += m.pss
            rss += m.rss
        self.peak_pss = max(self.peak_pss, pss)
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_procs = max(self.peak_procs, len(procs))

    def run(self) -> None:
        """Sample until stopped."""
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.period)

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._halt.set()
        self.join()


def machine() -> dict[str, Any]:
    """Where and when the figures were taken."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def make_federation(toml: str, *, with_tasks: bool = False) -> Path:
    """Write ``fed.toml`` (and a copy of ``tasks.py``) into a new temp folder."""
    folder = Path(tempfile.mkdtemp(prefix="accord-bench-"))
    (folder / "fed.toml").write_text(
        toml.replace("@STORE@", str(folder / "runs")), encoding="utf-8"
    )
    if with_tasks:
        shutil.copy(BENCH_DIR / "tasks.py", folder / "tasks.py")
    return folder


def run_accord(
    folder: Path,
    *,
    tag: str,
    timeout_s: float = 900.0,
    extra_args: Sequence[str] = (),
    keep_doc: bool = False,
    src: Path | None = None,
) -> dict[str, Any]:
    """Run ``accord simulate fed.toml --json`` in ``folder``; measure it from outside.

    ``src``: another tree's ``src/`` to run instead of the installed library (put
    first on ``PYTHONPATH``, which the workers inherit).

    Returns ``process_wall_s``, ``peak_tree_pss_mb``, ``peak_tree_rss_mb``,
    ``peak_processes`` and ``round_s`` (each round's ``duration_s``), plus the
    run's ``final_metrics`` (the last round's metrics). Raises ``RuntimeError`` if
    the run fails; its output is kept under ``bench/results-raw/accord-<tag>.*``.
    """
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    out_p = RAW_DIR / f"accord-{tag}.out"
    err_p = RAW_DIR / f"accord-{tag}.err"
    cmd = [sys.executable, "-m", "accord", "simulate", "fed.toml", "--json"]
    with out_p.open("w") as out, err_p.open("w") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [*cmd, *extra_args],
            cwd=folder,
            env=None if src is None else dict(os.environ, PYTHONPATH=str(src)),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        mem = TreeMemory(proc.pid)
        mem.start()
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"accord run {tag} exceeded {timeout_s} s") from None
        finally:
            mem.stop()
        wall = time.perf_counter() - t0
    if rc != 0:
        tail = "\n".join(err_p.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"accord run {tag} exited {rc}; see {err_p}:\n{tail}")
    doc = json.loads(out_p.read_text())
    rounds = doc["rounds"]
    failed = [r["number"] for r in rounds if r["status"] != "completed"]
    if failed:
        raise RuntimeError(f"accord run {tag}: rounds {failed} did not complete")
    return {
        **({"doc": doc} if keep_doc else {}),
        "process_wall_s": round(wall, 3),
        "round_s": [round(float(r["duration_s"]), 5) for r in rounds],
        "succeeded": [int(r["succeeded"]) for r in rounds],
        "final_metrics": rounds[-1]["metrics"],
        "peak_tree_pss_mb": round(mem.peak_pss / MIB, 1),
        "peak_tree_rss_mb": round(mem.peak_rss / MIB, 1),
        "peak_processes": mem.peak_procs,
    }


def steady(round_s: Sequence[float]) -> float:
    """Mean of rounds 2..R (round 1 alone when there is only one)."""
    rest = list(round_s[1:]) or list(round_s)
    return statistics.fmean(rest)


def baseline_pss_mb() -> float:
    """PSS of a bare ``python -c "import numpy"``: the interpreter's baseline."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import numpy, sys; print('ok', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdin is not None
    proc.stdout.readline()
    pss = psutil.Process(proc.pid).memory_full_info().pss
    proc.stdin.close()
    proc.wait()
    return round(pss / MIB, 1)


def median(values: Sequence[float]) -> float:
    """Median, as a float."""
    return float(statistics.median(values))


def alternate(
    repeats: int,
    accord: Callable[[int], Mapping[str, Any]],
    flower: Callable[[int], Mapping[str, Any]] | None,
    *,
    peer_repeats: int | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run accord ``repeats`` times and Flower ``peer_repeats`` times, interleaved."""
    n_peer = (
        0 if flower is None else (repeats if peer_repeats is None else peer_repeats)
    )
    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    for i in range(max(repeats, n_peer)):
        if i < repeats:
            ours.append(dict(accord(i + 1)))
            if log:
                log(f"accord run {i + 1}: {json.dumps(ours[-1])[:300]}")
        if flower is not None and i < n_peer:
            theirs.append(dict(flower(i + 1)))
            if log:
                log(f"flower run {i + 1}: {json.dumps(theirs[-1])[:300]}")
    return ours, theirs


def stderr(message: str) -> None:
    """Progress goes to stderr; stdout keeps the one JSON line."""
    print(message, file=sys.stderr, flush=True)
