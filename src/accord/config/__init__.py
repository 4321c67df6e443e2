"""``fed.toml``: the federation's configuration, validated once into frozen objects.

Every section is a pydantic model that forbids unknown keys, so a typo is an error that
names the key instead of a setting silently ignored. :func:`load_config` turns every
validation problem into one :class:`~accord.errors.ConfigError` listing each bad key
and what is allowed there. Combinations that cannot work together are refused here,
when the file is loaded, not in round 7. Values are checked strictly, as TOML types
them: a number is never a bool (``grace_s = false`` is an error, not 0) and never
infinite or NaN.

The package follows the file's path to a :class:`FedConfig`:

* :mod:`~accord.config.reading`: the file to plain data (a regular file, UTF-8,
  bounded nesting, finite numbers);
* the sections, by what they govern: :mod:`~accord.config.training` (what is
  trained and how rounds combine it), :mod:`~accord.config.protection` (secure
  aggregation, privacy, robustness, attacks), :mod:`~accord.config.governance`
  (evaluation, release gates, contribution) and :mod:`~accord.config.operations`
  (simulation, store, deployment, profiling), all on :mod:`~accord.config.base`;
* :mod:`~accord.config.schema`: :class:`FedConfig`, the whole document;
* :mod:`~accord.config.checks`: combinations of valid sections that cannot work
  together;
* :mod:`~accord.config.loading`: :func:`load_config` and
  :func:`config_from_mapping`, which run all of the above and explain what failed.
"""

from __future__ import annotations

from accord.config.checks import refuse_attack, refuse_trees
from accord.config.governance import ContributionConfig, EvaluationConfig, GatesConfig
from accord.config.loading import config_from_mapping, load_config
from accord.config.operations import (
    DeploymentConfig,
    ProfileConfig,
    SimulationConfig,
    StoreConfig,
)
from accord.config.protection import (
    AttackConfig,
    BackdoorConfig,
    PrivacyConfig,
    RobustnessConfig,
    SecureAggregationConfig,
    SitePrivacyConfig,
)
from accord.config.schema import FedConfig
from accord.config.training import (
    CompressionConfig,
    DataConfig,
    FederationConfig,
    ModelConfig,
    PersonalizationConfig,
    RoundConfig,
    SelectionConfig,
    StrategyConfig,
    TaskConfig,
    TrainSettings,
    TreesConfig,
)

__all__ = [
    "AttackConfig",
    "BackdoorConfig",
    "CompressionConfig",
    "ContributionConfig",
    "DataConfig",
    "DeploymentConfig",
    "EvaluationConfig",
    "FedConfig",
    "FederationConfig",
    "GatesConfig",
    "ModelConfig",
    "PersonalizationConfig",
    "PrivacyConfig",
    "ProfileConfig",
    "RobustnessConfig",
    "RoundConfig",
    "SecureAggregationConfig",
    "SelectionConfig",
    "SimulationConfig",
    "SitePrivacyConfig",
    "StoreConfig",
    "StrategyConfig",
    "TaskConfig",
    "TrainSettings",
    "TreesConfig",
    "config_from_mapping",
    "load_config",
    "refuse_attack",
    "refuse_trees",
]
