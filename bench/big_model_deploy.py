"""A 2 GB model (500M float32 parameters) through one deployed round, in memory.

The issue's acceptance: "a 2 GB model completes a round between a coordinator and 2
participants on loopback without running out of memory". This runs exactly W4's
deployment (``bench/w4_deploy.py``: certificates from accord's PKI, ``accord
coordinator`` and ``accord participant`` as separate processes, mutual TLS on
loopback, ``bench/tasks.py``'s ``NoiseTask``, no training) with 4 tensors of 125M
float32 (2,000,000,000 bytes), 2 participants and 1 round, and reports the round
time, each process's peak RSS (exact: ``getrusage``'s ``ru_maxrss`` of the child;
its anonymous part sampled from ``/proc/PID/status``), the coordinator's peak PSS and
the peak summed PSS of the three processes, next to the machine's memory.

What the coordinator holds at its peak, by design (see the JSON's ``notes``): the
initial model, the published packed copy that FetchModel streams, the round's float64
accumulator (twice the model) and the mean update, plus the spooled updates as
memory-mapped files (page cache, which the kernel may write back and evict). Each
participant holds the fetched model, the task's output, the noise vector the
``NoiseTask`` caches and the packed update it streams.

Run: ``.venv/bin/python bench/big_model_deploy.py`` (about 2 minutes; needs about 20 GiB
of free memory). ``--params`` scales it (e.g. ``--params 100000000`` for a quick
check). One JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
from typing import Any

import psutil
from common import MIB, machine, stderr
from w4_deploy import config, make_folder, run_deployment

PARAMS = 500_000_000
TENSORS = 4
CLIENTS = 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=int, default=PARAMS)
    ap.add_argument("--tensors", type=int, default=TENSORS)
    ap.add_argument("--clients", type=int, default=CLIENTS)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument(
        "--no-checkpoints", action="store_true", help="store.checkpoints = false"
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    ap.add_argument(
        "--min-free-mib",
        type=int,
        default=768,
        help="stop the run (and report it) if available memory falls below this",
    )
    ns = ap.parse_args()
    model_bytes = ns.params * 4
    available = psutil.virtual_memory().available
    stderr(
        f"model {model_bytes / 2**30:.2f} GiB; {available / 2**30:.1f} GiB of memory "
        "available"
    )
    toml = config(
        clients=ns.clients,
        params=ns.params,
        tensors=ns.tensors,
        rounds=ns.rounds,
        ckpt=not ns.no_checkpoints,
        name="bench-big-model-deploy",
    )
    folder = make_folder(toml, ns.clients)
    try:
        r = run_deployment(
            folder,
            clients=ns.clients,
            tag="big",
            timeout_s=1800,
            min_available=ns.min_free_mib * MIB,
            # Reading the smaps of processes of several GB costs the run CPU.
            sample_period_s=0.5,
        )
    finally:
        if not ns.keep:
            shutil.rmtree(folder, ignore_errors=True)
    stderr(json.dumps(r))
    x = MIB / model_bytes  # MiB -> multiples of the model
    out: dict[str, Any] = {
        "workload": f"{ns.params:,} float32 params ({ns.tensors} tensors, "
        f"{model_bytes / 1e9:.2f} GB), coordinator + {ns.clients} participants as "
        f"processes on loopback, mutual TLS, no training, {ns.rounds} round(s)",
        "completed": True,
        "model_mib": round(model_bytes / MIB, 1),
        "round_s": r["round_s"],
        "process_wall_s": r["process_wall_s"],
        "coordinator_peak_rss_mb": r["coordinator_peak_rss_mb"],
        "coordinator_peak_rss_anon_mb": r["coordinator_peak_rss_anon_mb"],
        "coordinator_peak_rss_file_mb": r["coordinator_peak_rss_file_mb"],
        "coordinator_peak_pss_mb": r["coordinator_peak_pss_mb"],
        "participants_peak_rss_mb": r["participants_peak_rss_mb"],
        "participants_peak_rss_anon_mb": r["participants_peak_rss_anon_mb"],
        "tree_peak_pss_mb": r["tree_peak_pss_mb"],
        "coordinator_peak_rss_x_model": round(r["coordinator_peak_rss_mb"] * x, 2),
        "coordinator_peak_anon_x_model": round(
            r["coordinator_peak_rss_anon_mb"] * x, 2
        ),
        "participant_peak_rss_x_model": round(r["participant_peak_rss_mb_max"] * x, 2),
        "tree_peak_pss_x_model": round(r["tree_peak_pss_mb"] * x, 2),
        "checkpoints": not ns.no_checkpoints,
        "memory_available_before_gib": round(available / 2**30, 1),
        "machine": machine(),
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
