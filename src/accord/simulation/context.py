"""What every process of a simulation builds once: the sites' data and the task.

Partitioning is deterministic in the seed, so each worker process rebuilds exactly the
same federation from the configuration instead of receiving data over a pipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from accord.config import FedConfig
from accord.data.datasets import declared_levels, load_table
from accord.data.federation import FederatedData, Site, build_federation
from accord.data.preprocess import Encoder
from accord.data.profile import Schema
from accord.simulation.jobs import SitePersonalization
from accord.task.loading import load_task
from accord.task.local_strategy import check_task
from accord.task.personal_method import PersonalMethod
from accord.task.personal_state import MemoryStore, find_personal
from accord.task.personalization import FineTune
from accord.task.protocol import Task
from accord.task.strategy_site import StrategySite

if TYPE_CHECKING:
    from accord.attacks.data import Trigger

__all__ = [
    "SimContext",
    "build_context",
    "build_data",
    "dataset_source",
    "federation_schema",
    "personal_methods",
    "site_state_dir",
    "strategy_sites",
]


@dataclass(frozen=True, slots=True)
class SimContext:
    """The federation's data (every site, and the central test set) and the task."""

    data: FederatedData
    task: Task
    #: ``[attack]``'s malicious sites and backdoor trigger (``poison=True`` only).
    malicious: tuple[str, ...] = ()
    trigger: Trigger | None = None
    #: ``[personalization]``'s fine-tuning at each evaluation (None: off).
    finetune: FineTune | None = None

    def personal(self, name: str, round_number: int) -> SitePersonalization | None:
        """What site ``name`` needs to score its own model at a round's eval.

        Fine-tuning's setting, or (FedPer, Ditto) None as the setting: the task
        keeps the site's own model.
        """
        if self.finetune is None and find_personal(self.task) is None:
            return None
        return SitePersonalization(
            self.finetune, self.site(name).train, round_number, name
        )

    @property
    def participants(self) -> tuple[str, ...]:
        """Site names in partition order."""
        return tuple(s.name for s in self.data.sites)

    def site(self, name: str) -> Site:
        """The site called ``name``."""
        for s in self.data.sites:
            if s.name == name:
                return s
        raise KeyError(name)


def dataset_source(config: FedConfig) -> str:
    """``[data] dataset``, a ``csv:`` path resolved next to fed.toml."""
    dataset = config.data.dataset
    if dataset.startswith("csv:"):
        path = Path(dataset[4:])
        base = Path(config.base_dir)
        return f"csv:{path if path.is_absolute() else base / path}"
    return dataset


def federation_schema(config: FedConfig) -> Schema:
    """The columns, classes and declared levels every site's table must have.

    Read from the coordinator's own table (``[data]``): a deployment checks each
    site's profile against it before round 1.
    """
    options = dict(config.data.options)
    spec = load_table(dataset_source(config), **options).spec
    declared = options.get("levels") or {}
    return Schema(
        numeric=spec.numeric,
        categorical=spec.categorical,
        classes=spec.classes,
        declared={
            str(col): declared_levels(str(col), names)
            for col, names in dict(declared).items()
        },
    )


def site_state_dir(config: FedConfig) -> Path:
    """Where simulated sites keep their own state (``<store directory>/sites``).

    Beside their privacy ledgers (:mod:`accord.simulation.site_policy`), so that
    it carries over to a resumed run as a real site's state folder does.
    """
    directory = Path(config.store.directory)
    if not directory.is_absolute():
        directory = Path.cwd() / directory
    return directory / "sites"


def personal_methods(config: FedConfig, task: Task) -> Task:
    """``task``, wrapped for FedPer or Ditto (``[personalization]``), if asked.

    Each site's own tensors are kept in memory (:class:`MemoryStore`): a simulated
    site is served by one process for the whole run. A deployed site swaps in its
    state folder (``with_store``). :class:`ConfigError` for patterns that match
    nothing or everything, or a task that cannot do Ditto.
    """
    method = PersonalMethod.of(config)
    return task if method is None else method.wrap(task, MemoryStore())


def strategy_sites(config: FedConfig, task: Task) -> Task:
    """``task``, checked and wrapped for the strategy's site-side part, if any.

    :class:`~accord.errors.ConfigError` if the task cannot add the gradient terms
    FedProx or SCAFFOLD need (before any worker trains).
    """
    strategy = config.strategy
    check_task(
        task,
        proximal=strategy.proximal_mu > 0,
        scaffold=strategy.scaffold,
        name=config.task_settings.factory,
    )
    if not strategy.scaffold and strategy.aggregation != "qfedavg":
        return task
    return StrategySite(task, state_dir=site_state_dir(config) / "scaffold")


def build_context(
    config: FedConfig, *, encoder: Encoder | None = None, poison: bool = False
) -> SimContext:
    """Load and split the data, then build the task for it.

    ``encoder``: a deployment's federated fit, which replaces the one fitted on
    the coordinator's own sites (its test set and task follow it). ``poison``:
    apply ``[attack]``'s data transforms (the simulation engine and its workers
    only; everything else gets the clean federation).
    """
    base = Path(config.base_dir)
    data = build_data(config, encoder=encoder)
    task = load_task(
        config.task_settings.factory,
        data.info,
        options=config.task_settings.options,
        base_dir=base,
    )
    task = strategy_sites(config, personal_methods(config, task))
    if config.privacy.sites:  # simulated sites' own policies
        from accord.simulation.site_policy import guard_sites

        task = guard_sites(config, task, tuple(s.name for s in data.sites))
    if poison and config.attack is not None:
        from accord.attacks.data import poison_federation

        done = poison_federation(data, config.attack, seed=config.federation.seed)
        return SimContext(
            data=done.data,
            task=task,
            malicious=done.malicious,
            trigger=done.trigger,
            finetune=FineTune.of(config),
        )
    return SimContext(data=data, task=task, finetune=FineTune.of(config))


def build_data(config: FedConfig, *, encoder: Encoder | None = None) -> FederatedData:
    """The federation's sites and central test set, as ``[data]`` describes them.

    What :func:`build_context` builds before the task; gradient-boosted trees
    (which have no task) use it alone.
    """
    dataset = dataset_source(config)
    if config.data.site_files and encoder is None:
        from accord.simulation.sitefiles import build_site_files

        return build_site_files(config, dataset, federation_schema(config))
    return _split_table(config, dataset, encoder)


def _split_table(
    config: FedConfig, dataset: str, encoder: Encoder | None
) -> FederatedData:
    """The federation cut from one table (``[data] partition``)."""
    d = config.data
    return build_federation(
        dataset,
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
        encoder=encoder,
    )
