"""Strategies for skewed data on digits, against pooled training with the same passes.

FedAvg, FedProx, SCAFFOLD, FedAdam and FedYogi (and FedAdagrad, q-FedAvg).

Each federation is scikit-learn's digits dealt to 10 sites by a Dirichlet label skew
(alpha 0.1 and 0.5, accord's seeded partitioner), trained with the numpy MLP
(``accord.task.numpy_task:mlp``, 64 hidden units: no torch needed) for ``--rounds``
rounds of ``--epochs`` local epochs, plain SGD at lr 0.05, batch 32, every site in
every round. The pooled model is accord's own baseline (:mod:`accord.simulation.
baselines`): the same task trained on the union of the sites' training rows for
rounds x epochs passes, with the same settings. Everything is scored on the same
central test set (20 % of the rows, stratified, never trained on); the table gives
the final model's accuracy, its ratio to the pooled model's, and the worst site's
accuracy on its own holdout (federated evaluation), mean over ``--seeds``.

The strategies' settings are fixed here (not tuned per split): FedProx mu = 0.01
(and 0.1), SCAFFOLD option II, FedAdam / FedYogi / FedAdagrad at server lr 0.03
with Reddi et al.'s beta1 = 0.9, beta2 = 0.99, tau = 1e-3, q-FedAvg q = 1
(L = 1 / lr).

Run: ``PYTHONPATH=src .venv/bin/python bench/strategies.py`` (about a minute per
seed on two cores). Prints a Markdown table, then one JSON line (the last line).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from accord.config import FedConfig, config_from_mapping
from accord.simulation.engine import simulate
from accord.store import MemoryStore

STRATEGIES: dict[str, dict[str, Any]] = {
    "FedAvg": {},
    "FedProx": {"proximal_mu": 0.01},
    "FedProx (mu 0.1)": {"proximal_mu": 0.1},
    "SCAFFOLD": {"scaffold": True},
    "FedAdam": {"server_optimizer": "adam", "server_lr": 0.03},
    "FedYogi": {"server_optimizer": "yogi", "server_lr": 0.03},
    "FedAdagrad": {"server_optimizer": "adagrad", "server_lr": 0.03},
    "q-FedAvg": {"aggregation": "qfedavg", "q": 1.0},
}


def config(
    alpha: float,
    seed: int,
    strategy: dict[str, Any],
    args: argparse.Namespace,
    *,
    baselines: bool,
    state: Path,
) -> FedConfig:
    """One federation: digits, 10 Dirichlet sites, the numpy MLP."""
    return config_from_mapping(
        {
            "federation": {
                "name": "bench-strategies",
                "rounds": args.rounds,
                "seed": seed,
            },
            "data": {
                "dataset": "digits",
                "partition": "dirichlet",
                "alpha": alpha,
                "sites": 10,
                "min_site_size": 20,
            },
            "task": {
                "factory": "accord.task.numpy_task:mlp",
                "options": {"hidden": 64},
            },
            "train": {"epochs": args.epochs, "batch_size": 32, "learning_rate": 0.05},
            "strategy": {**strategy, "max_weight_share": 1.0},
            "evaluation": {
                "federated": True,
                "every": args.rounds,
                "baselines": baselines,
                "metric": "accuracy",
            },
            "simulation": {"workers": 0},
            "store": {"directory": str(state)},
        }
    )


def run_one(
    alpha: float, seed: int, name: str, args: argparse.Namespace, state: Path
) -> dict[str, float]:
    """Final central accuracy, worst site's holdout accuracy, pooled (FedAvg only)."""
    baselines = name == "FedAvg"
    cfg = config(alpha, seed, STRATEGIES[name], args, baselines=baselines, state=state)
    t0 = time.perf_counter()
    store = MemoryStore()
    result = simulate(cfg, store=store)
    last = store.rounds(result.run.run_id)[-1]
    central = [
        m.value for m in last.metrics if (m.scope, m.name) == ("central", "accuracy")
    ]
    sites = [m.value for m in last.metrics if (m.scope, m.name) == ("site", "accuracy")]
    out = {"accuracy": central[0], "seconds": time.perf_counter() - t0}
    if sites:
        out["worst_site"] = min(sites)
    if result.comparison is not None:
        out["pooled"] = result.comparison.pooled["accuracy"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.1, 0.5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=list(STRATEGIES))
    args = parser.parse_args()
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for alpha in args.alphas:
            per: dict[str, list[dict[str, float]]] = {}
            for seed in args.seeds:
                for name in ["FedAvg", *[n for n in args.only if n != "FedAvg"]]:
                    got = run_one(alpha, seed, name, args, Path(tmp))
                    per.setdefault(name, []).append(got)
                    print(f"alpha={alpha} seed={seed} {name}: {got}", file=sys.stderr)
            results[str(alpha)] = per
    summary = table(results, args)
    print(json.dumps({"workload": "strategies", "args": vars(args), **summary}))


def table(
    results: dict[str, dict[str, list[dict[str, float]]]], args: argparse.Namespace
) -> dict[str, Any]:
    """Print the Markdown table; return the figures."""
    figures: dict[str, Any] = {}
    print(
        f"digits, 10 sites, numpy MLP, {args.rounds} rounds x {args.epochs} epoch(s), "
        f"mean over seeds {args.seeds}\n"
    )
    print("| alpha | strategy | accuracy | / pooled | worst site |")
    print("|---|---|---|---|---|")
    for alpha, per in results.items():
        pooled = statistics.fmean(r["pooled"] for r in per["FedAvg"])
        print(
            f"| {alpha} | pooled ({args.rounds * args.epochs} passes) | "
            f"{pooled:.4f} | 1.000 | |"
        )
        rows = {}
        for name, runs in per.items():
            acc = statistics.fmean(r["accuracy"] for r in runs)
            worst = [r["worst_site"] for r in runs if "worst_site" in r]
            rows[name] = {
                "accuracy": acc,
                "ratio": acc / pooled,
                "worst_site": statistics.fmean(worst) if worst else None,
            }
            shown = f"{rows[name]['worst_site']:.4f}" if worst else "-"
            print(f"| {alpha} | {name} | {acc:.4f} | {acc / pooled:.3f} | {shown} |")
        best = max(rows, key=lambda n: rows[n]["accuracy"])
        figures[alpha] = {"pooled": pooled, "rows": rows, "best": best}
    print()
    return figures


if __name__ == "__main__":
    main()
