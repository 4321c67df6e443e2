"""Top-k 1 % with error feedback on the digits example, against uncompressed.

Runs ``examples/digits`` (10 sites, Dirichlet 0.5, PyTorch MLP, 30 rounds) for
each seed with ``method = "none"`` and with top-k at ``--fraction`` under each
``--variant``: ``plain`` (error feedback alone), ``warmup`` (plus Deep Gradient
Compression's density warm-up, 3 rounds), ``dgc`` (the defaults: warm-up and
momentum correction 0.5, unmasked) and ``masked`` (the same with momentum factor
masking). It prints one JSON line per run: final central accuracy and dense
bytes / sent bytes over the whole run (warm-up rounds included). The table in
``docs/compression.md`` comes from::

    nice -n 10 .venv/bin/python bench/topk_digits.py --seeds 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from accord.config import load_config
from accord.coordinator.transfers import per_round
from accord.simulation.engine import simulate
from accord.store import SqlStore

REPO = Path(__file__).resolve().parents[1]


VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {"warmup_rounds": 0, "momentum": 0.0},
    "warmup": {"warmup_rounds": 3, "momentum": 0.0},
    "dgc": {},  # the defaults
    "masked": {"momentum_masking": True},
}


def run(
    tmp: Path, seed: int, method: str, fraction: float, variant: str
) -> dict[str, Any]:
    """One digits run: its final central accuracy and its byte ratio."""
    name = f"{method}-{seed}-{variant}"
    cfg = load_config(
        REPO / "examples" / "digits" / "fed.toml",
        federation={"seed": seed},
        evaluation={"federated": False, "baselines": False},
        store={"directory": str(tmp / name), "checkpoints": False},
        compression={"method": method, "fraction": fraction, **VARIANTS[variant]},
    )
    store = SqlStore(f"sqlite:///{tmp / name}.db")
    try:
        result = simulate(cfg, store=store).run
        rounds = store.rounds(result.run_id)
        transfers = per_round(store.events(result.run_id))
    finally:
        store.close()
    accuracy = next(
        m.value
        for m in rounds[-1].metrics
        if m.scope == "central" and m.name == "accuracy"
    )
    dense = sum(t.dense for t in transfers)
    sent = sum(t.sent for t in transfers)
    return {
        "seed": seed,
        "method": method,
        "fraction": fraction,
        "variant": variant,
        "accuracy": accuracy,
        "fewer_bytes": dense / sent if sent else 1.0,
        "sent_bytes": sent,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run every (seed, variant), print JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--fraction", type=float, default=0.01)
    parser.add_argument(
        "--variant", nargs="+", choices=sorted(VARIANTS), default=["plain", "dgc"]
    )
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            variants = [] if args.no_baseline else [("none", "plain")]
            variants += [("topk", v) for v in args.variant]
            for method, variant in variants:
                row = run(Path(tmp), seed, method, args.fraction, variant)
                sys.stdout.write(json.dumps(row) + "\n")
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
