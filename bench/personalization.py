"""Personalization under label skew: each site's own model against the global one.

Digits dealt to 10 sites by a Dirichlet label skew (alpha 0.1 by default,
accord's seeded partitioner), the numpy MLP (``accord.task.numpy_task:mlp``, 64
hidden units), ``--rounds`` rounds of one local epoch, plain SGD at lr 0.05, batch
32, every site in every round. Four runs per seed:

* **FedAvg**: the global model, scored by each site on its holdout;
* **fine-tuning** (``[personalization] method = "finetune"``, ``--finetune-epochs``
  epochs at the same lr): FedAvg's global model fine-tuned by each site on its
  training rows at the final evaluation;
* **FedPer** (``method = "fedper"``, ``private = ["w2", "b2"]``): the output
  layer stays at each site, only the hidden layer is federated;
* **Ditto** (``method = "ditto"``, ``lambda = --ditto-lambda``): each site's
  personal model, pulled toward the FedAvg global model.

For each, the worst and the mean site accuracy on the sites' holdouts at the
final round (the personalized model's for the last three; FedPer's "global"
figures, the body with an untrained head, say nothing and are not shown), the
mean over ``--seeds``, and the run's wall time.

Run: ``PYTHONPATH=src .venv/bin/python bench/personalization.py`` (about ten
seconds a seed on two cores). Prints a Markdown table, then one JSON line (the
last line).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from accord.config import FedConfig, config_from_mapping
from accord.simulation.engine import simulate
from accord.store import MemoryStore

PERSONAL = "personalized_accuracy"


def methods(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Each row's ``[personalization]`` section (empty: off)."""
    return {
        "FedAvg (global model)": {},
        f"fine-tuning ({args.finetune_epochs} epochs)": {
            "method": "finetune",
            "epochs": args.finetune_epochs,
        },
        "FedPer (w2, b2 private)": {"method": "fedper", "private": ["w2", "b2"]},
        f"Ditto (lambda {args.ditto_lambda:g})": {
            "method": "ditto",
            "lambda": args.ditto_lambda,
        },
    }


def config(
    personal: dict[str, Any], seed: int, args: argparse.Namespace, state: Path
) -> FedConfig:
    """One run's configuration."""
    raw: dict[str, Any] = {
        "federation": {"name": "personalization", "rounds": args.rounds, "seed": seed},
        "data": {
            "dataset": "digits",
            "partition": "dirichlet",
            "alpha": args.alpha,
            "sites": args.sites,
            "min_site_size": 20,
        },
        "task": {"factory": "accord.task.numpy_task:mlp"},
        "train": {"epochs": 1, "batch_size": 32, "learning_rate": 0.05},
        "evaluation": {"every": args.rounds, "central": False},
        "simulation": {"workers": args.workers},
        "store": {"directory": str(state)},
        "profile": {"enabled": False},
    }
    if personal:
        raw["personalization"] = personal
    return config_from_mapping(raw)


def run_one(
    personal: dict[str, Any], seed: int, args: argparse.Namespace, state: Path
) -> dict[str, float]:
    """Worst and mean site accuracy (own model if personalized), and wall time."""
    store = MemoryStore()
    t0 = time.perf_counter()
    run = simulate(config(personal, seed, args, state), store=store).run
    wall = time.perf_counter() - t0
    last = store.rounds(run.run_id)[-1]
    name = PERSONAL if personal else "accuracy"
    scores = [
        m.value
        for m in last.metrics
        if m.scope == "site" and m.participant is not None and m.name == name
    ]
    return {
        "worst": min(scores),
        "mean": statistics.fmean(scores),
        "sites": float(len(scores)),
        "wall_s": wall,
    }


def main() -> None:
    """Run every method for every seed; print the table and the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--sites", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--ditto-lambda", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, personal in methods(args).items():
            for seed in args.seeds:
                cell = run_one(personal, seed, args, Path(tmp))
                results.setdefault(label, []).append(cell)
    print(
        f"digits, Dirichlet alpha {args.alpha:g}, {args.sites} sites, numpy MLP, "
        f"{args.rounds} rounds; site accuracy on the sites' holdouts, mean over "
        f"seeds {' '.join(map(str, args.seeds))} (each seed's figure in brackets)\n"
    )
    print("| method | worst site | mean site | wall s (mean) |")
    print("|---|---|---|---|")
    summary: dict[str, dict[str, Any]] = {}
    for label, cells in results.items():
        worst = [c["worst"] for c in cells]
        mean = [c["mean"] for c in cells]
        wall = statistics.fmean(c["wall_s"] for c in cells)
        each = ", ".join(f"{w:.3f}" for w in worst)
        print(
            f"| {label} | {statistics.fmean(worst):.3f} ({each}) | "
            f"{statistics.fmean(mean):.3f} | {wall:.1f} |"
        )
        summary[label] = {
            "worst_site": statistics.fmean(worst),
            "mean_site": statistics.fmean(mean),
            "worst_site_per_seed": worst,
            "mean_site_per_seed": mean,
            "wall_s_mean": wall,
        }
    line = {
        "workload": "personalization",
        "dataset": "digits",
        "alpha": args.alpha,
        "sites": args.sites,
        "rounds": args.rounds,
        "seeds": args.seeds,
        "results": summary,
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
