"""Strategies for skewed data, against pooled training with the same passes.

FedAvg, FedProx, SCAFFOLD, FedAdam and FedYogi (and FedAdagrad, q-FedAvg), and with
``--flower`` Flower 1.42's FedAvg, FedProx, FedAdam and FedYogi on the same splits.

Each federation is ``--dataset`` (scikit-learn's digits, or ``fashion_mnist``: the
10,000 t10k images of the Debian package ``dataset-fashion-mnist``, 784 pixels)
dealt to 10 sites by a Dirichlet label skew
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

With ``--flower``, each (alpha, seed) federation is exported from accord's own
data pipeline (``bench/peer_data.py``: the same sites, rows and test set) and
``bench/flower_strategies.py`` runs Flower's strategies on it in Flower's venv
(``bench/.venv-flower``, made by ``bench/setup-flower.sh``) with the same task,
local training, rounds and per-site seeds; its rows are scored on the same test
set and divided by the same pooled accuracy.

With ``--example FED.TOML`` the federation is an example's own natural split,
task and ``[train]`` (``examples/lending_club``: 10 states; ``examples/covid``: 8
clinics) with the rounds, epochs, seed, strategy and evaluation replaced as above;
``--metric auc`` scores the rare-outcome examples. ``--server-lr`` replaces the
adaptive strategies' server lr (what was tried is in ``docs/strategies.md``).

Run: ``PYTHONPATH=src .venv/bin/python bench/strategies.py`` (about a minute per
seed on two cores for digits). Prints a Markdown table, then one JSON line (the
last line).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from peer import RAW_DIR, FlowerVenvMissing, PeerError, run_peer_script, venv_python
from peer_data import export_federation

from accord.config import FedConfig, config_from_mapping, load_config
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
    alpha: float | str,
    seed: int,
    strategy: dict[str, Any],
    args: argparse.Namespace,
    *,
    baselines: bool,
    state: Path,
) -> FedConfig:
    """One federation: the dataset, 10 Dirichlet sites, the numpy MLP.

    With ``--example``, the example's own ``fed.toml`` instead (its natural split,
    task and local training), with the strategy, rounds, epochs, seed and
    evaluation replaced so every strategy and pooled see the same passes.
    """
    evaluation = {
        "federated": True,
        "every": args.rounds,
        "baselines": baselines,
        "metric": args.metric,
    }
    if args.example is not None:
        return load_config(
            args.example,
            federation={"rounds": args.rounds, "seed": seed},
            train={"epochs": args.epochs},
            strategy={**strategy, "max_weight_share": 1.0},
            evaluation=evaluation,
            simulation={"workers": 0},
            store={"directory": str(state)},
        )
    return config_from_mapping(
        {
            "federation": {
                "name": "bench-strategies",
                "rounds": args.rounds,
                "seed": seed,
            },
            "data": {
                "dataset": args.dataset,
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
            "evaluation": evaluation,
            "simulation": {"workers": 0},
            "store": {"directory": str(state)},
        }
    )


def run_one(
    alpha: float | str, seed: int, name: str, args: argparse.Namespace, state: Path
) -> dict[str, float]:
    """Final central metric, worst site's holdout metric, pooled (FedAvg only)."""
    baselines = name == "FedAvg"
    strategy = dict(STRATEGIES[name])
    if args.server_lr is not None and "server_optimizer" in strategy:
        strategy["server_lr"] = args.server_lr
    cfg = config(alpha, seed, strategy, args, baselines=baselines, state=state)
    t0 = time.perf_counter()
    store = MemoryStore()
    result = simulate(cfg, store=store)
    last = store.rounds(result.run.run_id)[-1]
    metric = args.metric
    central = [
        m.value for m in last.metrics if (m.scope, m.name) == ("central", metric)
    ]
    sites = [m.value for m in last.metrics if (m.scope, m.name) == ("site", metric)]
    if not central:
        raise SystemExit(f"strategies: no central {metric!r} in the last round")
    out = {"accuracy": central[0], "seconds": time.perf_counter() - t0}
    finite = [v for v in sites if math.isfinite(v)]
    if finite:
        out["worst_site"] = min(finite)
    if result.comparison is not None:
        out["pooled"] = result.comparison.pooled[metric]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.1, 0.5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=list(STRATEGIES))
    parser.add_argument("--dataset", default="digits", help="digits, fashion_mnist")
    parser.add_argument(
        "--example",
        type=Path,
        default=None,
        help="an example's fed.toml (e.g. examples/lending_club/fed.toml): its "
        "natural split, task and training instead of --dataset/--alphas",
    )
    parser.add_argument(
        "--server-lr",
        type=float,
        default=None,
        help="server lr of FedAdam/FedYogi/FedAdagrad (default 0.03)",
    )
    parser.add_argument(
        "--metric",
        default="accuracy",
        help="the headline metric (accuracy, auc, loss); auc for a natural split",
    )
    parser.add_argument(
        "--flower",
        action="store_true",
        help="also run Flower's FedAvg/FedProx/FedAdam/FedYogi on the same splits",
    )
    args = parser.parse_args()
    unknown = [n for n in args.only if n not in STRATEGIES]
    if unknown:
        parser.error(f"unknown strategies {unknown}; known: {list(STRATEGIES)}")
    if args.example is not None:
        if not args.example.is_file():
            parser.error(f"--example {args.example}: no such fed.toml")
        if args.flower:
            parser.error("--flower runs on the Dirichlet splits only, not --example")
        args.dataset = args.example.parent.name
        args.alphas = ["natural"]
    if args.flower:
        try:
            venv_python()
        except FlowerVenvMissing as exc:
            raise SystemExit(f"strategies: {exc}") from None
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
        if args.flower:
            flower_cells(results, args, Path(tmp))
    summary = table(results, args)
    print(
        json.dumps(
            {"workload": "strategies", "args": vars(args), **summary}, default=str
        )
    )


def flower_cells(
    results: dict[str, dict[str, list[dict[str, float]]]],
    args: argparse.Namespace,
    tmp: Path,
) -> None:
    """Run Flower's strategies on every (alpha, seed) split; add them to results."""
    manifests = []
    for alpha in args.alphas:
        for seed in args.seeds:
            cfg = config(alpha, seed, {}, args, baselines=False, state=tmp)
            out = RAW_DIR / f"strategies-peer/{args.dataset}-a{alpha}-s{seed}"
            extra = {"alpha": str(alpha)}
            manifests.append(export_federation(cfg, [], out, extra=extra))
    try:
        (flower,) = run_peer_script(
            Path(__file__).resolve().parent / "flower_strategies.py",
            [
                "--manifests",
                ",".join(str(m) for m in manifests),
                *(
                    []
                    if args.server_lr is None
                    else ["--server-lr", str(args.server_lr)]
                ),
            ],
            repeats=1,
            tag=args.dataset,
            timeout_s=7200,
        )
    except PeerError as exc:
        raise SystemExit(f"strategies: {exc}") from None
    for cell in flower["cells"]:
        got = {"accuracy": float(cell["accuracy"]), "seconds": cell["wall_s"]}
        name = f"Flower {cell['strategy']}"
        results[cell["alpha"]].setdefault(name, []).append(got)
        where = f"alpha={cell['alpha']} seed={cell['seed']}"
        print(f"{where} {name}: {got}", file=sys.stderr)


def table(
    results: dict[str, dict[str, list[dict[str, float]]]], args: argparse.Namespace
) -> dict[str, Any]:
    """Print the Markdown table; return the figures."""
    figures: dict[str, Any] = {}
    where = "natural split" if args.example is not None else "10 sites, numpy MLP"
    lr = "" if args.server_lr is None else f", server lr {args.server_lr}"
    print(
        f"{args.dataset}, {where}, "
        f"{args.rounds} rounds x {args.epochs} epoch(s){lr}, "
        f"mean over seeds {args.seeds}\n"
    )
    print(f"| alpha | strategy | {args.metric} | / pooled | worst site |")
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
        ours = [n for n in rows if not n.startswith("Flower ")]
        best = max(ours, key=lambda n: rows[n]["accuracy"])
        figures[alpha] = {"pooled": pooled, "rows": rows, "best": best}
    print()
    return figures


if __name__ == "__main__":
    main()
