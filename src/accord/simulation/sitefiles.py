"""Simulate sites that hold tables of their own: ``[data] site_files``.

A simulation usually cuts one table into sites, so every site has the same
columns by construction; real sites keep separate files that drift apart (a
renamed column, a new category, a column that became text). With
``site_files = { NAME = "path.csv", ... }`` each simulated site reads its own
file with ``[data] options``, exactly as ``accord participant --data csv:...``
does, and the federation's preprocessing is fitted the way a deployment fits it
(:func:`~accord.data.profile.fit_encoder` over each site's
:class:`~accord.data.profile.SiteProfile`, checked against the schema of the
reference table ``[data] dataset``). So a table that does not fit stops the
run before round 1 with :class:`~accord.errors.SchemaMismatch` naming the site
and the column, in a simulation as in a deployment:

- a column of the schema that the site lacks (renamed or dropped), or one the
  schema lacks;
- a level of a categorical column outside the levels ``fed.toml`` declares;
- a numeric column holding text at the site (its type changed).

The central test set is drawn from the reference table (``test_fraction``,
stratified, the simulation's seed stream), and each site holds out its rows as
its deployed twin would (:func:`~accord.data.federation.holdout_split`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accord.config import FedConfig
from accord.data.arrays import ArrayData, DatasetInfo
from accord.data.datasets import check_table, load_table
from accord.data.federation import FederatedData, Site, labelled, plan_rows
from accord.data.handshake import PrepareRequest
from accord.data.preprocess import Encoder, extract_features
from accord.data.profile import Schema, fit_encoder
from accord.errors import DatasetError, SchemaMismatch, excerpt
from accord.participant.table import SiteTable

__all__ = ["SiteFiles", "build_site_files", "fit_site_files"]


@dataclass(frozen=True, slots=True)
class SiteFiles:
    """Each site's table and split request, and the encoder fitted from them."""

    tables: tuple[SiteTable, ...]
    requests: tuple[PrepareRequest, ...]
    encoder: Encoder
    schema: Schema


def fit_site_files(config: FedConfig, schema: Schema) -> SiteFiles:
    """Load every site's file and fit the preprocessing as a deployment does.

    :class:`SchemaMismatch` names the first site and column that does not fit.
    """
    options = {k: v for k, v in config.data.options.items() if k != "levels"}
    base = Path(config.base_dir)
    tables: list[SiteTable] = []
    requests: list[PrepareRequest] = []
    for index, (name, path) in enumerate(config.data.site_files.items()):
        source = f"csv:{path if Path(path).is_absolute() else base / path}"
        tables.append(_site_table(name, source, schema, options))
        requests.append(
            PrepareRequest(
                config.federation.seed,
                config.data.holdout_fraction,
                index,
                "off",
                schema.declared,
            )
        )
    profiles = [(t.name, t.profile(r)) for t, r in zip(tables, requests, strict=True)]
    encoder = fit_encoder(profiles, schema)
    return SiteFiles(tuple(tables), tuple(requests), encoder, schema)


def build_site_files(
    config: FedConfig, reference: str, schema: Schema
) -> FederatedData:
    """The federation of ``site_files``: each site's data, the reference's test set."""
    fitted = fit_site_files(config, schema)
    encoder = fitted.encoder
    sites: list[Site] = []
    info: DatasetInfo | None = None
    for table, request in zip(fitted.tables, fitted.requests, strict=True):
        info, train, holdout = table.encode(encoder, request)
        sites.append(Site(table.name, train, holdout))
    assert info is not None  # site_files is never empty (config checks it)
    ref, labels = labelled(load_table(reference, **config.data.options))
    plan = plan_rows(
        labels,
        None,
        partition="iid",
        sites=1,
        seed=config.federation.seed,
        test_fraction=config.data.test_fraction,
        holdout_fraction=0.0,
        min_site_size=1,
    )
    features = extract_features(encoder.aligned(ref))
    test = ArrayData(encoder.transform(features.rows(plan.test)), labels[plan.test])
    return FederatedData(info, tuple(sites), test)


def _site_table(
    name: str, source: str, schema: Schema, options: dict[str, Any]
) -> SiteTable:
    """One site's table, or SchemaMismatch for a numeric column that holds text."""
    try:
        report = check_table(source, **options)
    except DatasetError as exc:  # e.g. a column named in options is not there
        raise SchemaMismatch(f"site {name!r}: {exc}", site=name) from None
    for column in report.columns:
        if (
            column.role == "numeric"
            and column.kind != "number"
            and (column.name in schema.numeric)
        ):
            raise SchemaMismatch(
                f"column {column.name!r} holds text at site {name!r} ({column.kind}) "
                "but is numeric in the federation's schema: its type changed; fix "
                "the site's file, or list the column in categorical= everywhere",
                site=name,
                column=column.name,
            )
    try:
        table, labels = labelled(load_table(source, **options))
    except SchemaMismatch:
        raise
    except DatasetError as exc:
        raise DatasetError(f"site {name!r}: {exc}") from None
    if len(labels) == 0:
        raise DatasetError(f"site {name!r}: {excerpt(source)} holds no labelled row")
    return SiteTable(name, table, labels)
