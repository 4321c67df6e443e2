"""W2: framework overhead, N clients x 1,000 params, no training, 10 rounds.

accord side: ``accord simulate fed.toml --json`` as a subprocess (2 warm workers, the
default), the ``synthetic`` dataset dealt IID into N sites (a few rows each; the data is
never read), ``bench/tasks.py``'s ``NoiseTask`` (returns the global model plus seeded
Gaussian noise, like Flower's ``w_overhead.py`` client), FedAvg, full participation.
Central and federated evaluation are off (Flower's ``evaluate_fn`` there does nothing),
so a round is dispatch, the clients' jobs, validation, aggregation, the checkpoint and
the store's record of N outcomes. ms per client-round = mean of rounds 2..10 / N.

Flower side (``--peer``): ``w_overhead.py --clients N`` (about 90 s per run at 1000).

Run: ``.venv/bin/python bench/w2_overhead.py [--clients 100 1000] [--repeats 3]
[--peer] [--peer-repeats K]``. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
from typing import Any

from common import (
    alternate,
    machine,
    make_federation,
    median,
    run_accord,
    stderr,
    steady,
)

ROUNDS = 10
PARAMS = 1000


def config(clients: int) -> str:
    rows = max(4000, 5 * clients)
    return f"""
[federation]
name = "bench-w2-overhead-{clients}"
rounds = {ROUNDS}
seed = 0

[data]
dataset = "synthetic"
partition = "iid"
sites = {clients}
holdout_fraction = 0.0
min_site_size = 1
options = {{ rows = {rows}, features = 4, classes = 2 }}

[task]
factory = "tasks:build"
options = {{ params = {PARAMS}, tensors = 1 }}

[evaluation]
central = false
federated = false
baselines = false

[store]
directory = "@STORE@"
"""


def accord_run(clients: int, i: int) -> dict[str, Any]:
    folder = make_federation(config(clients), with_tasks=True)
    try:
        r = run_accord(folder, tag=f"w2-c{clients}-{i}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert all(s == clients for s in r["succeeded"]), r["succeeded"]
    s = steady(r["round_s"])
    return {
        "ms_per_client_round": round(1000 * s / clients, 4),
        "steady_s_per_round": round(s, 5),
        "first_round_s": r["round_s"][0],
        "process_wall_s": r["process_wall_s"],
        "peak_tree_pss_mb": r["peak_tree_pss_mb"],
        "round_s": r["round_s"],
    }


def flower_run(clients: int, i: int) -> dict[str, Any]:
    from peer import run_flower

    args = ["--clients", str(clients), "--params", str(PARAMS)]
    return run_flower(
        "w_overhead.py", args, repeats=1, tag=f"c{clients}-r{i}", timeout_s=900
    )[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer", action="store_true", help="also run w_overhead.py")
    ap.add_argument(
        "--peer-repeats",
        type=int,
        default=None,
        help="Flower runs per N (default --repeats; ~90 s each at N=1000)",
    )
    ns = ap.parse_args()
    out: dict[str, Any] = {
        "workload": "W2 framework overhead, N clients x 1,000 params, no training, "
        "10 rounds",
        "notes": "accord: 2 workers, central/federated eval and baselines off, store "
        "and checkpoints on; steady = mean of rounds 2..10",
        "repeats": ns.repeats,
    }
    per_n: dict[str, Any] = {}
    for n in ns.clients:
        ours, theirs = alternate(
            ns.repeats,
            lambda i, n=n: accord_run(n, i),
            (lambda i, n=n: flower_run(n, i)) if ns.peer else None,
            peer_repeats=ns.peer_repeats,
            log=stderr,
        )
        accord = {
            "ms_per_client_round": round(
                median([r["ms_per_client_round"] for r in ours]), 4
            ),
            "steady_s_per_round": round(
                median([r["steady_s_per_round"] for r in ours]), 5
            ),
            "process_wall_s": round(median([r["process_wall_s"] for r in ours]), 3),
            "peak_tree_pss_mb": round(median([r["peak_tree_pss_mb"] for r in ours]), 1),
            "runs_ms_per_client_round": [r["ms_per_client_round"] for r in ours],
        }
        entry: dict[str, Any] = {"accord": accord}
        if theirs:
            from peer import median_of

            flower = {
                "ms_per_client_round": round(
                    median_of(theirs, "ms_per_client_round_excl_first"), 4
                ),
                "steady_s_per_round": round(
                    median_of(theirs, "s_per_round_mean_excl_first"), 4
                ),
                "process_wall_s": round(median_of(theirs, "peer_process_wall_s"), 3),
                "peak_tree_pss_mb": round(median_of(theirs, "peak_tree_pss_mb"), 1),
                "runs": len(theirs),
                "runs_ms_per_client_round": [
                    r["ms_per_client_round_excl_first"] for r in theirs
                ],
            }
            entry["flower"] = flower
            entry["ratio_ms_per_client_round"] = round(
                accord["ms_per_client_round"] / flower["ms_per_client_round"], 4
            )
        entry["target_le_0.4_ms"] = accord["ms_per_client_round"] <= 0.4
        per_n[str(n)] = entry
    out["clients"] = per_n
    ns_sorted = sorted(ns.clients)
    if len(ns_sorted) >= 2:
        lo, hi = per_n[str(ns_sorted[0])], per_n[str(ns_sorted[-1])]
        out["accord_flatness_ms_ratio_largest_over_smallest"] = round(
            hi["accord"]["ms_per_client_round"] / lo["accord"]["ms_per_client_round"], 3
        )
    out["machine"] = machine()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
