"""In-memory tabular data as numpy arrays, and what a task needs to know about it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["ArrayData", "DatasetInfo"]


@dataclass(frozen=True, slots=True)
class ArrayData:
    """Features ``x`` (float32, ``(n, d)`` or ``(n, ...)``) and integer labels ``y``."""

    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.int64]

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} rows but y has {len(self.y)}")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: npt.NDArray[np.integer[Any]]) -> ArrayData:
        """Rows at ``index`` (a copy)."""
        return ArrayData(self.x[index], self.y[index])

    @staticmethod
    def concat(parts: list[ArrayData]) -> ArrayData:
        """Stack several datasets row-wise."""
        return ArrayData(
            np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts])
        )


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    """What a task needs to build its model: input shape and classes."""

    name: str
    feature_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...] = ()

    @property
    def n_features(self) -> int:
        """Number of input features (product of the feature shape)."""
        return int(np.prod(self.feature_shape))

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)
