"""The federated profile of a simulation: each site profiles its own rows.

``accord profile fed.toml`` and ``accord simulate`` (before round 1) build the
federation's rows as the simulation does, fit its preprocessing from the sites'
training rows (the same encoder, hence the same digest, as the run's), and let
each simulated site describe its **training rows** with
:func:`~accord.data.summary.summarize` under ``[profile]``'s guard, the very
function a deployed site runs on its own table
(:meth:`~accord.participant.table.SiteTable.summary`). With ``[data] site_files``
each site reads its own file, and a table that does not fit the schema stops
here, before round 1, naming the site and the column
(:mod:`accord.simulation.sitefiles`). The profiles then make the data contract
and its drift flags (:func:`~accord.coordinator.contract.settle`).
"""

from __future__ import annotations

from dataclasses import replace

from accord.config import FedConfig
from accord.coordinator.contract import guard_of, settle
from accord.data.contract import DataContract
from accord.data.federation import plan_federation
from accord.data.preprocess import Encoder, extract_features
from accord.data.summary import SiteSummary, summarize
from accord.privacy.noise import NoiseSource
from accord.simulation.context import dataset_source, federation_schema

__all__ = ["simulated_contract"]


def simulated_contract(
    config: FedConfig, *, source: NoiseSource | None = None, warn: bool = True
) -> DataContract:
    """Every simulated site's guarded profile, and the contract they make.

    ``source`` draws the DP noise of ``[profile] noise`` (the OS's CSPRNG by
    default; seeded in tests); ``warn``: log the drift flags (``accord profile``
    prints them instead). Raises :class:`~accord.errors.SchemaMismatch`
    for a site file that does not fit (``site_files``).
    """
    guard = guard_of(config.profile)
    noise = source or NoiseSource()
    if config.data.site_files:
        from accord.simulation.sitefiles import fit_site_files

        schema = federation_schema(config)
        fitted = fit_site_files(config, schema)
        summaries: list[tuple[str, SiteSummary]] = []
        for site, request in zip(fitted.tables, fitted.requests, strict=True):
            guarded = replace(request, summary=guard)
            summary = site.summary(fitted.encoder, guarded, source=noise)
            summaries.append((site.name, summary))
        return settle(config, fitted.encoder, schema.classes, summaries, warn=warn)
    d = config.data
    table, labels, plan = plan_federation(
        dataset_source(config),
        partition=d.partition,
        sites=d.sites,
        seed=config.federation.seed,
        alpha=d.alpha,
        test_fraction=d.test_fraction,
        holdout_fraction=d.holdout_fraction,
        site_column=d.site_column,
        other=d.other,
        min_site_size=d.min_site_size,
        options=dict(d.options),
    )
    features = extract_features(table)
    encoder = Encoder.fit(features.rows(rows) for rows in plan.train)
    classes = table.spec.classes
    summaries = [
        (
            name,
            summarize(
                features.rows(rows), labels[rows], classes, encoder, guard, source=noise
            ),
        )
        for name, rows in zip(plan.names, plan.train, strict=True)
    ]
    return settle(config, encoder, classes, summaries, warn=warn)
