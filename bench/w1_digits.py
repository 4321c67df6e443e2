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

Accuracy parity (``--parity``, on by default; one extra untimed run): accord trains on
exactly Flower's data, split and seeds (Flower's 80/20 sklearn split; its 10 client
partitions, in its row order, given as a CSV with a site column and
``partition = "natural"``; its per-client shuffling seeds, through
``tasks:flower_seeded_mlp``), and the final model is scored on Flower's test set. That
is "the same training"; the difference to Flower's accuracy is the W1 accuracy figure.
The timed runs' own-split accuracy is reported too (a different split and seeds: it
differs from Flower's by chance, about +-0.03 for 20 short rounds).

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


PARITY_CONFIG = f"""
[federation]
name = "bench-w1-parity"
rounds = {ROUNDS}
seed = 0

[data]
dataset = "csv:flower_digits.csv"
partition = "natural"
sites = 10
test_fraction = 0.0
holdout_fraction = 0.0
min_site_size = 1
options = {{ target = "target", site_column = "site", classes = [{
    ", ".join(f'"{d}"' for d in range(10))
}] }}

[task]
factory = "tasks:flower_seeded_mlp"

[train]
epochs = 1
batch_size = 32
learning_rate = 0.05

[evaluation]
central = false
federated = false
baselines = false

[simulation]
workers = 2

[store]
directory = "@STORE@"
checkpoints = true
"""


def flower_split() -> tuple[Any, Any, Any, Any, list[Any]]:
    """Exactly w_digits.py's load_data(), before scaling (it scales inside)."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=0.2, random_state=0, stratify=y
    )
    perm = np.random.default_rng(0).permutation(len(x_tr))
    return x_tr, y_tr, x_te, y_te, np.array_split(perm, 10)


def parity_run() -> dict[str, Any]:
    """Run accord on Flower's split, partitions and seeds; score on its test set."""
    import numpy as np
    from sklearn.preprocessing import StandardScaler

    from accord.data.arrays import DatasetInfo
    from accord.store.checkpoint import CheckpointStore
    from accord.task.torch import mlp

    x_tr, y_tr, x_te, y_te, parts = flower_split()
    folder = make_federation(PARITY_CONFIG, with_tasks=True)
    try:
        names = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
        lines = [",".join([*names, "target", "site"])]
        for pid, idx in enumerate(parts):
            for i in idx:
                row = ",".join(repr(float(v)) for v in x_tr[i])
                lines.append(f"{row},{int(y_tr[i])},{pid}")
        (folder / "flower_digits.csv").write_text("\n".join(lines) + "\n")
        r = run_accord(folder, tag="w1-parity", keep_doc=True)
        run_id = r["doc"]["run_id"]
        store = CheckpointStore(folder / "runs" / "checkpoints")
        params = store.load(store.path(run_id, ROUNDS))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    scaler = StandardScaler().fit(x_tr)
    x_test = scaler.transform(x_te).astype(np.float32)
    info = DatasetInfo("digits", (64,), tuple(str(d) for d in range(10)))
    proba = mlp(info).predict(params, x_test)
    acc = float((proba.argmax(axis=1) == y_te).mean())
    return {"final_test_acc": round(acc, 4), "test_rows": len(y_te)}


def flower_run(i: int) -> dict[str, Any]:
    from peer import run_flower

    return run_flower("w_digits.py", repeats=1, tag=f"r{i}", timeout_s=600)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer", action="store_true", help="also run Flower's w_digits.py")
    ap.add_argument("--peer-repeats", type=int, default=None)
    ap.add_argument(
        "--no-parity",
        dest="parity",
        action="store_false",
        help="skip the untimed run on Flower's exact split and seeds",
    )
    ns = ap.parse_args()
    parity = parity_run() if ns.parity else None
    if parity:
        stderr(f"parity run: {parity}")
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
    if parity:
        accord["parity_final_test_acc"] = parity["final_test_acc"]
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
            "own_split_accuracy_accord_minus_flower": round(
                accord["final_test_acc"] - flower["final_test_acc"], 4
            ),
        }
        out["targets"] = {
            "process_wall_ratio_le_0.25": out["ratios"][
                "process_wall_accord_over_flower"
            ]
            <= 0.25,
        }
        if parity:
            diff = round(parity["final_test_acc"] - flower["final_test_acc"], 4)
            out["ratios"]["same_training_accuracy_accord_minus_flower"] = diff
            out["targets"]["same_training_accuracy_within_0.01"] = abs(diff) <= 0.01
    out["machine"] = machine()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
