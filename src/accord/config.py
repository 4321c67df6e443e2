"""``fed.toml``: the federation's configuration, validated once into frozen objects.

Every section is a pydantic model that forbids unknown keys, so a typo is an error that
names the key instead of a setting silently ignored. :func:`load_config` turns every
validation problem into one :class:`~accord.errors.ConfigError` listing each bad key
and what is allowed there. Combinations that cannot work together are refused here,
when the file is loaded, not in round 7. Values are checked strictly, as TOML types
them: a number is never a bool (``grace_s = false`` is an error, not 0) and never
infinite or NaN. Reading the file itself (a regular file, UTF-8, bounded nesting) is
:mod:`accord.config_file`'s job.
"""

from __future__ import annotations

import math
import multiprocessing as mp
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from accord.config_file import read_toml, shown_key
from accord.errors import ConfigError
from accord.urls import hide_password

__all__ = [
    "AttackConfig",
    "BackdoorConfig",
    "ContributionConfig",
    "CompressionConfig",
    "DataConfig",
    "DeploymentConfig",
    "EvaluationConfig",
    "FedConfig",
    "FederationConfig",
    "GatesConfig",
    "PersonalizationConfig",
    "PrivacyConfig",
    "ProfileConfig",
    "RobustnessConfig",
    "SitePrivacyConfig",
    "RoundConfig",
    "SelectionConfig",
    "SimulationConfig",
    "StoreConfig",
    "StrategyConfig",
    "TaskConfig",
    "TrainSettings",
    "config_from_mapping",
    "load_config",
    "refuse_attack",
    "refuse_trees",
]


#: The longest duration a setting may name (a year): past it, a deadline means
#: "never", and waits that long overflow the platform's timeouts.
_MAX_SECONDS = 365 * 24 * 3600.0
#: How many problems a ConfigError lists before it says how many more there are.
_MAX_LISTED = 10


class _Section(BaseModel):
    # strict: TOML gives exact types, so a bool is not taken for a number nor a
    # float for an integer; allow_inf_nan: no setting means inf or nan.
    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, allow_inf_nan=False
    )


class FederationConfig(_Section):
    """Name, length and seed of the run."""

    name: str = Field(default="federation", min_length=1, max_length=100)
    rounds: int = Field(default=10, ge=1, le=100_000)
    seed: int = Field(default=0, ge=0, lt=2**63)


class DataConfig(_Section):
    """Which dataset, and how it is split into sites (simulation only)."""

    dataset: str = Field(min_length=1)
    partition: Literal["iid", "dirichlet", "quantity", "natural"] = "iid"
    sites: int = Field(default=10, ge=1, le=100_000)
    alpha: float = Field(default=0.5, gt=0)
    test_fraction: float = Field(default=0.2, ge=0, lt=1)
    holdout_fraction: float = Field(default=0.2, ge=0, lt=1)
    site_column: str | None = None
    other: Literal["drop", "pool"] = "drop"
    min_site_size: int = Field(default=10, ge=1)
    options: dict[str, Any] = Field(default_factory=dict)
    #: Simulation of separately held tables: each site's own CSV (relative to
    #: fed.toml), read with ``options`` as a deployed site reads its file;
    #: ``dataset`` is then the coordinator's reference table (schema, test set).
    site_files: dict[str, str] = Field(default_factory=dict, max_length=10_000)

    @model_validator(mode="before")
    @classmethod
    def _sites_of_files(cls, value: Any) -> Any:
        """``sites`` defaults to the number of ``site_files``."""
        if (
            isinstance(value, Mapping)
            and value.get("site_files")
            and ("sites" not in value)
        ):
            return {**value, "sites": len(value["site_files"])}
        return value

    @model_validator(mode="after")
    def _files_fit(self) -> DataConfig:
        if not self.site_files:
            return self
        if not self.dataset.startswith("csv:"):
            raise ValueError(
                "data.site_files needs a csv: dataset (the reference table whose "
                "schema the sites' files must fit)"
            )
        if self.sites != len(self.site_files):
            raise ValueError(
                f"data.sites is {self.sites} but data.site_files names "
                f"{len(self.site_files)} sites; leave data.sites out"
            )
        if any(not name or not path for name, path in self.site_files.items()):
            raise ValueError("data.site_files maps site names to CSV paths, none empty")
        return self


class TaskConfig(_Section):
    """The task: ``module:object``, a Task or a factory ``f(info, **options)``."""

    factory: str
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("factory")
    @classmethod
    def _module_colon_object(cls, value: str) -> str:
        module, sep, obj = value.partition(":")
        if not sep or not module or not obj:
            raise ValueError(
                "must be 'module:object', e.g. 'accord.task.numpy_task:"
                "softmax_regression' or 'task:build' for task.py next to fed.toml"
            )
        return value


class TrainSettings(_Section):
    """Local training settings sent to every participant each round."""

    epochs: int = Field(default=1, ge=1, le=10_000)
    batch_size: int = Field(default=32, ge=1)
    learning_rate: float = Field(default=0.05, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)


class SelectionConfig(_Section):
    """Which participants train in a round.

    ``count`` (when given) samples exactly that many participants per round
    (seeded, at least ``min_participants``, at most the roster) instead of
    ``fraction`` of them; the two are exclusive. Who was sampled is recorded with
    each round (``accord runs show``).
    """

    fraction: float = Field(default=1.0, gt=0, le=1)
    count: int | None = Field(default=None, ge=1, le=100_000)
    min_participants: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _count_or_fraction(self) -> SelectionConfig:
        # A dumped configuration holds both keys (fraction at its default 1.0).
        if self.count is not None and self.fraction != 1.0:
            raise ValueError(
                "give selection.count (participants per round) or selection.fraction "
                "(share of the roster per round), not both"
            )
        return self


class RoundConfig(_Section):
    """Deadline, quorum and straggler cut of a round; synchronous or asynchronous.

    ``close_fraction`` closes a synchronous round as soon as that fraction of its
    selected participants answered (rounded up): the others are recorded as late
    (outcome ``timeout``, reason ``late: ...``) and their updates, if they come,
    are dropped, never aggregated. 1.0 (the default) waits for everyone or for
    ``deadline_s``.

    ``mode = "async"`` trains FedBuff-style (:mod:`accord.coordinator.asynchronous`):
    every site trains continuously from the newest model it was given; each
    ``buffer_size`` updates make a new model version (recorded like a round, and
    ``federation.rounds`` counts versions); an update more than ``max_staleness``
    versions old is refused and recorded. The simulation orders updates on its
    virtual clock; a deployment folds them in arrival order.
    """

    deadline_s: float = Field(default=600.0, gt=0, le=_MAX_SECONDS)
    quorum: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="fraction of the selected participants whose valid updates a "
        "round needs to complete",
    )
    max_failed_rounds: int = Field(default=3, ge=1)
    close_fraction: float = Field(default=1.0, gt=0, le=1)
    mode: Literal["sync", "async"] = "sync"
    buffer_size: int = Field(default=3, ge=1, le=100_000)
    max_staleness: int = Field(default=10, ge=0, le=100_000)
    staleness_weight: Literal["sqrt", "constant"] = "sqrt"

    @model_validator(mode="after")
    def _async_keys(self) -> RoundConfig:
        if self.mode == "async" and self.close_fraction < 1:
            raise ValueError(
                "close_fraction cuts stragglers of a synchronous round; an async run "
                "has no round to close (slow sites just contribute staler updates): "
                "remove close_fraction or use mode = 'sync'"
            )
        return self


class StrategyConfig(_Section):
    """How updates become the next global model, and what bounds any one site's say.

    ``max_examples`` is the most examples one site may claim for an update or an
    evaluation report: a plain round refuses a claim above it (recorded, the reason
    returned to the site), a secure round weights such a site as ``max_examples``
    (the site caps its own weight, the coordinator cannot see it).
    ``[secure_aggregation] max_examples`` is an older spelling of the same key.
    ``max_weight_share`` caps one participant's share of a round's total weight
    (None: FedAvg's weights, unbounded); ``max_update_norm`` bounds the L2 norm of
    each update and of the round's aggregate (None: off). ``max_norm_ratio``
    refuses a plain round's update whose L2 norm is more than this many times the
    median norm of the round's valid updates (from 3 updates on; 0: off, and a
    round's updates are folded as they come instead of held until the last). See
    :mod:`accord.coordinator.integrity`.

    The robust rules' options (``docs/robustness.md``) are keys here too, each
    refused unless its rule is chosen: ``attackers`` (f for krum, multi_krum and
    bulyan; unset: the largest their bound allows), ``select`` (multi_krum's m),
    ``tau`` and ``iterations`` (centered_clip), ``iterations``, ``tolerance`` and
    ``smoothing`` (geometric_median), ``norm_bound`` (norm_bounding, required) and
    ``root_examples`` (fltrust: the root set the simulation draws from the test set).

    Strategies for skewed data (``docs/strategies.md``): ``proximal_mu`` (FedProx's
    proximal term in local training; 0: off), ``scaffold`` (SCAFFOLD's control
    variates), ``aggregation = "qfedavg"`` with ``q`` (1.0 unless given: q-FedAvg's
    fairness exponent), and the server optimizers ``yogi`` and ``adagrad``.
    """

    aggregation: Literal[
        "mean",
        "median",
        "trimmed_mean",
        "weighted_median",
        "weighted_trimmed_mean",
        "krum",
        "multi_krum",
        "bulyan",
        "geometric_median",
        "centered_clip",
        "fltrust",
        "norm_bounding",
        "qfedavg",
    ] = "mean"
    trim: float = Field(default=0.1, ge=0, lt=0.5)
    attackers: int | None = Field(default=None, ge=0, le=10_000)
    select: int | None = Field(default=None, ge=1, le=100_000)
    tau: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    iterations: int | None = Field(default=None, ge=1, le=10_000)
    tolerance: float | None = Field(default=None, gt=0, lt=1, allow_inf_nan=False)
    smoothing: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    norm_bound: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    root_examples: int | None = Field(default=None, ge=1, le=1_000_000)
    q: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)
    proximal_mu: float = Field(default=0.0, ge=0, le=1e6, allow_inf_nan=False)
    scaffold: bool = False
    server_optimizer: Literal["sgd", "adam", "yogi", "adagrad"] = "sgd"
    server_lr: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    server_momentum: float = Field(default=0.0, ge=0, lt=1)
    max_examples: int = Field(default=100_000, ge=1, lt=2**53)
    max_weight_share: float | None = Field(default=0.5, gt=0, le=1, allow_inf_nan=False)
    max_update_norm: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_norm_ratio: float = Field(default=10.0, ge=0, allow_inf_nan=False)
    #: How a site's update counts in the mean: by its example count (FedAvg) or
    #: the same for every site (``uniform``), in rounds and in async buffers.
    weighting: Literal["examples", "uniform"] = "examples"

    @field_validator("max_norm_ratio")
    @classmethod
    def _ratio_above_one(cls, value: float) -> float:
        if 0 < value <= 1:
            raise ValueError(
                "must be 0 (off) or above 1: a ratio of at most 1 would refuse "
                f"honest updates above the median, got {value}"
            )
        return value


class SecureAggregationConfig(_Section):
    """Whether the coordinator may see individual updates, and how it is kept from it.

    ``mode = "masking"`` runs SecAgg (SecAgg+ with a neighbour graph for large
    federations, see ``docs/security.md``): the coordinator learns only the
    weighted sum of at least ``threshold`` participants' updates. ``mode = "ckks"``
    encrypts each update under a key holder's CKKS key (TenSEAL): the coordinator
    adds ciphertexts it cannot decrypt; any participant can. ``threshold`` and
    ``degree`` left unset take safe defaults from the number of participants in
    the round. CKKS protects only against an honest-but-curious coordinator: an
    active one can have a crafted ciphertext decrypted (the decrypting site floods
    the sum with noise and rounds it before release, which stops key recovery from
    honest decryptions, not from crafted ones). Updates are clipped to
    ``[-clip, clip]`` per value before encoding;
    weights are example counts over ``max_examples`` (a site with more counts as
    ``max_examples``). ``stage_timeout_s`` bounds each stage after training; a
    participant silent past it counts as dropped out.
    """

    mode: Literal["off", "masking", "ckks"] = "off"
    threshold: int | None = Field(default=None, ge=2)
    degree: int | None = Field(default=None, ge=1)
    clip: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    max_examples: int = Field(default=100_000, ge=1, lt=2**53)
    stage_timeout_s: float = Field(default=120.0, gt=0, le=_MAX_SECONDS)

    @model_validator(mode="before")
    @classmethod
    def _mode_shorthand(cls, value: Any) -> Any:
        # ``secure_aggregation = "masking"`` is short for ``[secure_aggregation]
        # mode = "masking"``.
        return {"mode": value} if isinstance(value, str) else value


class SitePrivacyConfig(_Section):
    """A simulated site's own privacy policy (``[privacy.sites.NAME]``).

    What ``accord participant --max-epsilon --delta --require-dp`` sets at a real
    site; the simulated site enforces it with its own ledger. See
    ``docs/privacy.md``.
    """

    max_epsilon: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    delta: float = Field(default=1e-5, gt=0, lt=1)
    require_dp: Literal["record"] | None = None


class PrivacyConfig(_Section):
    """Differential privacy: what is protected, how much noise, and the budget.

    ``level = "participant"``: each participant's whole update is clipped to
    ``clip`` (L2) and the coordinator adds Gaussian noise to their mean (DP-FedAvg,
    central noise); with ``[secure_aggregation] mode = "masking"`` each site clips
    its own update and adds its share of integer noise inside the ring encoding
    instead (distributed noise; CKKS is refused). ``"record"``: DP-SGD inside each
    site, each example's gradient clipped to ``clip`` (numpy and PyTorch tasks).
    Exactly one of ``noise_multiplier`` and ``target_epsilon`` (turned into a
    multiplier for the planned rounds). ``delta`` is a fixed 1e-5 unless given: keep
    it well below 1 / (number of protected units). ``adaptive_clip`` lets the clip
    follow the ``target_quantile`` of update norms (Andrew et al. 2021), starting from
    ``clip``. A round that would take epsilon past ``budget_epsilon`` does not
    start. ``noise_seed`` makes the noise reproducible: tests only, it voids the
    protection. ``sites`` gives simulated sites their own policy. See
    ``docs/privacy.md``.
    """

    level: Literal["off", "participant", "record"] = "off"
    noise_multiplier: float | None = Field(default=None, gt=0, le=100)
    target_epsilon: float | None = Field(default=None, gt=0, le=1000)
    delta: float = Field(default=1e-5, gt=0, lt=1)
    clip: float | None = Field(default=None, gt=0)
    adaptive_clip: bool = False
    target_quantile: float = Field(default=0.5, gt=0, lt=1)
    clip_learning_rate: float = Field(default=0.2, gt=0, le=10)
    clip_count_stddev: float | None = Field(default=None, gt=0)
    accountant: Literal["pld", "rdp"] = "pld"
    budget_epsilon: float | None = Field(default=None, gt=0)
    noise_seed: int | None = Field(default=None, ge=0, lt=2**63)
    sites: dict[str, SitePrivacyConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _coherent(self) -> PrivacyConfig:
        given = [k for k in ("noise_multiplier", "target_epsilon") if getattr(self, k)]
        if self.level == "off":
            stray = given + [
                k
                for k in ("clip", "budget_epsilon", "noise_seed")
                if getattr(self, k) is not None
            ]
            if stray or self.adaptive_clip:
                shown = ", ".join(stray or ["adaptive_clip"])
                raise ValueError(
                    f"{shown} given but level = 'off', so they would be ignored; "
                    "set level = 'participant' (or 'record'), or remove them"
                )
            return self
        if len(given) != 1:
            raise ValueError(
                "give exactly one of noise_multiplier and target_epsilon "
                f"(got {', '.join(given) or 'neither'})"
            )
        if self.level == "participant" and self.clip is None and not self.adaptive_clip:
            raise ValueError(
                "level = 'participant' needs clip, the L2 bound on each update "
                "(or adaptive_clip = true)"
            )
        if self.level == "record" and self.clip is None:
            raise ValueError(
                "level = 'record' needs clip, the L2 bound on each example's gradient"
            )
        if self.adaptive_clip and self.level != "participant":
            raise ValueError("adaptive_clip applies to level = 'participant' only")
        return self


class EvaluationConfig(_Section):
    """What is measured, how often, and the comparison at the end of a simulation."""

    every: int = Field(default=1, ge=1)
    central: bool = True
    federated: bool = True
    baselines: bool = False
    metric: Literal["accuracy", "auc", "loss"] = "accuracy"
    #: A column of each site's table whose values are the groups that fairness is
    #: measured across (it may also be a feature; it is read from the raw table).
    sensitive: str | None = Field(default=None, min_length=1)
    #: A prediction is positive (the second class) when its probability is at least
    #: this: the decision the fairness counts are taken at.
    decision_threshold: float = Field(default=0.5, gt=0, lt=1)


class PersonalizationConfig(_Section):
    """``[personalization]``: each site's own model beside the global one.

    ``method = "finetune"``: at every federated evaluation each site fine-tunes a
    copy of the global model on its own training rows for ``epochs`` epochs (at
    ``learning_rate``, ``[train] learning_rate`` if unset, and ``[train]
    batch_size``) and scores both models on its holdout; the fine-tuned model never
    leaves the site (``docs/strategies.md``).

    ``method = "fedper"``: the tensors whose names match a glob of ``private``
    (the head) stay at each site, trained there and never sent; only the others
    are federated (:mod:`accord.task.fedper`). ``method = "ditto"``: each site also
    trains a personal model pulled toward the global one with strength
    ``lambda`` (:mod:`accord.task.ditto`).
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        serialize_by_alias=True,
    )

    method: Literal["off", "finetune", "fedper", "ditto"] = "off"
    epochs: int = Field(default=1, ge=1, le=1000)
    learning_rate: float | None = Field(default=None, gt=0)
    private: list[str] = Field(default_factory=list, max_length=1000)
    lam: float = Field(default=0.1, ge=0, le=1e6, alias="lambda")

    @model_validator(mode="after")
    def _keys_of_method(self) -> PersonalizationConfig:
        if self.method == "fedper" and not self.private:
            raise ValueError(
                'method = "fedper" needs private = ["glob", ...]: the names of the '
                'tensors that stay at each site (the head, e.g. ["fc2.*"])'
            )
        if self.private and self.method != "fedper":
            raise ValueError(
                "private is FedPer's setting but method is "
                f'"{self.method}": drop it or set method = "fedper"'
            )
        if any(not p.strip() for p in self.private):
            raise ValueError("private: an empty pattern matches nothing")
        return self


class GatesConfig(_Section):
    """``[gates]``: what a run's final model must meet before ``accord release``.

    Metric bounds are in ``[evaluation] metric``: a floor for accuracy and AUC, a
    ceiling for the loss. Every key is off by default; a gate whose figure was not
    recorded fails (it is never assumed to pass). See :mod:`accord.evaluation.gates`.
    """

    central_metric: float | None = None
    federated_metric: float | None = None
    worst_site_metric: float | None = None
    max_site_spread: float | None = Field(default=None, ge=0)
    max_demographic_parity_difference: float | None = Field(default=None, ge=0, le=1)
    max_equalized_odds_difference: float | None = Field(default=None, ge=0, le=1)
    max_epsilon: float | None = Field(default=None, ge=0)
    max_quarantined: int | None = Field(default=None, ge=0)
    max_flagged: int | None = Field(default=None, ge=0)

    @property
    def fairness(self) -> bool:
        """True when a gate needs the per-group confusion counts."""
        return (
            self.max_demographic_parity_difference is not None
            or self.max_equalized_odds_difference is not None
        )


#: Attacks that change a malicious site's update (they need to see it, which
#: secure aggregation prevents); the others poison its training data.
UPDATE_ATTACKS = (
    "sign_flip",
    "scaling",
    "gaussian",
    "alie",
    "ipm",
    "min_max",
    "min_sum",
)
AttackKind = Literal[
    "label_flip",
    "backdoor",
    "sign_flip",
    "scaling",
    "gaussian",
    "alie",
    "ipm",
    "min_max",
    "min_sum",
]


class BackdoorConfig(_Section):
    """A trigger set on a share of the malicious sites' rows, relabelled ``target``.

    ``features`` are the (flattened) feature indices the trigger sets (empty: the
    last four); ``value`` what it sets them to (None: the largest value those
    features take in the federation's training data, a bright pixel on images).
    """

    target: int = Field(default=0, ge=0)
    features: list[int] = Field(default_factory=list, max_length=10_000)
    value: float | None = None
    fraction: float = Field(default=0.5, gt=0, le=1)


class AttackConfig(_Section):
    """``[attack]``: poisoning by some sites, for evaluating defences (simulation only).

    The malicious sites are ``sites`` (names), or ``count`` or ``fraction`` of the
    sites, drawn with the run's seed: give exactly one. See ``docs/robustness.md``
    for each ``kind`` and which keys it reads.
    """

    kind: AttackKind
    sites: list[str] = Field(default_factory=list)
    count: int | None = Field(default=None, ge=1)
    fraction: float | None = Field(default=None, gt=0, lt=1)
    scale: float | None = Field(default=None, gt=0)
    noise_std: float = Field(default=1.0, gt=0)
    z: float | None = None
    epsilon: float = Field(default=0.5, gt=0)
    direction: Literal["unit_vec", "std", "sign"] = "std"
    gamma_init: float = Field(default=10.0, gt=0)
    tolerance: float = Field(default=1e-5, gt=0)
    examples: int | None = Field(default=None, ge=1, lt=2**53)
    backdoor: BackdoorConfig | None = None

    @model_validator(mode="after")
    def _one_choice_of_sites(self) -> AttackConfig:
        given = [
            k
            for k, v in (
                ("sites", self.sites or None),
                ("count", self.count),
                ("fraction", self.fraction),
            )
            if v is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "name the malicious sites with exactly one of sites (names), count "
                f"or fraction; got {', '.join(given) or 'none'}"
            )
        if len(set(self.sites)) != len(self.sites):
            raise ValueError("attack.sites names a site twice")
        if self.kind == "backdoor" and self.backdoor is None:
            raise ValueError(
                'kind = "backdoor" needs an [attack.backdoor] table (target, '
                "features, value, fraction; an empty table takes the defaults)"
            )
        return self

    @property
    def updates(self) -> bool:
        """True when the attack rewrites updates (not only the training data)."""
        return self.kind in UPDATE_ATTACKS

    @property
    def in_flight(self) -> bool:
        """True when the engine must touch what the malicious sites send.

        An update attack rewrites their updates; ``examples`` rewrites the example
        count they claim for them (any kind: a count is a claim, not data).
        """
        return self.updates or self.examples is not None


class RobustnessConfig(_Section):
    """``[robustness]``: per-update anomaly scores and the quarantine policy.

    ``scores`` records, for every participant of every plain round, its update's
    norm, cosine to the aggregate and distances to the others (it keeps a copy of
    each update during the round: memory O(participants x model)). A flag rule
    (``max_norm_z``, ``min_cosine``, ``max_distance_z``, ``min_nearest_ratio``)
    turns scoring on; ``quarantine_after`` excludes a site flagged that many
    times from aggregation for the rest of the run. See
    :mod:`accord.detection.scores`.
    """

    scores: bool = False
    max_norm_z: float | None = Field(default=None, gt=0)
    min_cosine: float | None = Field(default=None, ge=-1, le=1)
    max_distance_z: float | None = Field(default=None, gt=0)
    min_nearest_ratio: float | None = Field(default=None, gt=0, lt=1)
    quarantine_after: int | None = Field(default=None, ge=1)

    @property
    def flags(self) -> bool:
        """True when some flag rule is set."""
        return any(
            v is not None
            for v in (
                self.max_norm_z,
                self.min_cosine,
                self.max_distance_z,
                self.min_nearest_ratio,
            )
        )

    @property
    def scoring(self) -> bool:
        """True when the coordinator scores each update."""
        return self.scores or self.flags

    @model_validator(mode="after")
    def _quarantine_needs_a_rule(self) -> RobustnessConfig:
        if self.quarantine_after is not None and not self.flags:
            raise ValueError(
                "quarantine_after needs a flag rule (max_norm_z, min_cosine, "
                "max_distance_z or min_nearest_ratio) to count flags against"
            )
        return self


def _default_start_method() -> Literal["spawn", "forkserver", "fork"]:
    """``forkserver`` where the platform has it (workers start warm), else spawn."""
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


class SimulationConfig(_Section):
    """How ``accord simulate`` runs the participants.

    ``engine = "process"`` (the default): warm worker processes on this machine
    (:mod:`accord.simulation.pool`). ``engine = "ray"``: ``workers`` Ray actors
    (:mod:`accord.simulation.ray_pool`) on a local Ray instance (``address =
    "local"``, bound to loopback) or on the cluster at ``address`` (``"auto"``,
    ``"HOST:PORT"`` or ``"ray://HOST:PORT"``).
    """

    workers: int = Field(default=2, ge=0, le=256)
    start_method: Literal["spawn", "forkserver", "fork"] = Field(
        default_factory=_default_start_method
    )
    engine: Literal["process", "ray"] = "process"
    address: str = Field(default="local", min_length=1)

    #: A site's training takes this many times longer on the simulation's
    #: virtual clock (:mod:`accord.simulation.timing`); sites not named: 1.
    slowdown: dict[str, float] = Field(default_factory=dict, max_length=100_000)

    @model_validator(mode="after")
    def _ray_needs_actors(self) -> SimulationConfig:
        if self.engine == "ray" and self.workers < 1:
            raise ValueError(
                'engine = "ray" runs the sites in `workers` Ray actors: set workers '
                '>= 1, or engine = "process" with workers = 0 to debug in-process'
            )
        if self.engine != "ray" and self.address != "local":
            raise ValueError('address names a Ray cluster and needs engine = "ray"')
        return self

    @field_validator("slowdown")
    @classmethod
    def _positive_factors(cls, value: dict[str, float]) -> dict[str, float]:
        bad = sorted(k for k, f in value.items() if not (0 < f <= 1e6))
        if bad:
            raise ValueError(
                f"slowdown factors must be above 0 and at most 1e6; {', '.join(bad)} "
                "are not"
            )
        return value


class StoreConfig(_Section):
    """Where runs are recorded.

    ``url`` is dumped (into the run's recorded configuration) with its password
    hidden: the record must not hand the database's credentials to whoever reads
    runs.
    """

    url: str | None = None
    directory: str = "accord-runs"
    checkpoints: bool = True

    @field_serializer("url")
    def _hidden_password(self, url: str | None) -> str | None:
        return None if url is None else hide_password(url)


class DeploymentConfig(_Section):
    """How ``accord coordinator`` runs the federation across organizations.

    ``participants`` is the roster, in the fixed order that selection and seeds use
    (the names in the sites' certificates); empty means the sites of ``[data]``, in
    partition order, as ``accord simulate`` would have them.
    """

    participants: list[str] = Field(default_factory=list)
    wait_s: float = Field(
        default=600.0,
        gt=0,
        le=_MAX_SECONDS,
        description="how long the coordinator waits for every participant to "
        "connect before the first round",
    )
    grace_s: float = Field(
        default=30.0,
        ge=0,
        le=_MAX_SECONDS,
        description="how long a participant may be disconnected with a job open "
        "before the job fails",
    )
    # Bounds on what one caller can take from the coordinator (issue 8).
    calls_per_peer: int = Field(
        default=4,
        ge=1,
        le=64,
        description="calls one certificate holder may keep open at once; more are "
        "refused at once (busy)",
    )
    first_byte_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="how long a call may stay open before its first message; then "
        "it is cut and recorded",
    )
    idle_s: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="how long an upload may pause between two messages; then it is "
        "cut and recorded",
    )
    refusals_per_s: float = Field(
        default=2.0,
        gt=0,
        le=1000,
        description="refused calls per second one caller may make once its burst is "
        "spent; beyond, its calls are refused at once (throttled)",
    )
    refusal_burst: int = Field(
        default=50,
        ge=1,
        le=100_000,
        description="refused calls one caller may make before it is throttled",
    )

    spool_memory_mib: int = Field(
        default=1024,
        ge=0,
        le=1 << 20,
        description="MiB of received updates the coordinator holds in memory, in "
        "buffers reused from round to round; past it, updates are spooled to files "
        "(0: always files)",
    )

    declared_examples: dict[str, int] = Field(
        default_factory=dict,
        description="examples each site declared at enrolment, by participant name: "
        "an update or evaluation report claiming more is refused (the bound is the "
        "smaller of this and strategy.max_examples)",
    )

    @field_validator("declared_examples")
    @classmethod
    def _positive_counts(cls, value: dict[str, int]) -> dict[str, int]:
        bad = sorted(name for name, n in value.items() if not 1 <= n < 2**53)
        if bad:
            raise ValueError(
                f"declared example counts must be whole numbers from 1 to 2**53 - 1; "
                f"check {', '.join(bad)}"
            )
        return value

    @field_validator("participants")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("participant names must be distinct")
        return value


class ContributionConfig(_Section):
    """``[contribution]``: keep what ``accord contributions RUN`` needs.

    ``keep_updates`` stores every valid update of every round, and the model the
    round started from, as safetensors files next to the checkpoints
    (``{directory}/{run}/updates/round-NNNNN/``): about ``(sites + 1) x model
    size`` of disk per round (``docs/governance.md``). Off by default.
    """

    keep_updates: bool = False


class CompressionConfig(_Section):
    """``[compression]``: what a site does to its update before sending it.

    ``q8``/``q4``: stochastic 8- or 4-bit quantization per tensor; ``topk``: the
    ``fraction`` largest values with error feedback
    (:mod:`accord.transforms.compression`); ``warmup_rounds``: top-k's density
    starts higher and falls 4x per round (25 %, 6.25 %, ...) to ``fraction`` over
    that many first rounds (Deep Gradient Compression's warm-up, Lin et al. 2018;
    0 turns it off); ``momentum``: each site keeps a momentum of its updates
    across rounds and feeds it to the error feedback instead of the bare update
    (DGC's momentum correction; 0 turns it off), ``momentum_masking`` zeroes it
    where a value was sent (DGC's factor masking; measured worse here, so off).
    Defaults measured on digits in ``docs/compression.md``. Under masking
    secure aggregation, ``q8``/``q4`` pack quantized integers into the ring
    instead (:mod:`accord.secagg.packed`). In a simulation and in a deployment
    (:mod:`accord.participant.compression`, :mod:`accord.transport.compressed`).
    """

    method: Literal["none", "q8", "q4", "topk"] = "none"
    fraction: float = Field(default=0.01, gt=0.0, le=1.0)
    warmup_rounds: int = Field(default=3, ge=0, le=1000)
    momentum: float = Field(default=0.5, ge=0.0, lt=1.0)
    momentum_masking: bool = False


class ProfileConfig(_Section):
    """``[profile]``: each site's guarded data profile before round 1, drift flags.

    ``min_count``: a count from 1 to ``min_count - 1`` is reported suppressed;
    ``noise`` (``laplace``/``gaussian``) with ``epsilon`` (and ``delta``) adds
    DP noise to every count and sum of a profile; the ``max_*`` thresholds flag
    a site whose data differs from the other sites' (``docs/data.md`` section 10);
    ``refuse`` stops the run before round 1 when any site is flagged.
    """

    enabled: bool = True
    min_count: int = Field(default=10, ge=1, le=1_000_000)
    noise: Literal["off", "laplace", "gaussian"] = "off"
    epsilon: float | None = Field(default=None, gt=0, le=1000)
    delta: float = Field(default=1e-6, gt=0, lt=1)
    max_smd: float = Field(default=0.5, gt=0, le=100)
    max_ks: float = Field(default=0.25, gt=0, le=1)
    max_tvd: float = Field(default=0.25, gt=0, le=1)
    max_label_diff: float = Field(default=0.2, gt=0, le=1)
    max_missing_diff: float = Field(default=0.2, gt=0, le=1)
    significance: float = Field(default=0.001, gt=0, lt=1)
    refuse: bool = False

    @model_validator(mode="after")
    def _noise_has_epsilon(self) -> ProfileConfig:
        if self.noise != "off" and self.epsilon is None:
            raise ValueError(
                f"profile.noise = {self.noise!r} needs profile.epsilon (the budget "
                "of the whole profile, e.g. 1.0)"
            )
        return self


class ModelConfig(_Section):
    """``[model]``: what kind of model the federation trains.

    ``task`` (the default): the model of ``[task]``, trained by rounds of local
    updates. ``gbdt``: gradient-boosted trees grown by the federation from summed
    gradient histograms (``[trees]``, ``docs/trees.md``); simulation only.
    """

    kind: Literal["task", "gbdt"] = "task"


class TreesConfig(_Section):
    """``[trees]``: federated gradient-boosted trees (``docs/trees.md``).

    XGBoost's settings by XGBoost's names: ``trees`` (default
    ``[federation] rounds``; one tree per round), ``depth``, ``learning_rate``
    (eta), ``bins`` (max_bin), ``lambda``, ``gamma`` and ``min_child_weight``;
    ``sketch_cells`` and ``sketch_range`` set the quantile sketch's grid.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        populate_by_name=True,
    )

    trees: int | None = Field(default=None, ge=1, le=10_000)
    depth: int = Field(default=4, ge=1, le=8)
    learning_rate: float = Field(default=0.3, gt=0, le=1)
    bins: int = Field(default=64, ge=2, le=256)
    reg_lambda: float = Field(default=1.0, ge=0, alias="lambda")
    gamma: float = Field(default=0.0, ge=0)
    min_child_weight: float = Field(default=1.0, ge=0)
    sketch_cells: int = Field(default=4096, ge=2, le=65_536)
    sketch_range: float = Field(default=8.0, gt=0, le=1e6)


class FedConfig(_Section):
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


def _check_compatibility(cfg: FedConfig) -> None:
    _check_model(cfg)
    if cfg.gates.fairness and cfg.evaluation.sensitive is None:
        raise ConfigError(
            "a fairness gate (gates.max_demographic_parity_difference or "
            "gates.max_equalized_odds_difference) needs the groups to compare: "
            'declare [evaluation] sensitive = "COLUMN"'
        )
    _check_strategies(cfg)
    if cfg.personalization.method != "off" and not cfg.evaluation.federated:
        raise ConfigError(
            "personalization is scored at the federated evaluation, which is off: "
            'set [evaluation] federated = true or personalization.method = "off"'
        )
    if cfg.personalization.method in ("fedper", "ditto") and cfg.strategy.scaffold:
        raise ConfigError(
            f"{cfg.personalization.method} and SCAFFOLD do not compose: SCAFFOLD's "
            "control variates correct the whole model's steps, which "
            f"{cfg.personalization.method} changes at each site; turn one off",
            key="personalization.method",
        )
    _check_secure(cfg)
    _check_privacy(cfg)
    _check_robustness(cfg)
    _check_compression(cfg)
    if cfg.simulation.engine == "ray" and cfg.model.kind == "gbdt":
        raise ConfigError(
            "gradient-boosted trees are grown in the coordinator's process (their "
            "histogram rounds have no executor yet), so the Ray engine would not be "
            'used; leave engine = "process" for a gbdt federation',
            key="simulation.engine",
        )
    if cfg.simulation.engine == "ray" and cfg.secure_aggregation.mode != "off":
        raise ConfigError(
            "secure aggregation is not implemented on the Ray engine (its "
            "multi-stage rounds run in worker processes only); use engine = "
            '"process" with secure aggregation',
            key="simulation.engine",
        )
    _check_participation(cfg)
    _check_async(cfg)
    roster = cfg.deployment.participants
    unknown = sorted(set(cfg.deployment.declared_examples) - set(roster))
    if roster and unknown:
        raise ConfigError(
            f"names {', '.join(unknown)}, not in deployment.participants; fix the "
            "name or add the site to the roster",
            key="deployment.declared_examples",
        )
    if cfg.selection.min_participants > cfg.data.sites:
        raise ConfigError(
            f"needs {cfg.selection.min_participants} participants but the data has "
            f"only {cfg.data.sites} sites; lower it or raise data.sites",
            key="selection.min_participants",
        )
    _check_rule(cfg.strategy, _expected_round_size(cfg))
    if cfg.strategy.aggregation == "trimmed_mean":
        expected = max(cfg.selection.min_participants, 1)
        if int(cfg.strategy.trim * expected) * 2 >= expected and expected > 1:
            raise ConfigError(
                f"trim={cfg.strategy.trim} would discard every update of a round "
                f"with {expected} participants; lower it",
                key="strategy.trim",
            )


#: Sections that change how a task's updates are made or combined: they mean
#: nothing to trees grown from summed histograms (``docs/trees.md``).
_NOT_FOR_TREES: tuple[tuple[str, Callable[[FedConfig], bool]], ...] = (
    ("privacy.level", lambda c: c.privacy.level != "off"),
    ("secure_aggregation.mode", lambda c: c.secure_aggregation.mode == "ckks"),
    ("attack", lambda c: c.attack is not None),
    ("compression.method", lambda c: c.compression.method != "none"),
    ("personalization.method", lambda c: c.personalization.method != "off"),
    ("contribution.keep_updates", lambda c: c.contribution.keep_updates),
    ("robustness.scores", lambda c: c.robustness.scores),
    ("strategy.aggregation", lambda c: c.strategy.aggregation != "mean"),
    ("strategy.server_optimizer", lambda c: c.strategy.server_optimizer != "sgd"),
    ("selection.fraction", lambda c: c.selection.fraction != 1.0),
    ("selection.count", lambda c: c.selection.count is not None),
    ("round.mode", lambda c: c.round.mode != "sync"),
    ("round.close_fraction", lambda c: c.round.close_fraction < 1),
    ("simulation.engine", lambda c: c.simulation.engine != "process"),
    ("simulation.slowdown", lambda c: bool(c.simulation.slowdown)),
)


def _check_model(cfg: FedConfig) -> None:
    """``[task]`` for task models; ``[trees]`` only with the settings trees have."""
    if cfg.model.kind == "task":
        if cfg.task is None:
            raise ConfigError(
                "is missing: name the task's factory (module:object), or set "
                '[model] kind = "gbdt" for gradient-boosted trees',
                key="task.factory",
            )
        if cfg.trees is not None:
            raise ConfigError(
                '[trees] applies to [model] kind = "gbdt"; remove one of them',
                key="trees",
            )
        return
    if cfg.task is not None:
        raise ConfigError(
            'gradient-boosted trees ([model] kind = "gbdt") are grown by accord '
            "itself and take no task; remove [task]",
            key="task",
        )
    for key, used in _NOT_FOR_TREES:
        if used(cfg):
            raise ConfigError(
                'is not supported for gradient-boosted trees ([model] kind = "gbdt") '
                "yet: trees are grown from summed histograms, every site in every "
                "sum, plainly or under masking (docs/trees.md); remove it",
                key=key,
            )


#: What an async run refuses, and why: each needs a round's full set of updates.
_ASYNC_REFUSED: tuple[tuple[str, str], ...] = (
    (
        "secure_aggregation.mode",
        "secure aggregation unmasks a round's sum once every selected site sent its "
        "share, and an async buffer mixes sites trained from different versions",
    ),
    (
        "privacy.level",
        "participant-level DP is accounted per round with a sampling rate, which "
        "an async buffer (sites contributing as fast as they train) does not have",
    ),
    (
        "strategy.scaffold",
        "SCAFFOLD's control variates assume every update starts from the model "
        "the control variate was computed for",
    ),
    (
        "robustness",
        "anomaly scores compare the updates of one round against each other",
    ),
    (
        "contribution.keep_updates",
        "contribution scores replay the kept updates as FedAvg rounds",
    ),
)


def _check_participation(cfg: FedConfig) -> None:
    """Refuse participation settings that cannot do what they say."""
    rnd = cfg.round
    if rnd.close_fraction < rnd.quorum:
        raise ConfigError(
            f"close_fraction {rnd.close_fraction:g} closes a round before its quorum "
            f"of {rnd.quorum:g} could answer, so every round would fail; raise "
            "close_fraction to at least round.quorum",
            key="round.close_fraction",
        )
    if cfg.secure_aggregation.mode == "off":
        return
    if cfg.strategy.weighting == "uniform":
        raise ConfigError(
            "in a secure round each site weights its own masked update by its "
            "example count before the sum; uniform weighting is not implemented "
            'there: use weighting = "examples", or turn secure aggregation off',
            key="strategy.weighting",
        )
    if rnd.close_fraction < 1:
        raise ConfigError(
            "a secure round's sum unmasks only after its stages, which wait for "
            "every surviving site; close_fraction is not implemented there (use "
            "deadline_s to cut stragglers)",
            key="round.close_fraction",
        )


def _check_async(cfg: FedConfig) -> None:
    """Refuse in async mode what relies on a round's synchronized updates."""
    if cfg.round.mode != "async":
        return
    active = {
        "secure_aggregation.mode": cfg.secure_aggregation.mode != "off",
        "privacy.level": cfg.privacy.level != "off",
        "strategy.scaffold": cfg.strategy.scaffold,
        "robustness": cfg.robustness.scoring,
        "contribution.keep_updates": cfg.contribution.keep_updates,
    }
    for key, why in _ASYNC_REFUSED:
        if active[key]:
            raise ConfigError(
                f'round.mode = "async" does not compose with {key}: {why}; turn one '
                "of them off",
                key=key,
            )
    if cfg.strategy.aggregation != "mean":
        raise ConfigError(
            'round.mode = "async" folds a buffer of updates with FedBuff\'s '
            f"staleness-weighted mean; aggregation = {cfg.strategy.aggregation!r} "
            'is not implemented for it: use aggregation = "mean"',
            key="strategy.aggregation",
        )
    sites = len(cfg.deployment.participants) or cfg.data.sites
    if cfg.round.buffer_size > sites:
        raise ConfigError(
            f"async buffer_size {cfg.round.buffer_size} is more than the {sites} "
            "sites; "
            "a version would wait on updates from the same sites again and again",
            key="round.buffer_size",
        )


def _check_compression(cfg: FedConfig) -> None:
    """Refuse compression where the secure sum needs what it would change."""
    method, secure = cfg.compression.method, cfg.secure_aggregation.mode
    if method == "topk" and secure != "off":
        raise ConfigError(
            "top-k sparsification does not compose with secure aggregation: each "
            "site keeps different coordinates, and the masked sum needs every site's "
            'dense vector; use method = "q8" without secure aggregation, or "none"',
            key="compression.method",
        )
    if method in ("q8", "q4") and secure == "ckks":
        raise ConfigError(
            f"{method} does not compose with CKKS: ciphertexts of quantized values "
            'are no smaller; use mode = "masking" (quantized sums are packed '
            'there) or method = "none"',
            key="compression.method",
        )
    if method in ("q8", "q4") and secure == "masking":
        _check_quantized_masking(cfg, bits=8 if method == "q8" else 4)


def _check_quantized_masking(cfg: FedConfig, *, bits: int) -> None:
    """Refuse q8/q4 under masking where the packed ring field would overflow."""
    method = cfg.compression.method
    if cfg.privacy.level == "participant":
        raise ConfigError(
            f"{method} with masking does not carry distributed DP noise: each "
            "site's noise share needs the 32-bit fixed-point encoding; use "
            'method = "none" with privacy.level = "participant"',
            key="compression.method",
        )
    most = ((1 << bits) - 1) // 2
    if cfg.data.partition == "natural" and cfg.selection.count is None:
        return  # the number of sites is the data's: checked when a round starts
    sites = cfg.selection.count or cfg.data.sites
    if sites > most:
        raise ConfigError(
            f"{method} under secure aggregation sums {bits}-bit integers in one "
            f"{bits}-bit field of the ring: {sites} sites x 2 x max|q| must stay "
            f"below 2^{bits}, so it sums at most {most} sites per round. Use "
            + ('method = "q8", ' if bits == 4 else "")
            + 'fewer sites per round ([selection] count) or method = "none"',
            key="compression.method",
        )


def _check_strategies(cfg: FedConfig) -> None:
    """Refuse SCAFFOLD and q-FedAvg where what they rely on is hidden or altered."""
    strategy = cfg.strategy
    if strategy.scaffold:
        key = "strategy.scaffold"
        if strategy.aggregation != "mean":
            raise ConfigError(
                "SCAFFOLD keeps c equal to the mean of the sites' control variates "
                f"c_i; aggregation = {strategy.aggregation!r} drops or reweights "
                "updates, which leaves c out of step with the c_i that the sites "
                "keep, so every later correction c - c_i is biased. Use "
                'aggregation = "mean" with scaffold',
                key=key,
            )
        if cfg.secure_aggregation.mode != "off":
            raise ConfigError(
                "accord's secure rounds mask and sum the model-shaped update only; "
                "SCAFFOLD's delta_c would have to travel beside it in the clear, "
                "which shows the coordinator each site's gradient drift. Turn "
                "scaffold off (FedProx also corrects drift) or secure aggregation off",
                key=key,
            )
        if cfg.privacy.level == "participant":
            raise ConfigError(
                "participant-level DP clips each update to one norm, and delta_c "
                "(the update divided by the local steps times the learning rate) "
                "would take nearly all of it, leaving the model's part to the "
                "noise; use level = 'record' (DP-SGD at the sites) with scaffold",
                key=key,
            )
        if cfg.contribution.keep_updates:
            raise ConfigError(
                "contribution scores replay the kept model updates as FedAvg "
                "rounds, which SCAFFOLD's rounds are not; set keep_updates = false",
                key=key,
            )
    if strategy.aggregation == "qfedavg" and cfg.secure_aggregation.mode != "off":
        raise ConfigError(
            "q-FedAvg weighs each site's update by its own loss and update norm, "
            "which secure aggregation hides from the coordinator; turn one off",
            key="secure_aggregation.mode",
        )


def _check_robustness(cfg: FedConfig) -> None:
    """Scores and update attacks need individual updates, which masking hides."""
    if cfg.contribution.keep_updates and not cfg.store.checkpoints:
        raise ConfigError(
            "keep_updates stores the updates next to the checkpoints; set [store] "
            "checkpoints = true, or keep_updates = false",
            key="contribution.keep_updates",
        )
    if cfg.secure_aggregation.mode == "off":
        return
    if cfg.contribution.keep_updates:
        raise ConfigError(
            "under secure aggregation the coordinator sees only the sum of a "
            "round's updates, never one site's, so none can be kept and no "
            "per-site contribution (leave-one-out, Shapley) can be computed; set "
            "keep_updates = false, or turn secure aggregation off",
            key="contribution.keep_updates",
        )
    if cfg.robustness.scoring:
        raise ConfigError(
            "anomaly scores and quarantine need every individual update, and under "
            "secure aggregation the coordinator sees only their sum (no score can "
            "be computed or stored); turn [robustness] off or secure aggregation off",
            key="robustness",
        )
    if cfg.attack is not None and cfg.attack.updates:
        raise ConfigError(
            f"attack kind {cfg.attack.kind!r} rewrites updates, which secure "
            "aggregation hides from the simulation engine too; use label_flip or "
            "backdoor, or turn secure aggregation off",
            key="attack.kind",
        )
    if cfg.attack is not None and cfg.attack.examples is not None:
        raise ConfigError(
            "attack.examples rewrites the example count a malicious site claims, "
            "which a secure round folds into the masked sum where the simulation "
            "engine cannot reach it (there every site is weighted up to "
            "max_examples); remove examples, or turn secure aggregation off",
            key="attack.examples",
        )


def refuse_trees(cfg: FedConfig, command: str) -> None:
    """:class:`ConfigError` for gradient-boosted trees: not deployable yet.

    Deployed sites exchange model updates over gRPC; the per-level histogram
    exchange that trees need has no wire messages yet, so ``accord coordinator``
    and ``accord participant`` refuse a gbdt federation before they listen or dial.
    """
    if cfg.model.kind == "gbdt":
        raise ConfigError(
            f"gradient-boosted trees run in `accord simulate` only for now; "
            f"`{command}` refuses them: the deployed protocol carries model updates, "
            "not the per-level gradient histograms trees are grown from "
            "(docs/trees.md, section 6)",
            key="model.kind",
        )


def refuse_attack(cfg: FedConfig, command: str) -> None:
    """:class:`ConfigError` if ``cfg`` declares an ``[attack]``: simulation only.

    ``accord coordinator`` and ``accord participant`` call it, so that poisoning
    meant to evaluate defences can never run in a real federation.
    """
    if cfg.attack is not None:
        raise ConfigError(
            f"[attack] is for evaluating defences in `accord simulate` only; "
            f"`{command}` refuses to run with it. Remove the [attack] table from "
            "this fed.toml (keep a copy for simulations)",
            key="attack",
        )


def _expected_round_size(cfg: FedConfig) -> int:
    """Participants a round selects, as far as the configuration alone tells."""
    sites = len(cfg.deployment.participants) or cfg.data.sites
    if cfg.round.mode == "async":
        return cfg.round.buffer_size
    wanted = (
        math.ceil(cfg.selection.fraction * sites)
        if cfg.selection.count is None
        else min(cfg.selection.count, sites)
    )
    return max(wanted, cfg.selection.min_participants)


def _check_secure(cfg: FedConfig) -> None:
    """Refuse secure-aggregation settings that cannot keep their promise."""
    sec = cfg.secure_aggregation
    if sec.mode == "off":
        return
    key = "secure_aggregation.mode"
    if cfg.strategy.aggregation != "mean":
        raise ConfigError(
            f"strategy.aggregation = {cfg.strategy.aggregation!r} needs every "
            "individual update, which secure aggregation exists to hide from the "
            'coordinator; use aggregation = "mean" with secure aggregation, or turn '
            "it off to use a robust rule",
            key=key,
        )
    n = _expected_round_size(cfg)
    if n < 3:
        raise ConfigError(
            f"rounds select {n} participant(s); secure aggregation needs at least 3 "
            "(with 2, each learns the other's update from the sum)",
            key=key,
        )
    if sec.mode == "ckks":
        if sec.threshold is not None or sec.degree is not None:
            raise ConfigError(
                "threshold and degree belong to masking; CKKS has neither (the key "
                "holder's key decides who can decrypt): remove them",
                key="secure_aggregation.threshold",
            )
        return
    if sec.threshold is not None:
        holders = n if sec.degree is None else min(n, sec.degree + 1)
        if sec.threshold <= holders // 2 or sec.threshold > holders:
            raise ConfigError(
                f"threshold {sec.threshold} with {holders} share holders is not safe: "
                "at or below half, a coordinator can show two halves of the "
                "holders different survivor sets and rebuild both masks of one "
                f"participant; above {holders}, no secret can ever be rebuilt. "
                f"Choose a threshold in {holders // 2 + 1}..{holders}",
                key="secure_aggregation.threshold",
            )
    if sec.degree is not None and sec.degree < 2:
        raise ConfigError(
            "a neighbour degree below 2 leaves a participant one neighbour, who "
            "would learn its update",
            key="secure_aggregation.degree",
        )


def _check_privacy(cfg: FedConfig) -> None:
    """Refuse DP settings whose guarantee the rest of the configuration breaks."""
    if cfg.privacy.level != "participant":
        return
    key = "privacy.level"
    if cfg.strategy.aggregation != "mean":
        raise ConfigError(
            f"participant-level DP bounds one participant's effect on the mean of "
            f"clipped updates; strategy.aggregation = "
            f"{cfg.strategy.aggregation!r} has another sensitivity that accord does "
            'not account: use aggregation = "mean"',
            key=key,
        )
    mode = cfg.secure_aggregation.mode
    if mode == "ckks":
        raise ConfigError(
            "participant-level DP with CKKS would need each site to add its share of "
            "noise under encryption, which accord does not do; use "
            'secure_aggregation = "masking" (distributed noise) or turn it off '
            "(central noise)",
            key=key,
        )
    if mode == "masking" and cfg.privacy.adaptive_clip:
        raise ConfigError(
            "adaptive_clip counts the updates within the clip, which masking hides "
            "from the coordinator; give a fixed clip with secure aggregation",
            key="privacy.adaptive_clip",
        )


def _format_errors(exc: ValidationError) -> str:
    """Every problem on one line, keys cut to a readable length, at most a few."""
    errors = exc.errors()
    parts = []
    for err in errors[:_MAX_LISTED]:
        key = shown_key(".".join(str(p) for p in err["loc"])) or "(top level)"
        parts.append(f"{key}: {err['msg']}")
    if len(errors) > _MAX_LISTED:
        parts.append(f"and {len(errors) - _MAX_LISTED} more")
    return "invalid configuration: " + "; ".join(parts)


def config_from_mapping(
    raw: Mapping[str, Any], *, base_dir: Path | str = "."
) -> FedConfig:
    """Validate an already-parsed TOML document into a :class:`FedConfig`."""
    try:
        cfg = FedConfig.model_validate({**raw, "base_dir": str(base_dir)})
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None
    _check_compatibility(cfg)
    return cfg


def load_config(path: Path | str, **overrides: Mapping[str, Any]) -> FedConfig:
    """Read and validate ``fed.toml``; ``overrides`` replace keys of whole sections.

    ``load_config("fed.toml", simulation={"workers": 0})`` changes one key of one
    section and keeps the rest of it.
    """
    file = Path(path)
    raw = read_toml(file)
    for section, values in overrides.items():
        current = raw.get(section, {})
        if not isinstance(current, dict):
            continue  # not a table: validation names the key
        merged = dict(current)
        merged.update(values)
        raw[section] = merged
    return config_from_mapping(raw, base_dir=file.resolve().parent)


#: The rules each robust-rule option of ``[strategy]`` applies to.
_RULE_KEYS: dict[str, tuple[str, ...]] = {
    "attackers": ("krum", "multi_krum", "bulyan"),
    "select": ("multi_krum",),
    "tau": ("centered_clip",),
    "iterations": ("centered_clip", "geometric_median"),
    "tolerance": ("geometric_median",),
    "smoothing": ("geometric_median",),
    "norm_bound": ("norm_bounding",),
    "root_examples": ("fltrust",),
    "q": ("qfedavg",),
}


def _check_rule(strategy: StrategyConfig, n: int) -> None:
    """Refuse options of another rule, and rules whose bound the rounds cannot meet."""
    rule = strategy.aggregation
    for key, rules in _RULE_KEYS.items():
        if getattr(strategy, key) is not None and rule not in rules:
            raise ConfigError(
                f"applies to aggregation = {' or '.join(map(repr, rules))}, not "
                f"{rule!r}; remove it or choose that rule",
                key=f"strategy.{key}",
            )
    if rule == "norm_bounding" and strategy.norm_bound is None:
        raise ConfigError(
            "norm_bounding needs strategy.norm_bound, the L2 norm each update is "
            "clipped to (a little above honest updates' norms: see "
            "docs/robustness.md)",
            key="strategy.norm_bound",
        )
    f = strategy.attackers
    if rule in ("krum", "multi_krum"):
        need = 2 * (f or 0) + 3
        bound = "n > 2f + 2"
    elif rule == "bulyan":
        need = 4 * (f or 0) + 3
        bound = "n >= 4f + 3"
    else:
        return
    if n < need:
        told = "attackers = 0" if f is None else f"attackers = {f}"
        alternative = (
            "weighted_trimmed_mean or multi_krum suit small consortia"
            if rule == "bulyan"
            else "weighted_trimmed_mean or median work with any number"
        )
        raise ConfigError(
            f"{rule} needs {bound}: with {told} a round needs at least {need} "
            f"participants, but rounds select {n}; lower attackers, select more "
            f"participants, or choose another rule ({alternative})",
            key="strategy.attackers" if f is not None else "strategy.aggregation",
        )
    if strategy.select is not None and strategy.select > n - (f or 0):
        raise ConfigError(
            f"multi_krum selects at most n - f = {n - (f or 0)} of the {n} "
            f"participants a round selects, not {strategy.select}; lower it",
            key="strategy.select",
        )
