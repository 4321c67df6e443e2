"""Shared fixtures for the aggregation tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import pytest

from accord.params import Params

MakeUpdates = Callable[..., list[Params]]


def _make_updates(
    n: int,
    shapes: Sequence[tuple[int, ...]],
    *,
    seed: int = 0,
    dtype: npt.DTypeLike = np.float32,
    pool: Sequence[float] = (),
) -> list[Params]:
    """``n`` seeded updates with tensors of ``shapes``, some values drawn from ``pool``.

    Values are normal at a random scale per tensor; drawing about a third of them from
    a small pool makes ties, zeros and extreme values common.
    """
    rng = np.random.default_rng(seed)
    updates = []
    for _ in range(n):
        arrays = {}
        for i, shape in enumerate(shapes):
            values = rng.standard_normal(shape) * rng.choice([1e-3, 1.0, 1e3])
            if len(pool):
                mask = rng.random(shape) < 0.3
                values = np.where(mask, rng.choice(np.asarray(pool), shape), values)
            arrays[f"layer{i}.weight"] = np.asarray(values).astype(dtype)
        updates.append(Params(arrays))
    return updates


@pytest.fixture(scope="session")
def make_updates() -> MakeUpdates:
    """Factory: ``make_updates(n, shapes, seed=, dtype=, pool=)`` -> list of Params."""
    return _make_updates
