"""W2 at scale and W3 on Ray: `engine = "ray"` beside Flower's Ray backend.

accord side: ``accord simulate fed.toml --json`` as a subprocess, the W2 and W3
federations of ``w2_overhead.py`` and ``w3_bigmodel.py`` (``bench/tasks.py``'s
``NoiseTask``, no training, evaluation, baselines and the data profile off, store
on) with
``[simulation] engine = "ray"``, ``workers = 2``: two Ray actors on a private local
Ray started by the run itself (loopback, no dashboard), so its start-up is inside
the process wall time, as Flower's is. With ``--process`` the same federations also
run on accord's own worker processes, for the cost of Ray itself.

Flower side (``--peer``): ``w_overhead.py --clients N`` and ``w_bigmodel.py``, whose
simulation engine is Ray (``flwr[simulation]``, one Ray actor per CPU).

W2: ms per client-round = mean of rounds 2..R / N, for each N of ``--clients``
(default 1,000 and 10,000). W3: steady s/round (rounds 2..5) and peak summed PSS of
the process tree (Ray's GCS, raylet and workers included, on both sides).

Run: ``.venv/bin/python bench/ray_scale.py [--clients 1000 10000] [--rounds 10]
[--repeats 1] [--peer] [--peer-clients 1000] [--peer-rounds R] [--process]
[--skip-w3]``. One JSON
line on stdout.
"""

from __future__ import annotations

import argparse
import json
import shutil
from typing import Any

import w2_overhead
import w3_bigmodel
from common import (
    MIB,
    machine,
    make_federation,
    median,
    run_accord,
    stderr,
    steady,
)

RAY = """
[simulation]
engine = "ray"
workers = 2
"""
#: The sites' data profile runs once before round 1, not in a round; at 10,000
#: sites it takes minutes (accord's own cost, not the executor's), so it is off.
NO_PROFILE = """
[profile]
enabled = false
"""


def _toml(base: str, engine: str, rounds: int | None = None) -> str:
    text = base
    if rounds is not None:
        text = text.replace(f"rounds = {w2_overhead.ROUNDS}", f"rounds = {rounds}", 1)
    return text + NO_PROFILE + (RAY if engine == "ray" else "")


def accord_w2(clients: int, engine: str, rounds: int, i: int) -> dict[str, Any]:
    """One W2 run of accord on ``engine`` ("ray" or "process")."""
    folder = make_federation(
        _toml(w2_overhead.config(clients), engine, rounds), with_tasks=True
    )
    try:
        r = run_accord(folder, tag=f"ray-w2-{engine}-c{clients}-{i}", timeout_s=3600)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert all(s == clients for s in r["succeeded"]), r["succeeded"]
    s = steady(r["round_s"])
    return {
        "ms_per_client_round": round(1000 * s / clients, 4),
        "steady_s_per_round": round(s, 4),
        "first_round_s": r["round_s"][0],
        "process_wall_s": r["process_wall_s"],
        "peak_tree_pss_mb": r["peak_tree_pss_mb"],
    }


def accord_w3(engine: str, i: int) -> dict[str, Any]:
    """One W3 run of accord on ``engine``, checkpoints on (as ``w3_bigmodel.py``)."""
    base = w3_bigmodel.config(w3_bigmodel.PARAMS, True)
    folder = make_federation(_toml(base, engine), with_tasks=True)
    try:
        r = run_accord(folder, tag=f"ray-w3-{engine}-{i}", timeout_s=1800)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert all(s == w3_bigmodel.CLIENTS for s in r["succeeded"]), r["succeeded"]
    return {
        "steady_s_per_round": round(steady(r["round_s"]), 4),
        "first_round_s": r["round_s"][0],
        "process_wall_s": r["process_wall_s"],
        "peak_tree_pss_mb": r["peak_tree_pss_mb"],
        "peak_x_model": round(r["peak_tree_pss_mb"] / w3_bigmodel.MODEL_MIB, 1),
    }


def flower_w2(clients: int, rounds: int, i: int, timeout_s: float) -> dict[str, Any]:
    from peer import run_flower

    args = ["--clients", str(clients), "--params", str(w2_overhead.PARAMS)]
    args += ["--rounds", str(rounds)]
    r = run_flower(
        "w_overhead.py",
        args,
        repeats=1,
        tag=f"ray-c{clients}-r{i}",
        timeout_s=timeout_s,
    )[0]
    return {
        "ms_per_client_round": r["ms_per_client_round_excl_first"],
        "steady_s_per_round": r["s_per_round_mean_excl_first"],
        "first_round_s": r["first_round_s"],
        "process_wall_s": r["peer_process_wall_s"],
        "peak_tree_pss_mb": r["peak_tree_pss_mb"],
    }


def flower_w3(i: int) -> dict[str, Any]:
    from peer import run_flower

    r = run_flower("w_bigmodel.py", repeats=1, tag=f"ray-r{i}", timeout_s=900)[0]
    return {
        "steady_s_per_round": r["s_per_round_mean_excl_first"],
        "first_round_s": r["first_round_s"],
        "process_wall_s": r["peer_process_wall_s"],
        "peak_tree_pss_mb": r["peak_tree_pss_mb"],
        "peak_x_model": round(r["peak_tree_pss_mb"] / w3_bigmodel.MODEL_MIB, 1),
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each numeric key, and the runs themselves."""
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float)]
    out: dict[str, Any] = {k: round(median([r[k] for r in runs]), 4) for k in keys}
    out["runs"] = runs
    return out


def _ratio(a: dict[str, Any], b: dict[str, Any] | None, key: str) -> float | None:
    if b is None or not b.get(key):
        return None
    return round(float(a[key]) / float(b[key]), 4)


def _attempt(label: str, fn: Any) -> dict[str, Any] | None:
    """Run ``fn``; a run that fails or times out is reported, not raised."""
    try:
        result: dict[str, Any] = fn()
    except Exception as exc:  # a timeout, a crash: the size it could not finish
        stderr(f"{label}: did not finish: {exc}")
        return {"error": str(exc).splitlines()[0]}
    stderr(f"{label}: {json.dumps(result)[:300]}")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--clients",
        type=int,
        nargs="*",
        default=[1000, 10_000],
        help="W2's N values (none: W3 only)",
    )
    ap.add_argument("--rounds", type=int, default=w2_overhead.ROUNDS)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--peer", action="store_true", help="also run Flower (Ray)")
    ap.add_argument(
        "--peer-clients",
        type=int,
        nargs="+",
        default=None,
        help="the N Flower runs (default --clients)",
    )
    ap.add_argument(
        "--peer-rounds",
        type=int,
        default=None,
        help="Flower's W2 rounds (default --rounds; fewer where N is large)",
    )
    ap.add_argument("--peer-timeout", type=float, default=1800.0)
    ap.add_argument("--process", action="store_true", help="also worker processes")
    ap.add_argument("--skip-w3", action="store_true")
    ns = ap.parse_args()
    engines = ["ray", "process"] if ns.process else ["ray"]
    out: dict[str, Any] = {
        "workload": "W2 (N x 1,000 params, no training) and W3 (10M params, 10 "
        "clients) on Ray: accord engine = 'ray' beside Flower's Ray backend",
        "notes": "accord: 2 Ray actors on a local Ray started by the run (in the "
        "wall time), eval and baselines off, store on; steady = mean of rounds "
        "2..R; memory = peak summed PSS of the process tree",
        "rounds_w2": ns.rounds,
        "repeats": ns.repeats,
    }
    w2: dict[str, Any] = {}
    peer_clients = ns.peer_clients if ns.peer_clients is not None else ns.clients
    peer_rounds = ns.peer_rounds or ns.rounds
    out["rounds_w2_flower"] = peer_rounds
    for n in sorted(set(ns.clients) | (set(peer_clients) if ns.peer else set())):
        entry: dict[str, Any] = {}
        if n in ns.clients:
            for engine in engines:
                tried = [
                    _attempt(
                        f"accord {engine} W2 N={n}",
                        lambda n=n, engine=engine, i=i: accord_w2(
                            n, engine, ns.rounds, i
                        ),
                    )
                    for i in range(ns.repeats)
                ]
                ok = [r for r in tried if r is not None and "error" not in r]
                entry[f"accord_{engine}"] = _summary(ok) if ok else tried[0]
        if ns.peer and n in peer_clients:
            flower = [
                _attempt(
                    f"flower W2 N={n}",
                    lambda n=n, i=i: flower_w2(n, peer_rounds, i, ns.peer_timeout),
                )
                for i in range(ns.repeats)
            ]
            done = [r for r in flower if r is not None and "error" not in r]
            entry["flower_ray"] = _summary(done) if done else flower[0]
            if done and "ms_per_client_round" in entry.get("accord_ray", {}):
                entry["ratio_ms_per_client_round_accord_ray_over_flower"] = _ratio(
                    entry["accord_ray"], entry["flower_ray"], "ms_per_client_round"
                )
        w2[str(n)] = entry
    out["w2"] = w2
    if not ns.skip_w3:
        w3: dict[str, Any] = {"model_mib": round(w3_bigmodel.MODEL_MIB, 2)}
        for engine in engines:
            runs = [accord_w3(engine, i) for i in range(ns.repeats)]
            stderr(f"accord {engine} W3: {json.dumps(runs)[:300]}")
            w3[f"accord_{engine}"] = _summary(runs)
        if ns.peer:
            flower = [
                _attempt("flower W3", lambda i=i: flower_w3(i))
                for i in range(ns.repeats)
            ]
            done = [r for r in flower if r is not None and "error" not in r]
            if done:
                w3["flower_ray"] = _summary(done)
                for key in ("steady_s_per_round", "peak_tree_pss_mb"):
                    w3[f"ratio_{key}_accord_ray_over_flower"] = _ratio(
                        w3["accord_ray"], w3["flower_ray"], key
                    )
        out["w3"] = w3
    out["mib"] = MIB
    out["machine"] = machine()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
