"""Flower 1.42's FedAvg, FedProx, FedAdam and FedYogi: the Flower half of issue 12.

Run by ``bench/strategies.py --flower`` (which runs accord's half and prints both in
one table) in Flower's venv, on the federations that script exported with
``bench/peer_data.py``: for each (alpha, seed) the same sites, rows and test set as
accord's run, the same task (accord's numpy MLP, loaded as accord loads it), the
same local training (epochs, batch, lr) and accord's per-site, per-round seeds
(:func:`flower_sim.train_reply`). All cells run inside one ServerApp, so Ray
starts once.

Settings, matched to accord's (``bench/strategies.py``):

- every client trains every round (``fraction_train = 1``), no client evaluation;
- ``FedProx(proximal_mu=mu)``: Flower sends ``proximal-mu``; the client adds
  ``mu (w - w_global)`` to every gradient through accord's own FedProx hook, so
  the local step is accord's;
- ``FedAdam`` / ``FedYogi``: ``eta`` = accord's ``server_lr``, ``beta_1``,
  ``beta_2``, ``tau`` as accord's (0.9, 0.99, 1e-3); ``eta_l`` (Flower logs it,
  nothing uses it) = the local lr. Flower's own update rules stay as they are:
  its FedAdam starts ``v`` at 0 and bias-corrects the step (Kingma & Ba), its
  FedYogi starts ``v`` at 0 without correction; accord's both start ``v`` at
  ``tau**2`` without correction, as Reddi et al.'s Algorithm 2.

Prints one JSON line (the last line of stdout): each cell's final central accuracy.
"""

from __future__ import annotations

import time

T_PROCESS = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

import flower_sim as fs  # noqa: E402  (bench/ is sys.path[0])
import flwr  # noqa: E402
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.serverapp.strategy import (  # noqa: E402
    FedAdam,
    FedAvg,
    FedProx,
    FedYogi,
    Strategy,
)
from flwr.simulation import run_simulation  # noqa: E402

STRATEGIES = ("FedAvg", "FedProx", "FedAdam", "FedYogi")

client_app = ClientApp()


def as_task_dtypes(path: str, record: ArrayRecord) -> ArrayRecord:
    """``record`` with each array in the task's own dtype (float32 for the MLP).

    Flower's strategies average in float64 and keep the global model so; a Flower
    client loads it into its float32 model (as torch's ``load_state_dict`` copies
    into float32 parameters). accord's tasks refuse another dtype, so this is
    that copy, made where the model arrives (the client, the evaluation).
    """
    import numpy as np

    init = fs.initial_record(path)
    return fs.to_record(
        fs.Params(
            (k, np.asarray(v, dtype=init[k].numpy().dtype))
            for k, v in fs.to_params(record).items()
        )
    )


@client_app.train()
def client_train(msg: Message, context: Context) -> Message:
    """Train this node's site with accord's task and seeds."""
    path = str(msg.content["config"]["manifest"])
    msg.content["arrays"] = as_task_dtypes(path, msg.content["arrays"])
    return fs.train_reply(msg, int(context.node_config["partition-id"]))


def make_strategy(name: str, n: int, args: argparse.Namespace, lr: float) -> Strategy:
    """One of Flower's strategies with accord's settings."""
    common: dict[str, Any] = {
        "fraction_train": 1.0,
        "fraction_evaluate": 0.0,
        "min_train_nodes": n,
        "min_available_nodes": n,
    }
    adaptive: dict[str, Any] = {
        "eta": args.server_lr,
        "eta_l": lr,
        "beta_1": args.beta_1,
        "beta_2": args.beta_2,
        "tau": args.tau,
    }
    if name == "FedAvg":
        return FedAvg(**common)
    if name == "FedProx":
        return FedProx(**common, proximal_mu=args.mu)
    if name == "FedAdam":
        return FedAdam(**common, **adaptive)
    if name == "FedYogi":
        return FedYogi(**common, **adaptive)
    raise SystemExit(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")


def run_cell(grid: Grid, path: str, name: str, rounds: int) -> dict[str, Any]:
    """One (federation, strategy) cell: the final model's central accuracy."""
    assert ARGS is not None
    m = fs.manifest(path)
    strategy = make_strategy(name, len(m["sites"]), ARGS, m["train"]["learning_rate"])
    final: dict[str, float] = {}

    def evaluate_fn(rnd: int, arrays: ArrayRecord) -> MetricRecord | None:
        if rnd == rounds:
            final.update(fs.evaluate(path, "none", as_task_dtypes(path, arrays)))
            return MetricRecord(final)
        return None

    t0 = time.perf_counter()
    strategy.start(
        grid=grid,
        initial_arrays=fs.initial_record(path),
        num_rounds=rounds,
        train_config=ConfigRecord({"manifest": path, "data": "clean"}),
        evaluate_fn=evaluate_fn,
    )
    return {
        "alpha": m["alpha"],
        "seed": m["seed"],
        "strategy": name,
        "accuracy": final.get("accuracy"),
        "wall_s": round(time.perf_counter() - t0, 2),
    }


RESULT: dict[str, Any] = {"cells": []}
server_app = ServerApp()
ARGS: argparse.Namespace | None = None


@server_app.main()
def server_main(grid: Grid, context: Context) -> None:
    """Every federation, every strategy."""
    assert ARGS is not None
    for path in ARGS.manifests:
        rounds = ARGS.rounds or int(fs.manifest(path)["rounds"])
        for name in ARGS.strategies:
            cell = run_cell(grid, path, name, rounds)
            print(json.dumps(cell), file=sys.stderr, flush=True)
            RESULT["cells"].append(cell)


def main() -> None:
    """Parse, run the simulation once, print the JSON line."""
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifests", required=True, help="comma-separated paths")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--rounds", type=int, default=None, help="default: the manifest's")
    ap.add_argument("--mu", type=float, default=0.01)
    ap.add_argument("--server-lr", type=float, default=0.03)
    ap.add_argument("--beta-1", type=float, default=0.9)
    ap.add_argument("--beta-2", type=float, default=0.99)
    ap.add_argument("--tau", type=float, default=1e-3)
    args = ap.parse_args()
    args.manifests = args.manifests.split(",")
    args.strategies = args.strategies.split(",")
    for s in args.strategies:
        if s not in STRATEGIES:
            raise SystemExit(f"unknown strategy {s!r}; choose from {STRATEGIES}")
    sizes = {len(fs.manifest(p)["sites"]) for p in args.manifests}
    if len(sizes) != 1:
        raise SystemExit(f"the manifests have different numbers of sites: {sizes}")
    ARGS = args
    t0 = time.perf_counter()
    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=sizes.pop(),
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
    )
    out = {
        "workload": "strategies",
        "framework": "flwr",
        "flwr": flwr.__version__,
        "mu": args.mu,
        "server_lr": args.server_lr,
        "beta_1": args.beta_1,
        "beta_2": args.beta_2,
        "tau": args.tau,
        "cells": RESULT["cells"],
        "wall_s_total": round(time.perf_counter() - t0, 2),
        "import_s": round(t0 - T_PROCESS, 2),
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
