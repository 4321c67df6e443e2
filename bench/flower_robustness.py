"""Flower 1.42's robust strategies on accord's attacks: the Flower half of issue 10.

Run by ``bench/robustness_side_by_side.py`` (which runs accord's half and prints
both side by side) in Flower's venv, on the federation that script exported
(``bench/peer_data.py``: the same sites, rows, test set, malicious sites and
trigger as accord's cells). For every (attack, strategy) cell it calls
``strategy.start`` inside one ServerApp, so Ray starts once for the whole matrix:

- strategies: ``FedAvg``, ``FedMedian``, ``FedTrimmedAvg(beta)``,
  ``Krum(num_malicious_nodes=f)``, ``Bulyan(num_malicious_nodes=f_b)``, all with
  every client training every round (``fraction_train = 1``) and no client-side
  evaluation. Krum and Bulyan must be told the number of attackers; Bulyan needs
  ``n >= 4 f_b + 3`` replies and skips aggregation otherwise (the model does not
  move), so with 10 clients it can be given at most ``f_b = 1``.
- attacks: each wraps the strategy in :class:`flower_sim.Adversary`, which
  rewrites the malicious replies with accord's attack code; data attacks
  (label flipping, the backdoor trigger) are in the exported training rows.
- clients train accord's task with accord's per-site seeds
  (:func:`flower_sim.train_reply`); the final global model is scored on the
  central test set (accuracy, backdoor success).

Prints one JSON line (the last line of stdout): the cells, the settings, versions.
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
    Bulyan,
    FedAvg,
    FedMedian,
    FedTrimmedAvg,
    Krum,
    Strategy,
)
from flwr.simulation import run_simulation  # noqa: E402

STRATEGIES = ("FedAvg", "FedMedian", "FedTrimmedAvg", "Krum", "Bulyan")

client_app = ClientApp()


@client_app.train()
def client_train(msg: Message, context: Context) -> Message:
    """Train this node's site (one torch thread, as accord's workers)."""
    import torch

    torch.set_num_threads(1)
    return fs.train_reply(msg, int(context.node_config["partition-id"]))


def make_strategy(name: str, n: int, args: argparse.Namespace) -> Strategy:
    """One of Flower's strategies, every client training every round."""
    common: dict[str, Any] = {
        "fraction_train": 1.0,
        "fraction_evaluate": 0.0,
        "min_train_nodes": n,
        "min_available_nodes": n,
    }
    if name == "FedAvg":
        return FedAvg(**common)
    if name == "FedMedian":
        return FedMedian(**common)
    if name == "FedTrimmedAvg":
        return FedTrimmedAvg(**common, beta=args.trim_beta)
    if name == "Krum":
        return Krum(**common, num_malicious_nodes=args.krum_f)
    if name == "Bulyan":
        return Bulyan(**common, num_malicious_nodes=args.bulyan_f)
    raise SystemExit(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")


def run_cell(
    grid: Grid, args: argparse.Namespace, attack: str, name: str
) -> dict[str, Any]:
    """One (attack, strategy) cell: the final model's central scores."""
    m = fs.manifest(args.manifest)
    n = len(m["sites"])
    wrapped = fs.Adversary.for_attack(
        make_strategy(name, n, args), args.manifest, attack
    )
    final: dict[str, float] = {}
    skipped: list[int] = []

    def evaluate_fn(rnd: int, arrays: ArrayRecord) -> MetricRecord | None:
        if rnd == args.rounds:
            final.update(fs.evaluate(args.manifest, attack, arrays))
            return MetricRecord(final)
        return None

    inner_aggregate = wrapped.inner.aggregate_train

    def counting(server_round: int, replies: Any) -> Any:
        out = inner_aggregate(server_round, replies)
        if out[0] is None:
            skipped.append(server_round)
        return out

    wrapped.inner.aggregate_train = counting  # type: ignore[method-assign]
    t0 = time.perf_counter()
    wrapped.start(
        grid=grid,
        initial_arrays=fs.initial_record(args.manifest),
        num_rounds=args.rounds,
        train_config=ConfigRecord(
            {"manifest": args.manifest, "data": m["attacks"][attack]["data"]}
        ),
        evaluate_fn=evaluate_fn,
    )
    return {
        "attack": attack,
        "strategy": name,
        "accuracy": final.get("accuracy"),
        "backdoor_success": final.get("backdoor_success"),
        "rounds_not_aggregated": len(skipped),
        "wall_s": round(time.perf_counter() - t0, 2),
    }


RESULT: dict[str, Any] = {"cells": []}
server_app = ServerApp()
ARGS: argparse.Namespace | None = None


@server_app.main()
def server_main(grid: Grid, context: Context) -> None:
    """Every cell in turn, ``none`` first."""
    assert ARGS is not None
    for attack in ARGS.attacks:
        for name in ARGS.strategies:
            cell = run_cell(grid, ARGS, attack, name)
            print(json.dumps(cell), file=sys.stderr, flush=True)
            RESULT["cells"].append(cell)


def main() -> None:
    """Parse, run the simulation once, print the JSON line."""
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", required=True, help="bench/peer_data.py's output")
    ap.add_argument("--attacks", default=None, help="comma-separated; default: all")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--rounds", type=int, default=None, help="default: the manifest's")
    ap.add_argument("--trim-beta", type=float, default=0.2)
    ap.add_argument("--krum-f", type=int, default=2)
    ap.add_argument("--bulyan-f", type=int, default=1)
    args = ap.parse_args()
    m = fs.manifest(args.manifest)
    known = list(m["attacks"])
    args.attacks = known if args.attacks is None else args.attacks.split(",")
    unknown = [a for a in args.attacks if a not in known]
    if unknown:
        raise SystemExit(f"attacks {unknown} are not in the manifest ({known})")
    args.strategies = args.strategies.split(",")
    for s in args.strategies:
        if s not in STRATEGIES:
            raise SystemExit(f"unknown strategy {s!r}; choose from {STRATEGIES}")
    args.rounds = args.rounds or int(m["rounds"])
    ARGS = args
    t0 = time.perf_counter()
    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=len(m["sites"]),
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
    )
    out = {
        "workload": "robustness_matrix",
        "framework": "flwr",
        "flwr": flwr.__version__,
        "clients": len(m["sites"]),
        "rounds": args.rounds,
        "trim_beta": args.trim_beta,
        "krum_f": args.krum_f,
        "bulyan_f": args.bulyan_f,
        "cells": RESULT["cells"],
        "wall_s_total": round(time.perf_counter() - t0, 2),
        "import_s": round(t0 - T_PROCESS, 2),
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
