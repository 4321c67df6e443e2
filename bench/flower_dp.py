"""Flower 1.42's central DP (server-side fixed clipping) on digits, for issue 9.

Run by ``bench/dp_side_by_side.py`` (which runs accord's half and prints both) in
Flower's venv, on the federation that script exported (``bench/peer_data.py``).
For every noise multiplier ``z`` it runs, inside one ServerApp (Ray starts once)::

    DifferentialPrivacyServerSideFixedClipping(
        FedAvg(fraction_train=m/n, min_train_nodes=m, weighted_by_key="dp-weight"),
        noise_multiplier=z, clipping_norm=C, num_sampled_clients=m,
        accountant=RdpAccountant(...) or None)

with every client reporting ``dp-weight = 1`` (uniform weights: the noise Flower adds,
``z C / m`` per coordinate of the mean, is calibrated for them, and its accountant
refuses anything else), plus a plain ``FedAvg`` without DP as the reference. Clients
train accord's task with accord's seeds (``flower_sim.train_reply``).

What Flower reports about privacy is captured from its own log (logger ``flwr``):
without an accountant it logs the clipping norm and the noise's standard deviation
and **no epsilon**; with ``--accountant`` (its optional ``RdpAccountant``, which needs
the ``flwr[dp]`` extra's ``dp-accounting``: pass ``--dp-path`` to a folder holding it)
it logs ``Privacy spent: epsilon=... at delta=... after N releases``, accounted
without amplification by sampling (the only mode its fixed-clipping wrappers accept).

Python's and numpy's global generators (Flower's client sampling and noise) are
seeded per cell, so runs repeat; seeded noise has no privacy, it is for the benchmark.
Prints one JSON line (the last line of stdout).
"""

from __future__ import annotations

import time

T_PROCESS = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

import flower_sim as fs  # noqa: E402  (bench/ is sys.path[0])
import flwr  # noqa: E402
import numpy as np  # noqa: E402
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.serverapp.strategy import (  # noqa: E402
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
    Strategy,
)
from flwr.simulation import run_simulation  # noqa: E402

client_app = ClientApp()


@client_app.train()
def client_train(msg: Message, context: Context) -> Message:
    """Train this node's site (one torch thread, as accord's workers)."""
    import torch

    torch.set_num_threads(1)
    return fs.train_reply(msg, int(context.node_config["partition-id"]))


class LogTap(logging.Handler):
    """Keeps the messages Flower logs about clipping, noise and privacy."""

    KEYS = ("clipped", "DP noise", "Privacy spent", "epsilon")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep a matching message."""
        text = record.getMessage()
        if any(k in text for k in self.KEYS):
            self.lines.append(text.strip())


def make_accountant(n: int, delta: float) -> Any:
    """Flower's own RDP accountant, as its fixed-clipping wrappers require it."""
    from flwr.serverapp import RdpAccountant
    from flwr.supercore.privacy_accounting import (
        NeighboringRelation,
        PrivacyConfig,
        SamplingMethod,
    )

    return RdpAccountant(
        PrivacyConfig(
            target_delta=delta,
            population_size=n,
            neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
            sampling_method=SamplingMethod.NO_AMPLIFICATION,
        )
    )


def make_strategy(
    z: float, n: int, args: argparse.Namespace, *, accounted: bool
) -> tuple[Strategy, Any]:
    """Flower's DP wrapper around uniform-weight FedAvg; plain FedAvg for z = 0."""
    common: dict[str, Any] = {
        "fraction_train": args.sampled / n,
        "fraction_evaluate": 0.0,
        "min_train_nodes": args.sampled,
        "min_available_nodes": n,
    }
    if z == 0:
        return FedAvg(**common), None
    accountant = make_accountant(n, args.delta) if accounted else None
    inner = FedAvg(**common, weighted_by_key="dp-weight")
    wrapped = DifferentialPrivacyServerSideFixedClipping(
        inner, z, args.clip, args.sampled, accountant=accountant
    )
    return wrapped, accountant


def run_cell(
    grid: Grid, args: argparse.Namespace, z: float, *, accounted: bool
) -> dict[str, Any]:
    """One noise multiplier: final accuracy and what Flower said about privacy."""
    m = fs.manifest(args.manifest)
    n = len(m["sites"])
    random.seed(m["seed"])
    np.random.seed(m["seed"])
    strategy, accountant = make_strategy(z, n, args, accounted=accounted)
    tap = LogTap()
    logging.getLogger("flwr").addHandler(tap)
    final: dict[str, float] = {}

    def evaluate_fn(rnd: int, arrays: ArrayRecord) -> MetricRecord | None:
        if rnd == args.rounds:
            final.update(fs.evaluate(args.manifest, "none", arrays))
            return MetricRecord(final)
        return None

    t0 = time.perf_counter()
    try:
        strategy.start(
            grid=grid,
            initial_arrays=fs.initial_record(args.manifest),
            num_rounds=args.rounds,
            train_config=ConfigRecord({"manifest": args.manifest, "data": "clean"}),
            evaluate_fn=evaluate_fn,
        )
    finally:
        logging.getLogger("flwr").removeHandler(tap)
    spent = None if accountant is None else accountant.get_privacy_spent()
    noise = [ln for ln in tap.lines if "DP noise" in ln]
    privacy = [ln for ln in tap.lines if "Privacy spent" in ln or "epsilon" in ln]
    return {
        "noise_multiplier": z,
        "accountant": accountant is not None,
        "accuracy": final.get("accuracy"),
        "flower_epsilon": None if spent is None else spent.epsilon,
        "flower_accounting": None if spent is None else spent.accounting_method,
        "flower_releases": None if spent is None else spent.num_releases,
        "log_noise": noise[0] if noise else None,
        "log_clip": next((ln for ln in tap.lines if "clipped" in ln), None),
        "log_privacy_last": privacy[-1] if privacy else None,
        "log_privacy_lines": len(privacy),
        "wall_s": round(time.perf_counter() - t0, 2),
    }


RESULT: dict[str, Any] = {"cells": []}
server_app = ServerApp()
ARGS: argparse.Namespace | None = None


@server_app.main()
def server_main(grid: Grid, context: Context) -> None:
    """Every noise multiplier in turn (0: FedAvg without DP).

    With ``--accountant``, the last noise multiplier runs once more without it: the
    same model (same seeds), and what Flower logs by default.
    """
    assert ARGS is not None
    plan = [(z, ARGS.accountant and z > 0) for z in ARGS.noise_multipliers]
    if ARGS.accountant and ARGS.noise_multipliers[-1] > 0:
        plan.append((ARGS.noise_multipliers[-1], False))
    for z, accounted in plan:
        cell = run_cell(grid, ARGS, z, accounted=accounted)
        print(json.dumps(cell), file=sys.stderr, flush=True)
        RESULT["cells"].append(cell)


def main() -> None:
    """Parse, run the simulation once, print the JSON line."""
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", required=True, help="bench/peer_data.py's output")
    ap.add_argument("--noise-multipliers", default="0,0.5,1.0,2.0")
    ap.add_argument("--clip", type=float, default=0.3)
    ap.add_argument("--sampled", type=int, default=5, help="clients per round")
    ap.add_argument("--rounds", type=int, default=None, help="default: the manifest's")
    ap.add_argument("--delta", type=float, default=1e-5)
    ap.add_argument("--accountant", action="store_true", help="Flower's RdpAccountant")
    ap.add_argument("--dp-path", default=None, help="folder holding dp_accounting")
    args = ap.parse_args()
    if args.dp_path:
        sys.path.insert(0, args.dp_path)
    if args.accountant:
        try:
            import dp_accounting  # noqa: F401
        except ImportError as exc:
            raise SystemExit(
                f"--accountant needs Flower's 'dp' extra (dp-accounting): {exc}; "
                "install it apart from the venv with: bench/.venv-flower/bin/pip "
                "install --target bench/.flower-dp --no-deps 'dp-accounting==0.6.0' "
                "absl-py dm-tree, and pass --dp-path bench/.flower-dp"
            ) from exc
    m = fs.manifest(args.manifest)
    args.noise_multipliers = [float(z) for z in args.noise_multipliers.split(",")]
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
        "workload": "dp_fixed_clipping",
        "framework": "flwr",
        "flwr": flwr.__version__,
        "clients": len(m["sites"]),
        "sampled": args.sampled,
        "rounds": args.rounds,
        "clip": args.clip,
        "delta": args.delta,
        "accountant": bool(args.accountant),
        "cells": RESULT["cells"],
        "wall_s_total": round(time.perf_counter() - t0, 2),
        "import_s": round(t0 - T_PROCESS, 2),
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
