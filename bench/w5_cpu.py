"""W5 in CPU seconds: a secure round's cost by phase, against a plain round's.

Wall time on the shared 2-core machines moves with everyone else's load; the CPU
time a round costs moves much less. Each run here is one ``accord simulate`` of
``w5_rounds.py``'s federation (``bench/tasks.py``'s ``NoiseTask``, evaluation off,
store and checkpoints on) with ``--workers 0``, in a fresh child process: every
site and the coordinator run in that one process, so its CPU time is the whole
round's. A round's CPU is the process CPU between the end of the previous round
and the end of this one (``RunObserver.round_finished``); the steady figure is the
mean of rounds 2..R. ``OPENBLAS_NUM_THREADS=1`` in the children, for both modes
(BLAS threads spinning on a loaded machine would inflate the plain round).

Phases (CPU seconds per steady round, summed over all sites): the functions below
are wrapped with a process-time accumulator in the child (a benchmark's
instrumentation, not the library's), so the figures add up to the round:

* ``train`` (the task), ``encode`` (fixed-point encoding of the update),
  ``site setup`` (the participant's round keys), ``site <stage>`` (each stage's
  participant step), ``coordinator receive`` (checking and adding every message),
  ``coordinator <stage>`` (closing each stage; ``aggregate`` rebuilds the secrets
  and removes the masks), ``wire`` (protobuf framing of the messages), and
  ``other`` (the rest of the round: round loop, aggregation of a plain round,
  norm checks, store, checkpoint).
* ``primitives`` are nested inside those phases (not added to them): AES-CTR mask
  expansion, X25519, HKDF, Ed25519 sign and verify, Shamir split and combine,
  AES-GCM share encryption.

Run: ``.venv/bin/python bench/w5_cpu.py [--repeats 3] [--rounds 5]
[--workloads 20x100k,100x1M] [--src OTHER_TREE/src]``. ``--src`` measures another
checkout's library with this script (before/after comparisons in one invocation:
``--src`` and this tree alternate when ``--compare`` is given). Prints progress on
stderr and one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
OWN_SRC = BENCH.parent / "src"
MODES = ("off", "masking")


# -- child: one instrumented run -------------------------------------------------
class Meter:
    """Process-time accumulators by name; a name nested in itself counts once."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._depth: dict[str, int] = {}

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` with its CPU time added to ``name``."""
        clock = time.process_time

        def timed(*args: Any, **kwargs: Any) -> Any:
            depth = self._depth.get(name, 0)
            if depth:
                return fn(*args, **kwargs)
            self._depth[name] = 1
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[name] = self.spent.get(name, 0.0) + clock() - start
                self.calls[name] = self.calls.get(name, 0) + 1
                self._depth[name] = 0

        timed.__wrapped__ = fn  # type: ignore[attr-defined]
        return timed

    def snapshot(self) -> dict[str, float]:
        """The accumulators now."""
        return dict(self.spent)


def _replace_everywhere(module: str, attr: str, wrapped: Callable[..., Any]) -> None:
    """Rebind a module-level function in every accord module that imported it."""
    original = getattr(sys.modules[module], attr)
    for mod in list(sys.modules.values()):
        if getattr(mod, "__name__", "").startswith("accord") and (
            getattr(mod, attr, None) is original
        ):
            setattr(mod, attr, wrapped)


def instrument(meter: Meter) -> tuple[set[str], set[str]]:
    """Wrap the phases and primitives; return (phase names, primitive names)."""
    import importlib

    for name in (
        "accord.simulation.inprocess",
        "accord.simulation.secure",
        "accord.simulation.jobs",
        "accord.coordinator.masking",
        "accord.coordinator.secure",
        "accord.secagg.session",
        "accord.secagg.dealing",
        "accord.secagg.recovery",
        "accord.transport.secagg_wire",
    ):
        importlib.import_module(name)
    from accord.secagg import crypto, shamir
    from accord.secagg.encoding import FixedPointEncoding
    from accord.secagg.mask import MaskGenerator
    from accord.secagg.participant import SecAggParticipant
    from accord.secagg.server import SecAggServer

    phases: set[str] = set()
    prims: set[str] = set()

    def method(cls: type, attr: str, name: str, into: set[str]) -> None:
        setattr(cls, attr, meter.wrap(name, getattr(cls, attr)))
        into.add(name)

    def function(module: str, attr: str, name: str, into: set[str]) -> None:
        fn = getattr(sys.modules[module], attr)
        _replace_everywhere(module, attr, meter.wrap(name, fn))
        into.add(name)

    function("accord.simulation.jobs", "train", "train", phases)
    method(FixedPointEncoding, "encode_parts", "encode", phases)
    method(SecAggParticipant, "__init__", "site setup", phases)
    for attr, stage in (
        ("advertise", "advertise"),
        ("share_keys", "share_keys"),
        ("masked_input", "masked_input"),
        ("consistency_check", "consistency"),
        ("unmask", "unmask"),
    ):
        method(SecAggParticipant, attr, f"site {stage}", phases)
    method(SecAggServer, "receive", "coordinator receive", phases)
    for attr in (
        "key_directory",
        "deliver_shares",
        "survivor_list",
        "survivor_signatures",
        "aggregate",
    ):
        method(SecAggServer, attr, f"coordinator {attr}", phases)
    for attr in ("encode", "decode_to_coordinator", "decode_from_coordinator"):
        function("accord.transport.secagg_wire", attr, "wire", phases)

    method(MaskGenerator, "add", "mask expansion (AES-CTR)", prims)
    method(MaskGenerator, "expand", "mask expansion (AES-CTR)", prims)
    if hasattr(MaskGenerator, "combine"):  # absent from older trees
        method(MaskGenerator, "combine", "mask expansion (AES-CTR)", prims)
    function("accord.secagg.crypto", "agree", "X25519", prims)
    function("accord.secagg.crypto", "derive_key", "HKDF", prims)
    function("accord.secagg.crypto", "sign", "Ed25519 sign", prims)
    function("accord.secagg.crypto", "verify", "Ed25519 verify", prims)
    method(crypto.Verifier, "__call__", "Ed25519 verify", prims)
    function("accord.secagg.crypto", "seal", "AES-GCM", prims)
    function("accord.secagg.crypto", "open_sealed", "AES-GCM", prims)
    function("accord.secagg.shamir", "split_secrets", "Shamir split", prims)
    function("accord.secagg.shamir", "combine_batch", "Shamir combine", prims)
    del shamir
    return phases, prims


def child(name: str, mode: str, rounds: int) -> dict[str, Any]:
    """One instrumented in-process run; its per-round CPU and phases."""
    sys.path.insert(0, str(BENCH))
    from common import make_federation
    from w5_rounds import WORKLOADS, config

    meter = Meter()
    phase_names, prim_names = instrument(meter)
    from accord.config import load_config
    from accord.simulation.engine import simulate
    from accord.store import open_store

    toml = config(name, WORKLOADS[name], mode).replace(
        "rounds = 5", f"rounds = {rounds}"
    )
    toml += "\n[simulation]\nworkers = 0\n"
    folder = make_federation(toml, with_tasks=True)
    marks: list[tuple[float, float, dict[str, float]]] = []

    class Observer:
        def round_started(self, number: int, selected: Any) -> None:
            pass

        def participant_finished(self, number: int, outcome: Any) -> None:
            pass

        def round_finished(self, summary: Any) -> None:
            marks.append((time.process_time(), time.perf_counter(), meter.snapshot()))

    cwd = os.getcwd()
    os.chdir(folder)
    sys.path.insert(0, str(folder))
    try:
        cfg = load_config(folder / "fed.toml")
        store = open_store(cfg.store.url, default_dir=Path(cfg.store.directory))
        try:
            marks.append((time.process_time(), time.perf_counter(), meter.snapshot()))
            result = simulate(
                cfg,
                store=store,
                checkpoint_dir=Path(cfg.store.directory) / "checkpoints",
                observer=Observer(),
            )
        finally:
            store.close()
    finally:
        os.chdir(cwd)
        shutil.rmtree(folder, ignore_errors=True)
    rounds_done = result.run.rounds
    failed = [r.number for r in rounds_done if r.status != "completed"]
    if failed:
        raise RuntimeError(f"{name} {mode}: rounds {failed} did not complete")
    import hashlib

    import numpy as np

    digest = hashlib.sha256(
        np.ascontiguousarray(result.run.params.flatten(np.float64)).tobytes()
    ).hexdigest()
    per_round = []
    for (c0, w0, s0), (c1, w1, s1) in zip(marks, marks[1:], strict=False):
        spent = {k: s1.get(k, 0.0) - s0.get(k, 0.0) for k in s1}
        per_round.append({"cpu_s": c1 - c0, "wall_s": w1 - w0, "spent": spent})
    steady = per_round[1:] or per_round
    n = len(steady)

    def mean(key: str) -> float:
        return sum(r["spent"].get(key, 0.0) for r in steady) / n

    cpu = sum(r["cpu_s"] for r in steady) / n
    phases = {k: round(mean(k), 5) for k in sorted(phase_names)}
    phases = {k: v for k, v in phases.items() if v > 0}
    phases["other"] = round(cpu - sum(phases.values()), 5)
    prims = {k: round(mean(k), 5) for k in sorted(prim_names)}
    return {
        "workload": name,
        "mode": mode,
        "succeeded": [int(r.succeeded) for r in rounds_done],
        "final_model_sha256": digest[:16],
        "round_cpu_s": [round(r["cpu_s"], 4) for r in per_round],
        "round_wall_s": [round(r["wall_s"], 4) for r in per_round],
        "steady_cpu_s": round(cpu, 5),
        "steady_wall_s": round(sum(r["wall_s"] for r in steady) / n, 5),
        "phases_cpu_s": phases,
        "primitives_cpu_s": {k: v for k, v in prims.items() if v > 0},
        "per_round_cpu_s": [
            {k: round(v, 5) for k, v in r["spent"].items() if v > 0} for r in per_round
        ],
    }


# -- parent: alternate runs, medians ----------------------------------------------
def run_child(src: Path, name: str, mode: str, rounds: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(src), OPENBLAS_NUM_THREADS="1")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, mode]
    cmd += ["--rounds", str(rounds)]
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=3600, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{name} {mode} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians of the steady figures and phases, and the secure / plain ratio."""
    out: dict[str, Any] = {}
    for mode, rs in runs.items():
        phases = sorted({k for r in rs for k in r["phases_cpu_s"]})
        prims = sorted({k for r in rs for k in r["primitives_cpu_s"]})
        out[mode] = {
            "steady_cpu_s": round(_median([r["steady_cpu_s"] for r in rs]), 4),
            "runs_cpu_s": [r["steady_cpu_s"] for r in rs],
            "steady_wall_s": round(_median([r["steady_wall_s"] for r in rs]), 4),
            "phases_cpu_s": {
                k: round(_median([r["phases_cpu_s"].get(k, 0.0) for r in rs]), 4)
                for k in phases
            },
            "primitives_cpu_s": {
                k: round(_median([r["primitives_cpu_s"].get(k, 0.0) for r in rs]), 4)
                for k in prims
            },
        }
    if "off" in out and "masking" in out:
        out["masking_over_plain_cpu"] = round(
            out["masking"]["steady_cpu_s"] / out["off"]["steady_cpu_s"], 3
        )
        out["paired_ratios"] = [
            round(m["steady_cpu_s"] / p["steady_cpu_s"], 3)
            for p, m in zip(runs["off"], runs["masking"], strict=False)
        ]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workloads", default="20x100k,100x1M")
    ap.add_argument("--src", type=Path, default=OWN_SRC, help="the library to time")
    ap.add_argument(
        "--compare",
        type=Path,
        default=None,
        help="another tree's src/ (before), alternated with --src (after)",
    )
    ap.add_argument("--child", nargs=2, metavar=("WORKLOAD", "MODE"))
    ns = ap.parse_args()
    if ns.child:
        print(json.dumps(child(ns.child[0], ns.child[1], ns.rounds)))
        return
    sys.path.insert(0, str(BENCH))
    from common import machine, stderr

    trees = {"after": ns.src.resolve()}
    if ns.compare is not None:
        trees = {"before": ns.compare.resolve(), **trees}
    doc: dict[str, Any] = {
        "workload": "W5 CPU seconds per steady round, accord simulate --workers 0, "
        f"{ns.rounds} rounds (steady: 2..{ns.rounds}), NoiseTask",
        "machine": machine(),
        "trees": {k: str(v) for k, v in trees.items()},
        "results": {},
    }
    for name in ns.workloads.split(","):
        runs = {t: {m: [] for m in MODES} for t in trees}
        for i in range(ns.repeats):
            for tree, src in trees.items():
                for mode in MODES:
                    r = run_child(src, name, mode, ns.rounds)
                    runs[tree][mode].append(r)
                    stderr(
                        f"{name} {tree} {mode} run {i + 1}: cpu/round "
                        f"{r['steady_cpu_s']:.4f} s (rounds {r['round_cpu_s']}), "
                        f"load {os.getloadavg()[0]:.1f}"
                    )
        doc["results"][name] = {t: summarise(rs) for t, rs in runs.items()}
    doc["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
