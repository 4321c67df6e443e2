"""Run the Flower peer's workload scripts side by side with accord's benchmarks.

The Flower scripts live in ``../shared/peers/flower/`` (relative to the repository
root; override with the environment variable ``ACCORD_PEERS_DIR``, which names the
``peers`` folder that holds ``flower/``, or the ``flower`` folder itself). They run in
Flower's own venv, ``bench/.venv-flower``, made by ``bash bench/setup-flower.sh``;
never in accord's.

Each script prints one JSON line, the last line of its stdout. ``run_flower`` runs a
script ``repeats`` times, one after the other, keeps the raw output under
``bench/results-raw/flower-<script>-<i>.{out,err}``, and returns the parsed lines, each
with one key added by this module: ``peer_process_wall_s``, the wall time of the whole
Flower process (interpreter start to exit, Ray shut-down included) measured from
outside.

Importable (``bench/`` is ``sys.path[0]`` when a ``bench/w*.py`` script runs)::

    from peer import median_of, run_flower

    runs = run_flower("w_overhead.py", ["--clients", "100"], repeats=3)
    median_of(runs, "s_per_round_mean_excl_first")

or from the command line (prints each run's JSON line, then a summary line with the
median of every numeric key)::

    python bench/peer.py --repeats 3 w_overhead.py --clients 100
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
VENV_DIR = BENCH_DIR / ".venv-flower"
RAW_DIR = BENCH_DIR / "results-raw"
DEFAULT_PEERS_DIR = REPO_ROOT.parent / "shared" / "peers"
SETUP_HINT = "bash bench/setup-flower.sh"


class PeerError(RuntimeError):
    """A Flower peer run could not be started or gave no result."""


class FlowerVenvMissing(PeerError):
    """``bench/.venv-flower`` does not exist or has no Python."""


def flower_dir() -> Path:
    """Folder holding the Flower workload scripts (``w_*.py``)."""
    override = os.environ.get("ACCORD_PEERS_DIR")
    base = Path(override).expanduser().resolve() if override else DEFAULT_PEERS_DIR
    if (base / "flower").is_dir():
        return base / "flower"
    if override and any(base.glob("w_*.py")):
        return base  # ACCORD_PEERS_DIR named the flower folder itself
    raise PeerError(
        f"Flower peer scripts not found under {base} (expected {base / 'flower'}); "
        "set ACCORD_PEERS_DIR to the folder that holds flower/"
    )


def venv_python() -> Path:
    """Python of the Flower venv; raises ``FlowerVenvMissing`` if absent."""
    py = VENV_DIR / "bin" / "python"
    if not py.exists():
        raise FlowerVenvMissing(
            f"the Flower peer venv is missing ({VENV_DIR}); "
            f"create it with:  {SETUP_HINT}"
        )
    return py


def peer_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a Flower script: its venv first on PATH, no accord venv."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    env["VIRTUAL_ENV"] = str(VENV_DIR)
    env["PATH"] = os.pathsep.join([str(VENV_DIR / "bin"), env.get("PATH", "")])
    # The peer scripts write scratch state under $PEER_WORKDIR/results-raw: "bench",
    # given as an absolute path so that the working directory does not matter.
    env["PEER_WORKDIR"] = str(BENCH_DIR)
    env["FLWR_TELEMETRY_ENABLED"] = "0"
    if extra:
        env.update(extra)
    return env


def _last_json_line(path: Path) -> dict[str, Any] | None:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    if not lines:
        return None
    try:
        obj = json.loads(lines[-1])
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def run_flower(
    script: str,
    args: Sequence[str] = (),
    *,
    repeats: int,
    tag: str | None = None,
    timeout_s: float | None = None,
    env: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Run a Flower workload script ``repeats`` times, one after the other.

    Runs ``bench/.venv-flower/bin/python <peers>/flower/<script> <args>`` from the repo
    root with ``PEER_WORKDIR=bench``, ``FLWR_TELEMETRY_ENABLED=0`` and the venv's bin/
    on PATH. Raw output goes to
    ``bench/results-raw/flower-<stem>[-<tag>]-<i>.{out,err}`` (i from 1; pass ``tag``
    to keep runs with different ``args`` apart). Returns the last stdout line of each
    run parsed as JSON, plus ``peer_process_wall_s``. Raises ``PeerError`` when a run
    fails, times out or prints no JSON line.
    """
    py = venv_python()
    path = flower_dir() / script
    if not path.is_file():
        raise PeerError(f"no Flower workload script {path}")
    return run_peer_script(
        path, args, repeats=repeats, tag=tag, timeout_s=timeout_s, env=env, python=py
    )


def run_peer_script(
    path: Path,
    args: Sequence[str] = (),
    *,
    repeats: int,
    tag: str | None = None,
    timeout_s: float | None = None,
    env: Mapping[str, str] | None = None,
    python: Path | None = None,
) -> list[dict[str, Any]]:
    """Run any script (e.g. ``bench/flower_robustness.py``) in the Flower venv.

    The same as :func:`run_flower` for a script given by its path: raw output in
    ``bench/results-raw/flower-<stem>[-<tag>]-<i>.{out,err}``, the last stdout
    line of each run parsed as JSON. Raises ``FlowerVenvMissing`` without the venv.
    """
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    py = python or venv_python()
    script = path.name
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    stem = path.stem + (f"-{tag}" if tag else "")
    cmd = [str(py), str(path), *map(str, args)]
    results: list[dict[str, Any]] = []
    for i in range(1, repeats + 1):
        out_p = RAW_DIR / f"flower-{stem}-{i}.out"
        err_p = RAW_DIR / f"flower-{stem}-{i}.err"
        with out_p.open("w") as out, err_p.open("w") as err:
            t0 = time.perf_counter()
            # Own session, so that a timeout can stop the whole tree (Ray's too).
            proc = subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                env=peer_env(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
            try:
                rc = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                raise PeerError(
                    f"{script} run {i} exceeded {timeout_s} s; "
                    f"output in {out_p}, {err_p}"
                ) from None
            wall = time.perf_counter() - t0
        result = _last_json_line(out_p)
        if rc != 0 or result is None:
            why = f"exited {rc}"
            if result is None:
                why += " without a JSON last line"
            raise PeerError(
                f"{script} run {i} {why}; output in {out_p}, {err_p}. "
                f"Last lines of stderr:\n{_tail(err_p)}"
            )
        result["peer_process_wall_s"] = round(wall, 3)
        results.append(result)
    return results


def median_of(results: Sequence[Mapping[str, Any]], key: str) -> float:
    """Median of ``key`` over the runs that report a number for it."""
    values = [
        r[key]
        for r in results
        if isinstance(r.get(key), int | float) and not isinstance(r.get(key), bool)
    ]
    if not values:
        raise KeyError(f"no run reports a number for {key!r}")
    return float(statistics.median(values))


def summarize(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Median of every numeric key that appears in the runs."""
    keys = dict.fromkeys(k for r in results for k in r)
    out: dict[str, Any] = {}
    for k in keys:
        try:
            out[k] = round(median_of(results, k), 4)
        except KeyError:
            continue
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: run a Flower script N times, print each JSON line, then a median summary."""
    ap = argparse.ArgumentParser(
        description="Run a Flower peer workload script in bench/.venv-flower.",
        usage="%(prog)s [--repeats N] [--tag T] [--timeout S] SCRIPT [SCRIPT_ARGS ...]",
    )
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--tag", default=None, help="suffix for the raw output file names")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per run")
    ap.add_argument("script", help="e.g. w_digits.py")
    ap.add_argument("script_args", nargs=argparse.REMAINDER)
    ns = ap.parse_args(argv)
    try:
        runs = run_flower(
            ns.script,
            ns.script_args,
            repeats=ns.repeats,
            tag=ns.tag,
            timeout_s=ns.timeout,
        )
    except PeerError as e:
        print(f"peer: {e}", file=sys.stderr)
        return 1
    for r in runs:
        print(json.dumps(r), flush=True)
    summary = {
        "framework": "flwr",
        "script": ns.script,
        "args": ns.script_args,
        "repeats": len(runs),
        "median": summarize(runs),
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
