"""W5: secure aggregation, one protocol round in process (see BENCHMARKS.md).

First version, before the protocol is wired into rounds: it times, in one process,
one complete SecAgg/SecAgg+ round (:func:`accord.secagg.run_local_round`) for

* ``20x100k``: 20 participants x 100k parameters, accord's safe defaults (complete
  graph, threshold 14 of 20);
* ``20x100k_flower_params``: the same with Flower's W5 settings (9 share holders,
  threshold 5, i.e. SecAgg+ degree 8);
* ``100x1M``: 100 participants x 1M parameters, safe defaults (degree 20, threshold
  15 of 21 holders);

each against the plain weighted mean of the same float32 updates
(``accord.aggregation.weighted_mean``). Reported per stage: the participants'
total and slowest time, the coordinator's time; overall: the sequential in-process
time (encode + protocol + decode), and the *critical path* of a deployment where
participants run in parallel (slowest encode + per stage slowest participant +
coordinator + decode; no network). Also: mask expansion in GB/s (AES-256-CTR
into a reused uint32 buffer, fused with the ring addition, and expansion alone),
numpy's Mersenne Twister for reference (what Flower's mask generator uses), and
the cost of Shamir split and combine (F_p, :mod:`accord.secagg.shamir`) at each
threshold.

``--peer`` also runs Flower's SecAgg+ and plain legacy rounds
(``../shared/peers/flower/w_secagg.py``) side by side, with ``--repeats`` each.

Prints one JSON line. Run: ``.venv/bin/python bench/w5_secagg.py [--repeats 3]
[--peer] [--workloads 20x100k,100x1M]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from common import machine

from accord.aggregation import weighted_mean
from accord.params import Params
from accord.secagg import (
    FixedPointEncoding,
    MaskGenerator,
    SecAggConfig,
    Stage,
    run_local_round,
)
from accord.secagg.crypto import Ed25519PrivateKey, identity_public
from accord.secagg.shamir import SECRET_BYTES, combine_shares, split_secret

WORKLOADS: dict[str, dict[str, Any]] = {
    "20x100k": {"n": 20, "params": 100_000},
    "20x100k_flower_params": {"n": 20, "params": 100_000, "degree": 8, "threshold": 5},
    "100x1M": {"n": 100, "params": 1_000_000},
}


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def mask_speed(words: int, repeats: int) -> dict[str, float]:
    gen = MaskGenerator()
    key = os.urandom(32)
    target = np.zeros(words, dtype=np.uint32)
    out = np.empty(words, dtype=np.uint32)
    gen.add(key, target)  # warm-up
    gb = 4 * words / 1e9
    add = median_time(lambda: gen.add(key, target), repeats)
    expand = median_time(lambda: gen.expand(key, out), repeats)
    state = np.random.RandomState(1)
    mt = median_time(lambda: state.randint(0, 2**31 - 1, words, dtype=np.int64), 3)
    return {
        "aes_ctr_add_gb_per_s": round(gb / add, 2),
        "aes_ctr_expand_gb_per_s": round(gb / expand, 2),
        "numpy_mt_randint_gb_per_s": round(gb / mt, 2),
    }


def shamir_cost(threshold: int, holders: int) -> dict[str, float]:
    secret = os.urandom(SECRET_BYTES)
    shares: list[Any] = []

    def split() -> None:
        shares[:] = split_secret(secret, threshold=threshold, holders=holders)

    split_s = median_time(split, 5)
    combine_s = median_time(lambda: combine_shares(shares, threshold=threshold), 5)
    return {
        "split_ms": round(split_s * 1e3, 2),
        "combine_ms": round(combine_s * 1e3, 2),
    }


def one_round(spec: dict[str, Any], seed: int) -> dict[str, Any]:
    n, size = spec["n"], spec["params"]
    rng = np.random.default_rng(seed)
    keys = {f"site{i:03d}": Ed25519PrivateKey.generate() for i in range(n)}
    updates = {p: rng.normal(0, 0.01, size).astype(np.float32) for p in keys}
    weights = {p: float(rng.integers(50, 500)) for p in keys}
    enc = FixedPointEncoding(clip=1.0, participants=n, max_weight=500.0)
    cfg = SecAggConfig.create(
        run_id=f"w5-{seed}",
        round_number=1,
        identities={p: identity_public(k) for p, k in keys.items()},
        vector_size=enc.words(size),
        threshold=spec.get("threshold"),
        degree=spec.get("degree"),
    )
    encode_times, inputs = [], {}
    for p in keys:
        start = time.perf_counter()
        inputs[p] = enc.encode(updates[p], weights[p], rng)
        encode_times.append(time.perf_counter() - start)
    start = time.perf_counter()
    run = run_local_round(cfg, keys, inputs)
    protocol_s = time.perf_counter() - start
    start = time.perf_counter()
    mean = enc.decode_mean(run.result.total)
    decode_s = time.perf_counter() - start
    plist = [Params({"w": updates[p]}) for p in keys]
    wlist = [weights[p] for p in keys]
    plain_s = median_time(lambda: weighted_mean(plist, wlist), 3)
    plain = weighted_mean(plist, wlist)["w"].astype(np.float64)
    stages = {
        str(s): {
            "participants_total_s": t.participants_total_s,
            "participants_max_s": t.participants_max_s,
            "coordinator_s": t.coordinator_s,
        }
        for s, t in run.timings.items()
    }
    critical = (
        max(encode_times)
        + sum(t.participants_max_s + t.coordinator_s for t in run.timings.values())
        + decode_s
    )
    return {
        "threshold": cfg.threshold,
        "degree": cfg.degree,
        "stages": stages,
        "encode_s_total": sum(encode_times),
        "protocol_s": protocol_s,
        "decode_s": decode_s,
        "secure_in_process_s": sum(encode_times) + protocol_s + decode_s,
        "secure_critical_path_s": critical,
        "plain_weighted_mean_s": plain_s,
        "max_abs_error_of_mean": float(np.abs(mean - plain).max()),
        "coordinator_unmask_s": run.timings[Stage.UNMASK].coordinator_s,
    }


def median_dicts(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, dict):
            out[key] = median_dicts([r[key] for r in runs])
        elif isinstance(value, float):
            out[key] = float(f"{statistics.median(r[key] for r in runs):.4g}")
        else:
            out[key] = value
    return out


def measure(name: str, repeats: int) -> dict[str, Any]:
    spec = WORKLOADS[name]
    runs = [one_round(spec, seed) for seed in range(repeats)]
    result = median_dicts(runs)
    plain = result["plain_weighted_mean_s"]
    result["ratio_in_process_over_plain"] = round(
        result["secure_in_process_s"] / plain, 1
    )
    result["ratio_critical_path_over_plain"] = round(
        result["secure_critical_path_s"] / plain, 1
    )
    holders = result["degree"] + 1
    result["shamir"] = shamir_cost(result["threshold"], holders)
    return {"participants": spec["n"], "params": spec["params"], **result}


def flower(repeats: int) -> dict[str, Any]:
    from peer import median_of, run_flower

    out: dict[str, Any] = {}
    for secagg in (1, 0):
        runs = run_flower(
            "w_secagg.py",
            ["--secagg", str(secagg)],
            repeats=repeats,
            tag=f"secagg{secagg}",
            timeout_s=600,
        )
        key = "secaggplus" if secagg else "plain"
        out[f"{key}_s_per_round"] = median_of(runs, "s_per_round_mean_excl_first")
        out[f"{key}_rounds_that_changed_model"] = [
            r.get("rounds_that_changed_model") for r in runs
        ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--peer", action="store_true", help="also run Flower's W5")
    args = parser.parse_args()
    load_before = os.getloadavg()
    doc: dict[str, Any] = {"workload": "W5", "repeats": args.repeats}
    doc["mask"] = mask_speed(1 << 20, 20)
    doc["rounds"] = {w: measure(w, args.repeats) for w in args.workloads.split(",")}
    if args.peer:
        doc["flower"] = flower(args.repeats)
        ours = doc["rounds"].get("20x100k_flower_params") or doc["rounds"]["20x100k"]
        secure = doc["flower"]["secaggplus_s_per_round"]
        doc["accord_critical_path_over_flower_secaggplus_round"] = round(
            ours["secure_critical_path_s"] / secure, 3
        )
        doc["accord_in_process_over_flower_secaggplus_round"] = round(
            ours["secure_in_process_s"] / secure, 3
        )
    doc["machine"] = {
        **machine(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "numpy": np.__version__,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    doc["peak_rss_mb"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
