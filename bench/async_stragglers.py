"""Sync against async (FedBuff) on digits with one site slower: time and accuracy.

Runs the digits example (10 sites, Dirichlet alpha = 0.5) with ``--slow`` site
``--factor`` times slower (``[simulation] slowdown``): synchronously for
``--rounds`` rounds, and asynchronously with buffer ``--buffer`` for as many
versions as give the same number of updates. Prints one JSON line: for each
mode, the virtual time (the simulation's clock, one unit per local batch step:
deterministic), the wall time (noisy, this machine's), the final central
accuracy and the refused stale updates; and the async/sync virtual-time ratio.

    python bench/async_stragglers.py                      # site-03, 10 x slower
    python bench/async_stragglers.py --max-staleness 30   # let its updates in
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from accord.config import load_config  # noqa: E402
from accord.simulation.engine import simulate  # noqa: E402
from accord.store import SqlStore  # noqa: E402


def _run(args: argparse.Namespace, mode: str, tmp: Path) -> dict[str, Any]:
    sites = 10
    rounds = args.rounds if mode == "sync" else args.rounds * sites // args.buffer
    cfg = load_config(
        REPO / "examples" / "digits" / "fed.toml",
        federation={"rounds": rounds},
        evaluation={"federated": False, "baselines": False, "every": rounds},
        store={"directory": str(tmp / mode), "checkpoints": False},
        simulation={"workers": args.workers, "slowdown": {args.slow: args.factor}},
        round={
            "mode": mode,
            "buffer_size": args.buffer,
            "max_staleness": args.max_staleness,
        },
    )
    store = SqlStore(f"sqlite:///{tmp / mode}.db")
    try:
        started = time.perf_counter()
        run = simulate(cfg, store=store).run
        wall = time.perf_counter() - started
        records = store.rounds(run.run_id)
    finally:
        store.close()
    last = {(m.scope, m.name): m.value for m in records[-1].metrics}
    return {
        "rounds_or_versions": rounds,
        "virtual_time": last[("train", "virtual_time")],
        "wall_s": round(wall, 2),
        "accuracy": last[("central", "accuracy")],
        "stale_refused": sum(
            o.status == "rejected" for r in records for o in r.outcomes
        ),
    }


def main() -> None:
    """Run both modes and print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--buffer", type=int, default=3)
    parser.add_argument("--max-staleness", type=int, default=10)
    parser.add_argument("--slow", default="site-03")
    parser.add_argument("--factor", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = {m: _run(args, m, Path(tmp)) for m in ("sync", "async")}
    out["virtual_time_ratio"] = (
        out["async"]["virtual_time"] / out["sync"]["virtual_time"]
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
