"""W3: 10M float32 params (4 x 2.5M), 10 clients, no training, 5 rounds, simulation.

accord side: ``accord simulate fed.toml --json`` as a subprocess (2 warm workers, the
default), the ``synthetic`` dataset in 10 IID sites (never read), ``bench/tasks.py``'s
``NoiseTask`` with 4 tensors of 2.5M float32 (the model plus a per-process cached noise
vector scaled per job, like Flower's ``w_bigmodel.py`` client), FedAvg. Central and
federated evaluation are off (Flower's ``evaluate_fn`` there does nothing); the store
and its per-round checkpoint (a 38 MiB safetensors file, fsynced) stay on unless
``--no-checkpoints``. Steady s/round = mean of rounds 2..5.

Memory: peak summed PSS of accord's process tree (coordinator, fork server, workers,
resource tracker), sampled every 0.05 s, reported three ways: absolute; above the
interpreter's baseline (PSS of a bare ``python -c "import numpy"``, measured here);
and above the idle framework (the peak of the same run with a 1,000-param model,
measured here: the processes and imports without the model).

Flower side (``--peer``): ``w_bigmodel.py``.

Run: ``.venv/bin/python bench/w3_bigmodel.py [--repeats 3] [--peer]``. One JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
from typing import Any

from common import (
    MIB,
    alternate,
    baseline_pss_mb,
    machine,
    make_federation,
    median,
    run_accord,
    stderr,
    steady,
)

ROUNDS = 5
CLIENTS = 10
TENSORS = 4
PARAMS = 10_000_000
MODEL_MIB = PARAMS * 4 / MIB


def config(params: int, checkpoints: bool) -> str:
    return f"""
[federation]
name = "bench-w3-bigmodel"
rounds = {ROUNDS}
seed = 0

[data]
dataset = "synthetic"
partition = "iid"
sites = {CLIENTS}
holdout_fraction = 0.0
min_site_size = 1
options = {{ rows = 1000, features = 4, classes = 2 }}

[task]
factory = "tasks:build"
options = {{ params = {params}, tensors = {TENSORS} }}

[evaluation]
central = false
federated = false
baselines = false

[store]
directory = "@STORE@"
checkpoints = {"true" if checkpoints else "false"}
"""


def accord_run(i: int, *, params: int, checkpoints: bool) -> dict[str, Any]:
    folder = make_federation(config(params, checkpoints), with_tasks=True)
    tag = f"w3-{'big' if params == PARAMS else 'tiny'}-{i}"
    try:
        r = run_accord(folder, tag=tag)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert all(s == CLIENTS for s in r["succeeded"]), r["succeeded"]
    return {
        "steady_s_per_round": round(steady(r["round_s"]), 5),
        "first_round_s": r["round_s"][0],
        "process_wall_s": r["process_wall_s"],
        "peak_tree_pss_mb": r["peak_tree_pss_mb"],
        "peak_tree_rss_mb": r["peak_tree_rss_mb"],
        "peak_processes": r["peak_processes"],
        "round_s": r["round_s"],
    }


def flower_run(i: int) -> dict[str, Any]:
    from peer import run_flower

    return run_flower("w_bigmodel.py", repeats=1, tag=f"r{i}", timeout_s=600)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer", action="store_true", help="also run w_bigmodel.py")
    ap.add_argument("--peer-repeats", type=int, default=None)
    ap.add_argument(
        "--no-checkpoints", action="store_true", help="store.checkpoints = false"
    )
    ns = ap.parse_args()
    checkpoints = not ns.no_checkpoints
    interpreter = baseline_pss_mb()
    idle = [
        accord_run(i, params=1000, checkpoints=checkpoints)["peak_tree_pss_mb"]
        for i in (1, 2)
    ]
    ours, theirs = alternate(
        ns.repeats,
        lambda i: accord_run(i, params=PARAMS, checkpoints=checkpoints),
        flower_run if ns.peer else None,
        peer_repeats=ns.peer_repeats,
        log=stderr,
    )
    peak = median([r["peak_tree_pss_mb"] for r in ours])
    idle_mb = median(idle)
    accord = {
        "steady_s_per_round": round(median([r["steady_s_per_round"] for r in ours]), 4),
        "first_round_s": round(median([r["first_round_s"] for r in ours]), 4),
        "process_wall_s": round(median([r["process_wall_s"] for r in ours]), 3),
        "peak_tree_pss_mb": round(peak, 1),
        "peak_tree_rss_mb": round(median([r["peak_tree_rss_mb"] for r in ours]), 1),
        "peak_above_interpreter_mb": round(peak - interpreter, 1),
        "peak_above_interpreter_x_model": round((peak - interpreter) / MODEL_MIB, 2),
        "peak_above_idle_framework_mb": round(peak - idle_mb, 1),
        "peak_above_idle_framework_x_model": round((peak - idle_mb) / MODEL_MIB, 2),
        "processes": max(r["peak_processes"] for r in ours),
        "runs_steady_s_per_round": [r["steady_s_per_round"] for r in ours],
        "runs_peak_tree_pss_mb": [r["peak_tree_pss_mb"] for r in ours],
    }
    out: dict[str, Any] = {
        "workload": "W3 10M float32 params (4 x 2.5M), 10 clients, no training, "
        "5 rounds, simulation",
        "notes": "accord: 2 workers, central/federated eval and baselines off, store "
        f"on, checkpoints {'on' if checkpoints else 'off'}; steady = mean of rounds "
        "2..5; memory = peak summed PSS of the process tree",
        "repeats": len(ours),
        "model_mib": round(MODEL_MIB, 2),
        "interpreter_baseline_pss_mb": interpreter,
        "idle_framework_peak_pss_mb": round(idle_mb, 1),
        "accord": accord,
    }
    if theirs:
        from peer import median_of

        flower = {
            "steady_s_per_round": round(
                median_of(theirs, "s_per_round_mean_excl_first"), 4
            ),
            "peak_tree_pss_mb": round(median_of(theirs, "peak_tree_pss_mb"), 1),
            "peak_x_model": round(median_of(theirs, "peak_tree_pss_mb") / MODEL_MIB, 1),
            "process_wall_s": round(median_of(theirs, "peer_process_wall_s"), 3),
            "runs_steady_s_per_round": [
                r["s_per_round_mean_excl_first"] for r in theirs
            ],
        }
        out["flower"] = flower
        out["ratios"] = {
            "steady_round_accord_over_flower": round(
                accord["steady_s_per_round"] / flower["steady_s_per_round"], 4
            ),
            "peak_pss_accord_over_flower": round(
                accord["peak_tree_pss_mb"] / flower["peak_tree_pss_mb"], 4
            ),
        }
        out["targets"] = {
            "round_le_quarter_of_flower": out["ratios"][
                "steady_round_accord_over_flower"
            ]
            <= 0.25,
        }
    out.setdefault("targets", {})["peak_above_interpreter_le_10x_model"] = (
        accord["peak_above_interpreter_x_model"] <= 10
    )
    out["machine"] = machine()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
