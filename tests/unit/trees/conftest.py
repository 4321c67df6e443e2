"""Small seeded federations for the tree tests."""

import numpy as np
import numpy.typing as npt
import pytest


def make_rows(
    rows: int, seed: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Standardised features (one binary) with a non-linear 0/1 label."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4)).astype(np.float32)
    x[:, 3] = (rng.random(rows) < 0.3).astype(np.float32)
    logit = 1.5 * x[:, 0] * (x[:, 1] > 0) - x[:, 2] ** 2 + 2.0 * x[:, 3]
    y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return x, y


@pytest.fixture
def rows() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """600 seeded rows."""
    return make_rows(600, seed=3)
