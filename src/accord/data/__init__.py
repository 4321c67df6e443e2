"""Bundled real datasets, partitioners and leak-free preprocessing."""

from accord.data.arrays import ArrayData, DatasetInfo
from accord.data.datasets import DatasetEntry, list_datasets, load_table
from accord.data.federation import FederatedData, Site, build_federation
from accord.data.partition import Partition

__all__ = [
    "ArrayData",
    "DatasetEntry",
    "DatasetInfo",
    "FederatedData",
    "Partition",
    "Site",
    "build_federation",
    "list_datasets",
    "load_table",
]
