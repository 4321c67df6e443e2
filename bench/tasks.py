"""A task that does no training, for the framework-overhead benchmarks W2 and W3.

``NoiseTask`` mirrors what the Flower peer scripts do for "no training"
(``w_overhead.py``, ``w_bigmodel.py``): a participant returns the global model plus
small Gaussian noise, and its example count. Small models (up to ``FRESH_NOISE_MAX``
parameters, W2) draw fresh noise seeded by the job's seed, as ``w_overhead.py`` does;
large ones (W3) reuse one noise vector per process, seeded once, scaled per job, as
``w_bigmodel.py`` does, so that client compute stays small. Predictions are uniform.

Used from a ``fed.toml`` as ``[task] factory = "tasks:build"`` with this file copied
next to the config (``bench/common.py`` does it), options ``params`` and ``tensors``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt

from accord.data.arrays import ArrayData, DatasetInfo
from accord.params import Params, ParamSpec, TensorSpec
from accord.task.protocol import TrainConfig, TrainResult

FRESH_NOISE_MAX = 100_000
NOISE_SCALE = 1e-3
_CACHED_NOISE: dict[int, npt.NDArray[np.float32]] = {}


def _cached_noise(n: int) -> npt.NDArray[np.float32]:
    """One seeded noise vector per process and size (like w_bigmodel.py's)."""
    noise = _CACHED_NOISE.get(n)
    if noise is None:
        noise = np.random.default_rng(12345).standard_normal(n, dtype=np.float32)
        _CACHED_NOISE[n] = noise
    return noise


class NoiseTask:
    """``params`` float32 parameters in ``tensors`` flat arrays; training adds noise."""

    def __init__(self, info: DatasetInfo, *, params: int, tensors: int) -> None:
        if params < tensors or tensors < 1:
            raise ValueError(f"need params >= tensors >= 1, got {params}, {tensors}")
        self.info = info
        size, rest = divmod(params, tensors)
        self.spec = ParamSpec(
            tuple(
                TensorSpec(f"layer{i}", "<f4", (size + (rest if i == 0 else 0),))
                for i in range(tensors)
            )
        )
        self.fresh = params <= FRESH_NOISE_MAX

    def init_params(self, seed: int) -> Params:
        """Standard normal values, deterministic in ``seed``."""
        rng = np.random.default_rng(seed)
        return Params(
            {
                t.name: rng.standard_normal(t.shape, dtype=np.float32)
                for t in self.spec.tensors
            }
        )

    def train(
        self, params: Params, data: ArrayData, config: TrainConfig
    ) -> TrainResult:
        """``params`` + small Gaussian noise (new arrays); no data is read."""
        # a + scale * noise, as the Flower clients compute it, in one new array each.
        out: dict[str, npt.NDArray[np.float32]] = {}
        if self.fresh:
            rng = np.random.default_rng(config.seed)
            for name, a in params.items():
                arr = rng.standard_normal(a.shape, dtype=np.float32)
                arr *= np.float32(NOISE_SCALE)
                arr += a
                out[name] = arr
        else:
            scale = np.float32(NOISE_SCALE * (1 + config.seed % 1000) / 1000)
            for name, a in params.items():
                arr = np.multiply(_cached_noise(a.size).reshape(a.shape), scale)
                arr += a
                out[name] = arr
        return TrainResult(Params(out), num_examples=max(len(data), 1))

    def predict(self, params: Params, x: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """Uniform class probabilities."""
        k = self.info.n_classes
        return np.full((len(x), k), 1.0 / k, dtype=np.float32)


def build(info: DatasetInfo, *, params: int = 1000, tensors: int = 1) -> NoiseTask:
    """Task factory for ``fed.toml``: ``[task] factory = "tasks:build"``."""
    return NoiseTask(info, params=params, tensors=tensors)


class FlowerSeededMLP:
    """accord's W1 MLP, trained with the Flower W1 client's seeds (W1 parity check).

    Flower's ``w_digits.py`` shuffles each client's epoch with a generator seeded by
    ``1000 * round + partition_id``; accord derives its own seeds. This wrapper gives
    the training job exactly Flower's seed (the participant's name is its partition
    id), so that, on the same data split, both frameworks run the same training.
    """

    def __init__(self, info: DatasetInfo) -> None:
        from accord.task.torch import mlp

        self.inner = mlp(info)

    def init_params(self, seed: int) -> Params:
        """The MLP's initial parameters (Flower's ``torch.manual_seed(seed)``)."""
        return self.inner.init_params(seed)

    def train(
        self, params: Params, data: ArrayData, config: TrainConfig
    ) -> TrainResult:
        """One local run with the seed Flower's client would use."""
        seed = 1000 * config.round + int(config.participant)
        return self.inner.train(params, data, dataclasses.replace(config, seed=seed))

    def predict(self, params: Params, x: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Class probabilities."""
        return self.inner.predict(params, x)


def flower_seeded_mlp(info: DatasetInfo) -> FlowerSeededMLP:
    """Task factory for the W1 parity run: ``factory = "tasks:flower_seeded_mlp"``."""
    return FlowerSeededMLP(info)
