"""W5 with CKKS: secure aggregation by homomorphic addition (see BENCHMARKS.md).

Times one round of :mod:`accord.secagg.ckks` in one process, for

* ``20x100k``: 20 participants x 100k parameters;
* ``100x1M``: 100 participants x 1M parameters;

with float32 updates drawn from N(0, 0.01) and integer weights in [50, 500), as in
``bench/w5_secagg.py``. Each participant encrypts its weighted update, the
coordinator checks and adds each upload as it arrives (so it never holds more than
one), serialises the sum, and the key holder decrypts it. Reported: bytes of one
upload against the plain float32 update, encryption time per participant
(median), the coordinator's total time to add every upload and to serialise the
sum, decryption time, the largest absolute error of the mean against the plain
float64 weighted mean, key generation time, and the sizes of both contexts.

When a round would take longer than ``--budget-s`` (projected from the first
participant), only as many participants as fit are encrypted and added, the
totals are extrapolated linearly, and the output says so (``extrapolated``,
``participants_measured``); the error is then that of the measured participants'
mean. ``--coeff-mod-bit-sizes`` and ``--poly-modulus-degree`` try other parameters.

Prints one JSON line. Run: ``.venv/bin/python bench/w5_ckks.py [--repeats 3]
[--workloads 20x100k,100x1M] [--budget-s 180]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from typing import Any

import numpy as np
from common import machine

from accord.aggregation import weighted_mean
from accord.params import Params
from accord.secagg.ckks import CkksAggregator, CkksParticipant, decrypt_sum
from accord.secagg.ckks_keys import CkksParams, KeyHolder

WORKLOADS: dict[str, dict[str, int]] = {
    "20x100k": {"n": 20, "params": 100_000},
    "100x1M": {"n": 100, "params": 1_000_000},
}


def make_update(seed: int, i: int, size: int) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng([seed, i])
    return rng.normal(0, 0.01, size).astype(np.float32), float(rng.integers(50, 500))


def one_round(
    spec: dict[str, int], params: CkksParams, seed: int, budget_s: float
) -> dict[str, Any]:
    n, size = spec["n"], spec["params"]
    start = time.perf_counter()
    keys = KeyHolder.create(params)
    keygen_s = time.perf_counter() - start
    participant = CkksParticipant(keys.secret_context)
    aggregator = CkksAggregator(keys.public_context, size)
    updates, weights, encrypt_s, add_s, upload_bytes = [], [], [], [], []
    for i in range(n):
        x, w = make_update(seed, i, size)
        start = time.perf_counter()
        blob = participant.encrypt(x, w)
        encrypt_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        aggregator.add(f"site{i:03d}", blob)
        add_s.append(time.perf_counter() - start)
        upload_bytes.append(len(blob))
        updates.append(x)
        weights.append(w)
        if sum(encrypt_s) + sum(add_s) > budget_s:
            break  # the rest is extrapolated from the participants measured
    measured = len(updates)
    start = time.perf_counter()
    total = aggregator.result()
    result_s = time.perf_counter() - start
    start = time.perf_counter()
    sum_wx, sum_w = decrypt_sum(keys.secret_context, total, size)
    decrypt_s = time.perf_counter() - start
    plain_sum = np.zeros(size, dtype=np.float64)
    for x, w in zip(updates, weights, strict=True):
        plain_sum += w * x.astype(np.float64)
    plain_mean = plain_sum / sum(weights)
    plist = [Params({"w": x}) for x in updates]
    start = time.perf_counter()
    weighted_mean(plist, weights)
    plain_s = time.perf_counter() - start
    scale = n / measured
    return {
        "participants_measured": measured,
        "extrapolated": measured < n,
        "upload_bytes_per_participant": statistics.median(upload_bytes),
        "plain_float32_bytes": 4 * size,
        "upload_over_plain": round(statistics.median(upload_bytes) / (4 * size), 2),
        "encrypt_s_per_participant": statistics.median(encrypt_s),
        "coordinator_add_s_total": sum(add_s) * scale,
        "coordinator_add_s_per_participant": statistics.median(add_s),
        "coordinator_serialise_sum_s": result_s,
        "sum_bytes": len(total),
        "decrypt_s": decrypt_s,
        "in_process_s": (sum(encrypt_s) + sum(add_s)) * scale + result_s + decrypt_s,
        "critical_path_s": max(encrypt_s) + sum(add_s) * scale + result_s + decrypt_s,
        "plain_weighted_mean_s": plain_s * scale,
        "max_abs_error_of_mean": float(np.abs(sum_wx / sum_w - plain_mean).max()),
        "max_abs_error_of_sum": float(np.abs(sum_wx - plain_sum).max()),
        "abs_error_of_weight_sum": abs(sum_w - sum(weights)),
        "keygen_s": keygen_s,
        "public_context_bytes": len(keys.public_context),
        "secret_context_bytes": len(keys.secret_context),
    }


def median_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, float):
            out[key] = float(f"{statistics.median(r[key] for r in runs):.4g}")
        else:
            out[key] = value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--budget-s", type=float, default=180.0)
    parser.add_argument("--poly-modulus-degree", type=int, default=8192)
    parser.add_argument("--coeff-mod-bit-sizes", default="60,40,40,60")
    parser.add_argument("--scale-bits", type=int, default=40)
    args = parser.parse_args()
    params = CkksParams(
        poly_modulus_degree=args.poly_modulus_degree,
        coeff_mod_bit_sizes=tuple(int(b) for b in args.coeff_mod_bit_sizes.split(",")),
        scale_bits=args.scale_bits,
    )
    load_before = os.getloadavg()
    doc: dict[str, Any] = {
        "workload": "W5-ckks",
        "repeats": args.repeats,
        "params": {
            "poly_modulus_degree": params.poly_modulus_degree,
            "coeff_mod_bit_sizes": list(params.coeff_mod_bit_sizes),
            "scale_bits": params.scale_bits,
            "slots": params.slots,
        },
        "budget_s": args.budget_s,
    }
    rounds = {}
    for name in args.workloads.split(","):
        spec = WORKLOADS[name]
        runs = [
            one_round(spec, params, seed, args.budget_s) for seed in range(args.repeats)
        ]
        rounds[name] = {
            "participants": spec["n"],
            "params": spec["params"],
            **median_runs(runs),
        }
    doc["rounds"] = rounds
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
