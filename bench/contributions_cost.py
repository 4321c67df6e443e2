"""Cost of ``accord contributions``: evaluations and seconds for N sites, R rounds.

Simulates a CSV federation of N sites (numpy softmax regression, 200 rows per
site, one site with shuffled labels) for R rounds with ``keep_updates`` on, then
times ``accord contributions --method both`` with 20 permutations per round.
Prints one markdown row per (N, R); the table in docs/governance.md comes from it.

    PYTHONPATH=src python bench/contributions_cost.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from accord.cli.contributions import compute
from accord.config import load_config
from accord.simulation.engine import simulate
from accord.store import open_store

FED = """
[federation]
name = "contrib-cost"
rounds = {rounds}
seed = 1
[data]
dataset = "csv:sites.csv"
options = {{ target = "label", site_column = "site" }}
partition = "natural"
sites = {sites}
[task]
factory = "accord.task.numpy_task:softmax_regression"
[evaluation]
baselines = false
metric = "loss"
[simulation]
workers = 0
[store]
directory = "{dir}"
[contribution]
keep_updates = true
"""


def write_sites(path: Path, sites: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=5)
    lines = ["site,x1,x2,x3,x4,x5,label"]
    for k in range(sites):
        x = rng.normal(size=(200, 5))
        y = (x @ w + 0.3 * rng.normal(size=200) > 0).astype(int)
        if k == sites - 1:
            y = rng.permutation(y)
        lines += [
            ",".join([f"s{k:02d}", *(f"{v:.5f}" for v in row), str(int(label))])
            for row, label in zip(x, y, strict=True)
        ]
    path.write_text("\n".join(lines) + "\n")


def one(sites: int, rounds: int) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_sites(folder / "sites.csv", sites)
        runs = folder / "runs"
        fed = folder / "fed.toml"
        fed.write_text(FED.format(rounds=rounds, sites=sites, dir=runs))
        config = load_config(fed)
        store = open_store(None, default_dir=runs)
        try:
            simulate(config, store=store, checkpoint_dir=runs / "checkpoints")
        finally:
            store.close()
        _, report = compute(
            "latest",
            directory=runs,
            store_url=None,
            fed=fed,
            method="both",
            permutations=20,
        )
        kept = [p for p in (runs / "checkpoints").rglob("*") if "updates" in p.parts]
        disk = sum(p.stat().st_size for p in kept if p.is_file())
        lowest = report.ranking("shapley")[-1]
        return (
            f"| {sites} | {rounds} | {report.evaluations} | {report.seconds:.2f} | "
            f"{disk / 1024:.0f} KiB | {lowest} |"
        )


if __name__ == "__main__":
    print("| sites | rounds | evaluations | seconds | kept on disk | lowest |")
    print("|---|---|---|---|---|---|")
    for n, r in [(4, 5), (4, 10), (8, 5), (8, 10), (12, 5)]:
        print(one(n, r), flush=True)
    sys.exit(0)
