"""The cost of record-level DP-SGD: one site's DP round against its plain round.

One site of scikit-learn's digits (``--rows`` rows, features scaled to [0, 1]) trains
one local epoch per round, batch 32, with each model three ways: plain minibatch SGD
(accord's usual round) and DP-SGD with the same expected number of steps (Poisson
sampling at ``q = 32 / rows``, ``ceil(rows / 32)`` steps, per-example clipping and
Gaussian noise). The models:

- ``torch_mlp``: accord's PyTorch MLP 64-64-10 (``accord.task.torch.mlp``); DP
  through Opacus (per-sample gradients by ``GradSampleModule``);
- ``torch_cnn``: a small CNN (conv 3x3, 8 channels, on the 8x8 image; linear to
  10), DP through Opacus;
- ``numpy_mlp``: accord's numpy MLP (64 hidden), DP with hand-written
  per-example gradients.

Each model's first DP round (which makes the site's model private, once) is
reported apart; the steady rounds alternate plain and DP so that load drift hits
both alike. The figure to read is ``dp_over_plain``: the median DP round over the
median plain round, same machine, same run. torch runs on one thread.

Run: ``.venv/bin/python bench/dp_overhead.py [--rounds 7] [--rows 360]``. One JSON
line on stdout (progress on stderr).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from common import machine, median, stderr
from sklearn.datasets import load_digits
from torch import nn

from accord.data.arrays import ArrayData, DatasetInfo
from accord.privacy.dpsgd import OPTION_KEY, DpSgdPlan
from accord.task.numpy_task import mlp as numpy_mlp
from accord.task.protocol import Task, TrainConfig
from accord.task.torch import TorchTask
from accord.task.torch import mlp as torch_mlp

BATCH = 32


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 8, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 6 * 6, 10),
    )


def _site(rows: int) -> tuple[ArrayData, DatasetInfo]:
    digits = load_digits()
    x = (digits.data[:rows] / 16.0).astype(np.float32)
    y = digits.target[:rows].astype(np.int64)
    info = DatasetInfo("digits", (64,), tuple(str(c) for c in range(10)))
    return ArrayData(x, y), info


def _timed(task: Task, params: Any, data: ArrayData, config: TrainConfig) -> float:
    t0 = time.perf_counter()
    task.train(params, data, config)
    return time.perf_counter() - t0


def measure(
    name: str, build: Callable[[], Task], data: ArrayData, rounds: int
) -> dict[str, Any]:
    """Plain and DP round times of one model on the site."""
    task = build()
    params = task.init_params(0)
    rows = len(data)
    plan = DpSgdPlan(
        run="bench",
        noise_multiplier=1.0,
        clip=1.0,
        sampling_rate=BATCH / rows,
        steps=math.ceil(rows / BATCH),
        delta=1e-5,
    )
    plain = TrainConfig(batch_size=BATCH, participant="site")
    private = TrainConfig(
        batch_size=BATCH, participant="site", options={OPTION_KEY: plan.to_json()}
    )
    _timed(task, params, data, plain)  # warm: imports, first allocations
    first_dp = _timed(task, params, data, private)  # makes the site private
    plain_s, dp_s = [], []
    for i in range(rounds):
        seeded = [
            TrainConfig(**{**_fields(c), "seed": i + 1}) for c in (plain, private)
        ]
        plain_s.append(_timed(task, params, data, seeded[0]))
        dp_s.append(_timed(task, params, data, seeded[1]))
    result = {
        "model": name,
        "steps_per_round": plan.steps,
        "sampling_rate": round(plan.sampling_rate, 5),
        "plain_round_ms": round(1000 * median(plain_s), 2),
        "dp_round_ms": round(1000 * median(dp_s), 2),
        "first_dp_round_ms": round(1000 * first_dp, 2),
        "dp_over_plain": round(median(dp_s) / median(plain_s), 2),
    }
    stderr(json.dumps(result))
    return result


def _fields(config: TrainConfig) -> dict[str, Any]:
    return {
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "seed": config.seed,
        "round": config.round,
        "participant": config.participant,
        "options": dict(config.options),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--rows", type=int, default=360)
    args = ap.parse_args()
    torch.set_num_threads(1)
    data, info = _site(args.rows)
    models: dict[str, Callable[[], Task]] = {
        "torch_mlp": lambda: torch_mlp(info, hidden=(64, 64)),
        "torch_cnn": lambda: TorchTask(functools.partial(_cnn)),
        "numpy_mlp": lambda: numpy_mlp(info, hidden=64),
    }
    results = [measure(n, b, data, args.rounds) for n, b in models.items()]
    print(
        json.dumps(
            {
                "workload": "dp_overhead",
                "rows": args.rows,
                "batch_size": BATCH,
                "rounds": args.rounds,
                "torch_threads": 1,
                "models": results,
                "machine": machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
