"""W5, whole rounds: secure aggregation inside ``accord simulate``, against plain.

Where ``w5_secagg.py`` times the protocol alone in one process, this runs the real
thing: ``accord simulate fed.toml --json`` as a subprocess (2 warm workers, the
default) with ``bench/tasks.py``'s ``NoiseTask`` (the global model plus seeded noise,
as Flower's ``w_secagg.py`` client does), 5 rounds, full participation, store and
checkpoints on, evaluation off. Each workload runs with ``secure_aggregation``
``off`` and ``masking`` (and ``ckks`` with ``--modes off,masking,ckks``); the
figure is steady s/round (mean of rounds 2..5) and the ratio secure / plain. Workloads:

* ``20x100k``: 20 participants x 100k parameters, accord's safe defaults (complete
  graph, threshold 14 of 20);
* ``20x100k_flower_params``: the same with Flower's settings (9 share holders,
  threshold 5: SecAgg+ degree 8);
* ``100x1M``: 100 participants x 1M parameters, safe defaults (degree 20, threshold
  15 of 21 holders); ``100x1M_flower_params`` with Flower's settings.

``--peer`` also runs Flower's ``w_secagg.py --secagg 1`` and ``--secagg 0`` (20 x
100k, its own settings) and reports accord secure / Flower SecAgg+.

``--compare OTHER/src`` runs another tree (before) alternately with this one (after),
run by run, and reports each tree's figures and ratios side by side.

Run: ``.venv/bin/python bench/w5_rounds.py [--repeats 3] [--peer]
[--workloads 20x100k,100x1M] [--compare /path/to/other/src]``. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from common import machine, make_federation, median, run_accord, stderr, steady

ROUNDS = 5
WORKLOADS: dict[str, dict[str, Any]] = {
    "20x100k": {"n": 20, "params": 100_000},
    "20x100k_flower_params": {"n": 20, "params": 100_000, "degree": 8, "threshold": 5},
    "100x1M": {"n": 100, "params": 1_000_000},
    "100x1M_flower_params": {
        "n": 100,
        "params": 1_000_000,
        "degree": 8,
        "threshold": 5,
    },
}


def config(name: str, spec: dict[str, Any], mode: str) -> str:
    n = spec["n"]
    secure = [f'mode = "{mode}"', "stage_timeout_s = 300"]
    for key in ("degree", "threshold"):
        if key in spec and mode == "masking":
            secure.append(f"{key} = {spec[key]}")
    body = "\n".join(secure)
    return f"""
[federation]
name = "bench-w5-{name}-{mode}"
rounds = {ROUNDS}
seed = 0

[data]
dataset = "synthetic"
partition = "iid"
sites = {n}
holdout_fraction = 0.0
min_site_size = 1
options = {{ rows = {max(4000, 5 * n)}, features = 4, classes = 2 }}

[task]
factory = "tasks:build"
options = {{ params = {spec["params"]}, tensors = 1 }}

[round]
deadline_s = 600

[evaluation]
central = false
federated = false
baselines = false

[secure_aggregation]
{body}

[store]
directory = "@STORE@"
"""


def accord_run(name: str, mode: str, i: int, src: Path | None = None) -> dict[str, Any]:
    spec = WORKLOADS[name]
    folder = make_federation(config(name, spec, mode), with_tasks=True)
    try:
        r = run_accord(folder, tag=f"w5r-{name}-{mode}-{i}", timeout_s=1800, src=src)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert all(s == spec["n"] for s in r["succeeded"]), r["succeeded"]
    return {
        "steady_s_per_round": round(steady(r["round_s"]), 4),
        "first_round_s": r["round_s"][0],
        "process_wall_s": r["process_wall_s"],
        "peak_tree_pss_mb": r["peak_tree_pss_mb"],
    }


def flower(repeats: int) -> dict[str, Any]:
    from peer import median_of, run_flower

    out: dict[str, Any] = {}
    for secagg in (1, 0):
        runs = run_flower(
            "w_secagg.py",
            ["--secagg", str(secagg)],
            repeats=repeats,
            tag=f"s{secagg}",
            timeout_s=900,
        )
        key = "secaggplus" if secagg else "plain"
        out[f"{key}_s_per_round"] = round(
            median_of(runs, "s_per_round_mean_excl_first"), 4
        )
        out[f"{key}_runs"] = [r.get("s_per_round_mean_excl_first") for r in runs]
    out["secaggplus_over_plain"] = round(
        out["secaggplus_s_per_round"] / out["plain_s_per_round"], 3
    )
    return out


def summarise(runs: dict[str, list[dict[str, Any]]], modes: list[str]) -> Any:
    """Each mode's median steady s/round and peak PSS, and secure / plain."""
    entry: dict[str, Any] = {
        mode: {
            "steady_s_per_round": round(
                median([r["steady_s_per_round"] for r in rs]), 4
            ),
            "runs": [r["steady_s_per_round"] for r in rs],
            "peak_tree_pss_mb": round(median([r["peak_tree_pss_mb"] for r in rs]), 1),
        }
        for mode, rs in runs.items()
    }
    for mode in modes:
        if mode != "off" and "off" in entry:
            entry[f"{mode}_over_plain"] = round(
                entry[mode]["steady_s_per_round"] / entry["off"]["steady_s_per_round"],
                3,
            )
            # Paired: each run against the plain run just before it.
            entry[f"{mode}_over_plain_paired"] = [
                round(a["steady_s_per_round"] / b["steady_s_per_round"], 3)
                for a, b in zip(runs[mode], runs["off"], strict=True)
            ]
    return entry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer", action="store_true")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument(
        "--modes", default="off,masking", help="also ckks: off,masking,ckks"
    )
    ap.add_argument(
        "--compare",
        type=Path,
        default=None,
        help="another tree's src/ (before), alternated with this one (after)",
    )
    ns = ap.parse_args()
    trees: dict[str, Path | None] = {"after": None}
    if ns.compare is not None:
        trees = {"before": ns.compare.resolve(), **trees}
    doc: dict[str, Any] = {
        "workload": "W5 whole rounds in accord simulate (2 workers), 5 rounds, "
        "NoiseTask, secure_aggregation off vs masking",
        "machine": machine(),
        "repeats": ns.repeats,
        "rounds": {},
    }
    if ns.compare is not None:
        doc["trees"] = {t: str(src or "this tree") for t, src in trees.items()}
    modes = ns.modes.split(",")
    for name in ns.workloads.split(","):
        runs = {t: {m: [] for m in modes} for t in trees}
        for i in range(ns.repeats):
            for tree, src in trees.items():
                for mode in modes:
                    runs[tree][mode].append(accord_run(name, mode, i + 1, src))
                    stderr(
                        f"{name} {tree} {mode} run {i + 1}: "
                        f"{json.dumps(runs[tree][mode][-1])}"
                    )
        entries = {t: summarise(rs, modes) for t, rs in runs.items()}
        doc["rounds"][name] = entries if ns.compare is not None else entries["after"]
    if ns.peer:
        doc["flower"] = flower(ns.repeats)
        for name, entry in doc["rounds"].items():
            entry = entry.get("after", entry)
            if name.startswith("20x100k") and "masking" in entry:
                entry["masking_over_flower_secaggplus"] = round(
                    entry["masking"]["steady_s_per_round"]
                    / doc["flower"]["secaggplus_s_per_round"],
                    3,
                )
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
