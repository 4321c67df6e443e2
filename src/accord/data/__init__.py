"""Bundled real datasets, partitioners and leak-free preprocessing."""

from accord.data.arrays import ArrayData, DatasetInfo

__all__ = ["ArrayData", "DatasetInfo"]
