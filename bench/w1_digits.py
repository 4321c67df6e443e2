"""W1: FedAvg on digits, PyTorch MLP 64-64-10, 10 IID sites, 20 rounds (BENCHMARKS.md).

accord side: ``accord simulate fed.toml --json`` as a subprocess (2 warm workers, the
default), timed from outside: the whole process, interpreter start to exit. Model
``accord.task.torch:mlp`` (``Linear(64, 64), ReLU, Linear(64, 10)``, initialised from
seed 0 exactly as Flower's ``torch.manual_seed(0)``), 1 local epoch of SGD, lr 0.05,
batch 32, full participation, FedAvg weighted by examples.

Data handling, as close to Flower's ``w_digits.py`` as accord allows: 20 % stratified
central test set (accord's seeded split: 359 rows, Flower's sklearn split: 360, not
the same rows), the rest dealt IID into 10 sites of 143-144 rows, no holdout, features
standardised with statistics of the training rows only (accord's federated sums equal
sklearn's ``StandardScaler`` fitted on the pooled training rows).

Measured so that rounds are training: federated evaluation and baselines are off, the
central test set is scored after round 20 only (Flower scores it after every round and
subtracts that time). The store (SQLite) and per-round checkpoints stay on, as a user
gets them. Steady s/round = mean of rounds 2..20.

Run: ``.venv/bin/python bench/w1_digits.py [--repeats 3] [--peer]``. One JSON line.
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

ROUNDS = 20
CONFIG = f"""
[federation]
name = "bench-w1-digits"
rounds = {ROUNDS}
seed = 0

[data]
dataset = "digits"
partition = "iid"
sites = 10
test_fraction = 0.2
holdout_fraction = 0.0
min_site_size = 1

[task]
factory = "accord.task.torch:mlp"

[train]
epochs = 1
batch_size = 32
learning_rate = 0.05

[strategy]
aggregation = "mean"

[evaluation]
every = {ROUNDS}
central = true
federated = false
baselines = false
metric = "accuracy"

[simulation]
workers = 2

[store]
directory = "@STORE@"
checkpoints = true
"""


def accord_run(i: int) -> dict[str, Any]:
    folder = make_federation(CONFIG)
    try:
        r = run_accord(folder, tag=f"w1-{i}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "process_wall_s": r["process_wall_s"],
        "steady_s_per_round": round(steady(r["round_s"]), 5),
        "first_round_s": r["round_s"][0],
        "rounds_s_total": round(sum(r["round_s"]), 4),
        "final_test_acc": r["final_metrics"].get("central.accuracy"),
        "peak_tree_pss_mb": r["peak_tree_pss_mb"],
        "peak_tree_rss_mb": r["peak_tree_rss_mb"],
        "round_s": r["round_s"],
    }


def flower_run(i: int) -> dict[str, Any]:
    from peer import run_flower

    return run_flower("w_digits.py", repeats=1, tag=f"r{i}", timeout_s=600)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer", action="store_true", help="also run Flower's w_digits.py")
    ap.add_argument("--peer-repeats", type=int, default=None)
    ns = ap.parse_args()
    ours, theirs = alternate(
        ns.repeats,
        accord_run,
        flower_run if ns.peer else None,
        peer_repeats=ns.peer_repeats,
        log=stderr,
    )

    def med(key: str) -> float:
        return round(median([r[key] for r in ours]), 4)

    accord = {
        "process_wall_s": med("process_wall_s"),
        "steady_s_per_round": med("steady_s_per_round"),
        "first_round_s": med("first_round_s"),
        "final_test_acc": med("final_test_acc"),
        "peak_tree_pss_mb": med("peak_tree_pss_mb"),
        "runs_process_wall_s": [r["process_wall_s"] for r in ours],
        "runs_steady_s_per_round": [r["steady_s_per_round"] for r in ours],
        "runs_final_test_acc": [r["final_test_acc"] for r in ours],
    }
    out: dict[str, Any] = {
        "workload": "W1 digits MLP 64-64-10, 10 IID sites, 1 epoch SGD lr 0.05 b32, "
        "20 rounds, FedAvg",
        "repeats": len(ours),
        "notes": "accord: federated eval and baselines off, central test set scored "
        "after round 20 only, store and checkpoints on, 2 workers; whole-process wall "
        "time measured from outside for both frameworks",
        "accord": accord,
    }
    if theirs:
        from peer import median_of

        def fmed(key: str) -> float:
            return round(median_of(theirs, key), 4)

        flower = {
            "process_wall_s": fmed("peer_process_wall_s"),
            "steady_s_per_round": fmed("s_per_round_mean_excl_first"),
            "first_round_s": fmed("first_round_s"),
            "final_test_acc": fmed("final_test_acc"),
            "central_test_acc": fmed("central_test_acc"),
            "peak_tree_pss_mb": fmed("peak_tree_pss_mb"),
            "runs_process_wall_s": [r["peer_process_wall_s"] for r in theirs],
            "flwr": theirs[0].get("flwr"),
        }
        out["flower"] = flower
        out["ratios"] = {
            "process_wall_accord_over_flower": round(
                accord["process_wall_s"] / flower["process_wall_s"], 4
            ),
            "steady_round_accord_over_flower": round(
                accord["steady_s_per_round"] / flower["steady_s_per_round"], 4
            ),
            "accuracy_accord_minus_flower": round(
                accord["final_test_acc"] - flower["final_test_acc"], 4
            ),
        }
        out["targets"] = {
            "process_wall_ratio_le_0.25": out["ratios"][
                "process_wall_accord_over_flower"
            ]
            <= 0.25,
            "accuracy_within_0.01": abs(out["ratios"]["accuracy_accord_minus_flower"])
            <= 0.01,
        }
    out["machine"] = machine()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
