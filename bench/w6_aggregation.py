"""W6: aggregation rules on 10 updates x 10M float32 parameters (see BENCHMARKS.md).

Measures, in one process and one run, the median of ``--repeats`` timings of:

* the memory-bandwidth reference: reading every update once (``np.add.reduce`` over
  each array, on one thread and chunked over the worker threads; the faster is the
  reference) and a memcpy of all updates;
* accord's weighted mean (exact float64 batch, float32 batch, and streaming),
  coordinate-wise median and trimmed mean (beta 0.1);
* every other rule of ``accord.aggregation.RULE_NAMES`` through ``make_rule`` with
  its defaults (``attackers`` left to the largest its bound allows; FLTrust against an
  eleventh update as the root update; centered clipping around an eleventh update
  as the previous aggregate; norm bounding at the median norm, so half are clipped),
  each timed alternately with the exact mean (``paired``: the ratio of the two
  medians, robust to a load that drifts during the run);
* the naive numpy baselines that Flower's ``aggregate``, ``aggregate_median`` and
  ``aggregate_trimmed_avg`` amount to: stack the updates, then ``np.average``,
  ``np.median`` and a trimmed mean (by full sort, and by ``np.partition`` as Flower
  and scipy do), per tensor.

Prints one JSON line: figures in ms, ratios, whether accord's median equals
``np.median`` bit for bit, and the machine. Run:
``.venv/bin/python bench/w6_aggregation.py [--params N] [--updates N] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from accord.aggregation import (
    RULE_NAMES,
    AggregationRule,
    CenteredClip,
    FLTrust,
    MeanAccumulator,
    coordinate_median,
    coordinate_trimmed_mean,
    l2_norm,
    make_rule,
    weighted_mean,
)
from accord.aggregation.coordinatewise import default_workers
from accord.params import Params

BETA = 0.1


def timed(fn: Callable[[], object], repeats: int, *, warmup: bool = True) -> float:
    """Median wall time of ``fn`` in ms over ``repeats`` runs."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return round(statistics.median(times), 1)


def paired_timings(
    rule: Callable[[], object], mean: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Medians (ms) of ``rule`` and ``mean`` timed alternately, after a warm-up.

    On a machine others load, the load drifts between timings; alternating them
    makes the ratio of the two medians compare like with like.
    """
    rule()
    mean()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((mean, times[1]), (rule, times[0])):
            start = time.perf_counter()
            fn()
            out.append((time.perf_counter() - start) * 1e3)
    return (
        round(statistics.median(times[0]), 1),
        round(statistics.median(times[1]), 1),
    )


def make_updates(n: int, params: int, tensors: int, seed: int) -> list[Params]:
    rng = np.random.default_rng(seed)
    size = params // tensors
    return [
        Params(
            {
                f"layer{j}": rng.standard_normal(size, dtype=np.float32)
                for j in range(tensors)
            }
        )
        for _ in range(n)
    ]


def read_chunked(arrays: list[np.ndarray], workers: int, chunk: int = 1 << 18) -> None:
    pieces = [(a, lo) for a in arrays for lo in range(0, a.size, chunk)]

    def run(piece: tuple[np.ndarray, int]) -> None:
        a, lo = piece
        np.add.reduce(a[lo : lo + chunk])

    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(run, pieces):
            pass


def naive(updates: list[Params], weights: list[float], rule: str) -> None:
    """Per tensor: stack the updates, then a whole-array numpy reduction."""
    n = len(updates)
    for name in updates[0]:
        stacked = np.stack([u[name] for u in updates])
        if rule == "mean":
            np.average(stacked, axis=0, weights=weights)
        elif rule == "median":
            np.median(stacked, axis=0)
        elif rule == "trimmed_sort":
            k = int(BETA * n)
            np.mean(np.sort(stacked, axis=0)[k : n - k], axis=0)
        else:  # "trimmed_partition", as Flower's _trim_mean and scipy's trim_mean
            k = int(BETA * n)
            part = np.partition(stacked, (k, n - k - 1), axis=0)
            np.mean(part[k : n - k], axis=0)


def copy_all(arrays: list[np.ndarray], dest: list[np.ndarray]) -> None:
    for d, a in zip(dest, arrays, strict=True):
        np.copyto(d, a)


def streaming_mean(updates: list[Params], weights: list[float]) -> Params:
    acc = MeanAccumulator(updates[0].spec)
    for update, weight in zip(updates, weights, strict=True):
        acc.add(update, weight)
    return acc.result()


def robust_rules(
    updates: list[Params], extra: Params, workers: int
) -> dict[str, AggregationRule]:
    """Every rule beyond mean, median and trimmed mean, as the strategy builds it."""
    rules: dict[str, AggregationRule] = {}
    bound = float(np.median([l2_norm(u) for u in updates]))
    for name in RULE_NAMES:
        if name in ("mean", "median", "trimmed_mean"):
            continue
        if name == "fltrust":
            rules[name] = FLTrust(reference=extra, workers=workers)
        elif name == "centered_clip":
            rules[name] = CenteredClip(center=extra, workers=workers)
        elif name == "norm_bounding":
            rules[name] = make_rule(name, bound=bound, workers=workers)
        else:
            rules[name] = make_rule(name, workers=workers)
    return rules


def measure(args: argparse.Namespace) -> dict[str, Any]:
    updates = make_updates(args.updates, args.params, args.tensors, args.seed)
    weights = [
        float(w)
        for w in np.random.default_rng(args.seed).integers(50, 5000, args.updates)
    ]
    arrays = [u[name] for u in updates for name in u]
    workers = args.workers or default_workers()
    dest = [np.empty_like(a) for a in arrays]
    r = args.repeats
    ms: dict[str, float] = {}
    ms["read_1thread"] = timed(lambda: [np.add.reduce(a) for a in arrays], r)
    ms["read_threads"] = timed(lambda: read_chunked(arrays, workers), r)
    ms["bandwidth_ref"] = min(ms["read_1thread"], ms["read_threads"])
    ms["memcpy"] = timed(lambda: copy_all(arrays, dest), r)
    dest.clear()
    ms["accord_mean"] = timed(
        lambda: weighted_mean(updates, weights, workers=workers), r
    )
    ms["accord_mean_float32"] = timed(
        lambda: weighted_mean(updates, weights, precision="float32", workers=workers), r
    )
    ms["accord_mean_streaming"] = timed(lambda: streaming_mean(updates, weights), r)
    ms["accord_median"] = timed(lambda: coordinate_median(updates, workers=workers), r)
    ms["accord_trimmed"] = timed(
        lambda: coordinate_trimmed_mean(updates, BETA, workers=workers), r
    )
    extra = make_updates(1, args.params, args.tensors, args.seed + 1)[0]
    paired: dict[str, float] = {}
    for name, rule in robust_rules(updates, extra, workers).items():
        rule_ms, mean_ms = paired_timings(
            lambda rule=rule: rule.aggregate(updates, weights),
            lambda: weighted_mean(updates, weights, workers=workers),
            r,
        )
        ms[f"accord_{name}"] = rule_ms
        paired[name] = round(rule_ms / mean_ms, 2)
    if args.rules_only:
        return {
            "ms": ms,
            "paired": paired,
            "median_matches_numpy": None,
            "workers": workers,
        }
    for rule in ("mean", "median", "trimmed_sort", "trimmed_partition"):
        ms[f"naive_{rule}"] = timed(
            lambda rule=rule: naive(updates, weights, rule), r, warmup=False
        )
    ours = coordinate_median(updates, workers=workers)
    same = all(
        np.array_equal(
            ours[name], np.median(np.stack([u[name] for u in updates]), axis=0)
        )
        for name in ours
    )
    return {
        "ms": ms,
        "paired": paired,
        "median_matches_numpy": same,
        "workers": workers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=int, default=10_000_000)
    parser.add_argument("--updates", type=int, default=10)
    parser.add_argument("--tensors", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=0, help="0: accord's default")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument(
        "--rules-only", action="store_true", help="skip the naive numpy baselines"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    result = measure(args)
    ms = result["ms"]
    robust = {f"{k}_over_paired_mean": v for k, v in result["paired"].items()}
    ratio = {
        **robust,
        "median_over_mean": ms["accord_median"] / ms["accord_mean"],
        "mean_over_bandwidth": ms["accord_mean"] / ms["bandwidth_ref"],
        "mean_float32_over_bandwidth": ms["accord_mean_float32"] / ms["bandwidth_ref"],
        "trimmed_over_mean": ms["accord_trimmed"] / ms["accord_mean"],
    }
    if not args.rules_only:
        ratio |= {
            "naive_mean_over_accord": ms["naive_mean"] / ms["accord_mean"],
            "naive_median_over_accord": ms["naive_median"] / ms["accord_median"],
            "naive_trimmed_sort_over_accord": ms["naive_trimmed_sort"]
            / ms["accord_trimmed"],
            "naive_trimmed_partition_over_accord": ms["naive_trimmed_partition"]
            / ms["accord_trimmed"],
        }
    update_mb = args.params * 4 * args.updates / 1e6
    print(
        json.dumps(
            {
                "workload": "W6",
                "updates": args.updates,
                "params": args.params,
                "tensors": args.tensors,
                "beta": BETA,
                "repeats": args.repeats,
                "ms": ms,
                "ratio": {k: round(v, 2) for k, v in ratio.items()},
                "read_gb_per_s": round(update_mb / ms["bandwidth_ref"], 1),
                "median_matches_numpy": result["median_matches_numpy"],
                "machine": {
                    "cpus": os.cpu_count(),
                    "usable_cpus": len(os.sched_getaffinity(0)),
                    "workers": result["workers"],
                    "processor": platform.processor() or platform.machine(),
                    "numpy": np.__version__,
                    "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                },
                "peak_rss_mb": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
