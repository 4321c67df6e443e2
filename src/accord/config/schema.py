"""The whole of ``fed.toml``: one :class:`FedConfig` made of every section."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import (
    Field,
    model_validator,
)

from accord.config.base import Section
from accord.config.governance import ContributionConfig, EvaluationConfig, GatesConfig
from accord.config.operations import (
    DeploymentConfig,
    ProfileConfig,
    SimulationConfig,
    StoreConfig,
)
from accord.config.protection import (
    AttackConfig,
    PrivacyConfig,
    RobustnessConfig,
    SecureAggregationConfig,
)
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
from accord.errors import ConfigError

__all__ = ["FedConfig"]


class FedConfig(Section):
    """The whole of ``fed.toml``. ``base_dir`` is the folder the file was read from."""

    federation: FederationConfig = Field(default_factory=FederationConfig)
    data: DataConfig
    #: None only for ``[model] kind = "gbdt"``, which needs no task.
    task: TaskConfig | None = None
    model: ModelConfig = Field(default_factory=ModelConfig)
    trees: TreesConfig | None = None
    train: TrainSettings = Field(default_factory=TrainSettings)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    round: RoundConfig = Field(default_factory=RoundConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    secure_aggregation: SecureAggregationConfig = Field(
        default_factory=SecureAggregationConfig
    )
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    simulation: SimulationConfig = Field(default_factory=SimulationConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    deployment: DeploymentConfig = Field(default_factory=DeploymentConfig)
    attack: AttackConfig | None = None
    robustness: RobustnessConfig = Field(default_factory=RobustnessConfig)
    gates: GatesConfig = Field(default_factory=GatesConfig)
    contribution: ContributionConfig = Field(default_factory=ContributionConfig)
    profile: ProfileConfig = Field(default_factory=ProfileConfig)
    compression: CompressionConfig = Field(default_factory=CompressionConfig)
    personalization: PersonalizationConfig = Field(
        default_factory=PersonalizationConfig
    )
    base_dir: str = Field(default=".", exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _one_max_examples(cls, value: Any) -> Any:
        """``[secure_aggregation] max_examples`` and ``[strategy]``'s are one key."""
        if not isinstance(value, Mapping):
            return value
        strategy = value.get("strategy", {})
        secure = value.get("secure_aggregation", {})
        if isinstance(secure, str):
            secure = {"mode": secure}
        if not isinstance(strategy, Mapping) or not isinstance(secure, Mapping):
            return value  # the sections' own validation says what is wrong
        key = "max_examples"
        if key in secure and key in strategy and secure[key] != strategy[key]:
            raise ValueError(
                "strategy.max_examples and secure_aggregation.max_examples are one "
                "setting and they differ; give it once, under [strategy]"
            )
        bound = secure.get(key, strategy.get(key))
        if bound is None:
            return value
        return {
            **value,
            "strategy": {**strategy, key: bound},
            "secure_aggregation": {**secure, key: bound},
        }

    @model_validator(mode="before")
    @classmethod
    def _trees_imply_gbdt(cls, value: Any) -> Any:
        """A ``[trees]`` section without ``[model]`` means ``kind = "gbdt"``."""
        if isinstance(value, Mapping) and "trees" in value and "model" not in value:
            return {**value, "model": {"kind": "gbdt"}}
        return value

    @property
    def task_settings(self) -> TaskConfig:
        """``[task]``; :class:`ConfigError` for a federation without one (gbdt)."""
        if self.task is None:
            raise ConfigError(
                "this federation trains gradient-boosted trees ([model] kind = "
                '"gbdt") and has no [task]',
                key="task",
            )
        return self.task

    @property
    def trees_settings(self) -> TreesConfig:
        """``[trees]``, its defaults where the section is absent."""
        return self.trees if self.trees is not None else TreesConfig()

    def to_json_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON-able data (what the store records)."""
        return self.model_dump(mode="json")
