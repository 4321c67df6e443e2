"""Build a simulated federation from a dataset: the one entry point the engine calls.

Order matters, and is chosen so that nothing leaks into evaluation:

1. load the table and drop rows without a target;
2. split off a central **test** set (stratified, seeded) before anything else: it is
   used only to report results, never to train, tune or scale;
3. partition the remaining rows into **sites** (iid, dirichlet, quantity, natural);
4. split each site into **train** and **holdout** (for federated evaluation);
5. fit preprocessing from the sites' train rows only (federated sufficient
   statistics, see :mod:`accord.data.preprocess`) and apply it to every split.

Each step draws from its own seed stream derived from ``seed``, so the same
arguments give bit-identical arrays, and changing e.g. the partition does not move
rows between test and development.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from accord.data import partition as part
from accord.data.arrays import ArrayData, DatasetInfo
from accord.data.datasets import Table, load_table
from accord.data.preprocess import Encoder, extract_features
from accord.errors import DatasetError, excerpt

__all__ = [
    "PARTITIONS",
    "FederatedData",
    "RowPlan",
    "Site",
    "build_federation",
    "holdout_split",
    "labelled",
    "plan_federation",
    "plan_rows",
]

PARTITIONS = ("iid", "dirichlet", "quantity", "natural")
"""The partition kinds :func:`build_federation` accepts."""
Index = npt.NDArray[np.int64]

# Seed streams, one per step: changing one step never reshuffles another.
_TEST, _PARTITION, _HOLDOUT = 0, 1, 2
_NO_OPTIONS: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Site:
    """One participant's data: rows to train on and rows to score the model on."""

    name: str
    train: ArrayData
    holdout: ArrayData


@dataclass(frozen=True, slots=True)
class FederatedData:
    """Sites with their train/holdout data, and the central test set for reporting."""

    info: DatasetInfo
    sites: tuple[Site, ...]
    test: ArrayData

    def pooled_train(self) -> ArrayData:
        """Every site's train rows together (the centralized baseline's data)."""
        return ArrayData.concat([s.train for s in self.sites])


@dataclass(frozen=True, slots=True)
class RowPlan:
    """Which rows go to the test set and to each site's train and holdout split.

    Indices refer to the table's rows, in :func:`load_table` order, once rows
    without a target are dropped.
    """

    test: Index
    names: tuple[str, ...]
    train: tuple[Index, ...]
    holdout: tuple[Index, ...]


def _stream(seed: int, step: int, *more: int) -> int:
    """An independent seed for one step, derived from the run seed."""
    if seed < 0:
        raise DatasetError(f"seed must be a non-negative integer, got {seed}")
    return int(
        np.random.SeedSequence([seed, step, *more]).generate_state(1, np.uint64)[0]
    )


def plan_rows(
    labels: npt.NDArray[np.int64],
    site_values: npt.NDArray[Any] | None,
    *,
    partition: str,
    sites: int,
    seed: int,
    alpha: float = 0.5,
    test_fraction: float = 0.2,
    holdout_fraction: float = 0.2,
    other: str = "drop",
    min_site_size: int = 10,
) -> RowPlan:
    """Assign rows to the test set and to each site's train and holdout split.

    Depends only on labels, site values and the arguments, never on feature values,
    so the plan can be recomputed (and audited) without the features.
    """
    if partition not in PARTITIONS:
        raise DatasetError(
            f"unknown partition {partition!r}; use one of {', '.join(PARTITIONS)}"
        )
    if partition == "natural" and site_values is None:
        raise DatasetError(
            "partition 'natural' needs a site column: this dataset has none, so "
            "pass site_column=COLUMN or choose iid, dirichlet or quantity"
        )
    dev, test = part.stratified_split(labels, test_fraction, _stream(seed, _TEST))
    seed_p = _stream(seed, _PARTITION)
    if partition == "iid":
        split = part.iid(len(dev), sites, seed_p, min_size=min_site_size)
    elif partition == "dirichlet":
        split = part.dirichlet(
            labels[dev], sites, alpha, seed_p, min_size=min_site_size
        )
    elif partition == "quantity":
        split = part.quantity_skew(
            len(dev), sites, seed_p, alpha=alpha, min_size=min_site_size
        )
    else:
        assert site_values is not None  # checked above
        split = part.natural(
            site_values[dev], sites, other=other, min_size=min_site_size
        )
    train: list[Index] = []
    holdout: list[Index] = []
    for i, rows in enumerate(split.indices):
        kept, held = holdout_split(labels[dev[rows]], holdout_fraction, seed, i)
        train.append(dev[rows[kept]])
        holdout.append(dev[rows[held]])
    return RowPlan(test, split.names, tuple(train), tuple(holdout))


def holdout_split(
    labels: npt.NDArray[np.int64], fraction: float, seed: int, index: int
) -> tuple[Index, Index]:
    """Split the ``index``-th site's rows into (train, holdout), as a simulation does.

    A deployed site (:mod:`accord.participant.table`) calls it with its position in
    the roster, so that it holds out the rows its simulated twin holds out.
    """
    return part.stratified_split(labels, fraction, _stream(seed, _HOLDOUT, index))


def build_federation(
    dataset: str,
    *,
    partition: str = "iid",
    sites: int,
    seed: int,
    alpha: float = 0.5,
    test_fraction: float = 0.2,
    holdout_fraction: float = 0.2,
    site_column: str | None = None,
    other: str = "drop",
    min_site_size: int = 10,
    options: Mapping[str, Any] = _NO_OPTIONS,
    encoder: Encoder | None = None,
) -> FederatedData:
    """Load ``dataset``, split it into sites and a test set, and encode every split.

    ``partition`` is one of :data:`PARTITIONS`; ``alpha`` is the Dirichlet
    concentration of ``dirichlet`` (label skew) and ``quantity`` (size skew).
    ``natural`` makes the ``sites`` largest groups of the site column into sites
    (``site_column`` overrides the dataset's own); the other groups are dropped or,
    with ``other="pool"``, pooled into one more site. ``min_site_size`` is the rows
    a site needs before its holdout split. The test set is drawn from every row
    first, so under ``natural`` with ``other="drop"`` it also holds rows of groups
    that are not sites. ``options`` go to :func:`load_table` (for ``csv:PATH``).

    x is float32, y int64 in ``0..n_classes-1``; the same arguments give
    bit-identical arrays. Raises :class:`DatasetError` when the data cannot be
    split as asked. ``encoder`` (a deployment's federated fit) replaces the
    encoder fitted on these sites' train rows.
    """
    table, labels, plan = plan_federation(
        dataset,
        partition=partition,
        sites=sites,
        seed=seed,
        alpha=alpha,
        test_fraction=test_fraction,
        holdout_fraction=holdout_fraction,
        site_column=site_column,
        other=other,
        min_site_size=min_site_size,
        options=options,
    )
    return _encode(table, labels, plan, encoder)


def plan_federation(
    dataset: str,
    *,
    partition: str = "iid",
    sites: int,
    seed: int,
    alpha: float = 0.5,
    test_fraction: float = 0.2,
    holdout_fraction: float = 0.2,
    site_column: str | None = None,
    other: str = "drop",
    min_site_size: int = 10,
    options: Mapping[str, Any] = _NO_OPTIONS,
) -> tuple[Table, npt.NDArray[np.int64], RowPlan]:
    """The labelled table, its labels and its :class:`RowPlan`, before encoding.

    What :func:`build_federation` encodes (same arguments), for callers that need
    each site's rows as they are (the sites' data profiles, :mod:`.summary`).
    """
    table = load_table(dataset, **options)
    table, labels = labelled(table)
    column = site_column or table.spec.site_column
    values = None
    if column is not None:
        if column not in table.frame.columns:
            raise DatasetError(
                f"site column {excerpt(column)} is not a column of "
                f"{table.spec.name} (it has {excerpt(list(table.frame.columns))})"
            )
        values = table.frame[column].astype(str).to_numpy()
    plan = plan_rows(
        labels,
        values,
        partition=partition,
        sites=sites,
        seed=seed,
        alpha=alpha,
        test_fraction=test_fraction,
        holdout_fraction=holdout_fraction,
        other=other,
        min_site_size=min_site_size,
    )
    return table, labels, plan


def labelled(table: Table) -> tuple[Table, npt.NDArray[np.int64]]:
    """Drop rows without a target; map target text to class numbers."""
    spec = table.spec
    frame = table.frame
    target = frame[spec.target]
    frame = frame.loc[target.notna().to_numpy()].reset_index(drop=True)
    code = {name: k for k, name in enumerate(spec.classes)}
    unknown = sorted({str(t) for t in frame[spec.target]} - set(code))
    if unknown:
        raise DatasetError(
            f"{spec.name}: target values {excerpt(unknown[:5])} are not among the "
            f"classes {excerpt(list(spec.classes))}; list every class in classes="
        )
    labels = np.array([code[t] for t in frame[spec.target]], dtype=np.int64)
    return Table(spec, frame, table.levels), labels


def _encode(
    table: Table,
    labels: npt.NDArray[np.int64],
    plan: RowPlan,
    encoder: Encoder | None,
) -> FederatedData:
    """Fit the encoder on the sites' train rows only, then encode every split."""
    if encoder is None:
        features = extract_features(table)
        encoder = Encoder.fit(features.rows(rows) for rows in plan.train)
    else:
        features = extract_features(encoder.aligned(table))

    def data(rows: Index) -> ArrayData:
        return ArrayData(encoder.transform(features.rows(rows)), labels[rows])

    names = encoder.feature_names
    info = DatasetInfo(table.spec.name, (len(names),), table.spec.classes, names)
    sites = tuple(
        Site(name, data(train), data(held))
        for name, train, held in zip(plan.names, plan.train, plan.holdout, strict=True)
    )
    return FederatedData(info, sites, data(plan.test))
