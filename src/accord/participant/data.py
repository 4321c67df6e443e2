"""A site's local data and task, from ``accord participant --data/--task``.

Two sources:

``csv:PATH``
    The site's own table. Options (``target=COLUMN`` is required; ``categorical``,
    ``drop``, ``classes`` as for ``accord simulate``) say how to read it. It is
    loaded as a :class:`~accord.participant.table.SiteTable`: cleaned, not yet
    split or encoded. The coordinator fits the preprocessing from every site's
    statistics before round 1 and ships it (:mod:`accord.participant.preparation`),
    so that the same feature means the same thing at every site; only then are
    the rows split (as the simulation splits them) and encoded.
``sim:PATH/TO/fed.toml#SITE``
    For demonstrations and tests: build exactly the federation ``accord simulate``
    builds from that file (same seed, same split, same preprocessing) and take the
    site ``SITE``'s train and holdout. A deployment of such a participant per site
    trains the same model as the simulation, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accord.config import load_config, refuse_attack, refuse_trees
from accord.data.arrays import ArrayData, DatasetInfo
from accord.data.datasets import load_table
from accord.data.federation import labelled
from accord.errors import ConfigError, excerpt
from accord.participant.table import SiteTable
from accord.simulation.context import build_context
from accord.task.loading import load_task
from accord.task.personalization import FineTune
from accord.task.protocol import Task

__all__ = ["LocalData", "build_task", "load_local_data"]


@dataclass(frozen=True)
class LocalData:
    """One site's rows and, for ``sim:`` data, the federation's own task."""

    name: str
    info: DatasetInfo
    train: ArrayData
    holdout: ArrayData
    task_reference: str | None = None
    task: Task | None = field(default=None, compare=False)
    #: ``sim:`` data: the fed.toml's ``[personalization]`` fine-tuning (None: off).
    finetune: FineTune | None = None


def load_local_data(
    source: str, *, options: Mapping[str, Any] | None = None
) -> LocalData | SiteTable:
    """Load a site's data from ``csv:PATH`` (raw) or ``sim:FED.TOML#SITE`` (encoded)."""
    kind, _, rest = source.partition(":")
    if kind == "sim":
        if options:
            raise ConfigError("sim: data takes its options from fed.toml", key="--data")
        return _simulated(rest)
    if kind == "csv":
        return _csv(rest, dict(options or {}))
    raise ConfigError(
        f"unknown data source {source!r}: use csv:PATH or sim:FED.TOML#SITE",
        key="--data",
    )


def _simulated(rest: str) -> LocalData:
    path, sep, site = rest.rpartition("#")
    if not sep or not path or not site:
        raise ConfigError(
            f"sim:{rest} must name a site: sim:PATH/TO/fed.toml#SITE", key="--data"
        )
    config = load_config(path)
    refuse_trees(config, "accord participant")
    refuse_attack(config, "accord participant")
    ctx = build_context(config)
    try:
        chosen = ctx.site(site)
    except KeyError:
        names = ", ".join(ctx.participants)
        raise ConfigError(
            f"{path} has no site {site!r}; its sites are {names}", key="--data"
        ) from None
    return LocalData(
        name=site,
        info=ctx.data.info,
        train=chosen.train,
        holdout=chosen.holdout,
        task_reference=config.task_settings.factory,
        task=ctx.task,
        finetune=ctx.finetune,
    )


def _csv(path: str, options: dict[str, Any]) -> SiteTable:
    if not Path(path).exists():  # what is there is checked when it is read
        raise ConfigError(f"no CSV file at {excerpt(path)}", key="--data")
    if "target" not in options:
        raise ConfigError(
            "csv data needs the label column: --data-option target=COLUMN",
            key="--data-option",
        )
    table, labels = labelled(load_table(f"csv:{Path(path).resolve()}", **options))
    if len(labels) == 0:
        raise ConfigError(f"{path} has no row with a label", key="--data")
    return SiteTable(Path(path).stem, table, labels)


def build_task(
    data: LocalData,
    reference: str | None,
    *,
    options: Mapping[str, Any] | None = None,
    base_dir: Path | str = ".",
) -> Task:
    """The task ``reference`` names, built for ``data``; sim: data's own by default."""
    if (
        data.task is not None
        and reference in (None, data.task_reference)
        and not options
    ):
        return data.task
    if reference is None:
        raise ConfigError("name the task: --task module:object", key="--task")
    return load_task(reference, data.info, options=options, base_dir=base_dir)
