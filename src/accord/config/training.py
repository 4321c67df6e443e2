"""The sections that say what is trained and how: data, task, model, rounds, strategy.

``[federation]``, ``[data]``, ``[task]``, ``[model]`` and ``[trees]`` name the job;
``[train]``, ``[selection]``, ``[round]`` and ``[strategy]`` say how each round picks
its sites, waits for them and combines their updates; ``[compression]`` and
``[personalization]`` what travels and what each site keeps for itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from accord.config.base import MAX_SECONDS, Section
from accord.task.protocol import TRAIN_BOUNDS

__all__ = [
    "CompressionConfig",
    "DataConfig",
    "FederationConfig",
    "ModelConfig",
    "PersonalizationConfig",
    "RoundConfig",
    "SelectionConfig",
    "StrategyConfig",
    "TaskConfig",
    "TrainSettings",
    "TreesConfig",
]


class FederationConfig(Section):
    """Name, length and seed of the run."""

    name: str = Field(default="federation", min_length=1, max_length=100)
    rounds: int = Field(default=10, ge=1, le=100_000)
    seed: int = Field(default=0, ge=0, lt=2**63)


class DataConfig(Section):
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


class TaskConfig(Section):
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


class TrainSettings(Section):
    """Local training settings sent to every participant each round."""

    epochs: int = Field(
        default=1, ge=TRAIN_BOUNDS["epochs"][0], le=TRAIN_BOUNDS["epochs"][1]
    )
    batch_size: int = Field(default=32, ge=1, le=TRAIN_BOUNDS["batch_size"][1])
    learning_rate: float = Field(default=0.05, gt=0)
    options: dict[str, Any] = Field(default_factory=dict)


class SelectionConfig(Section):
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


class RoundConfig(Section):
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

    deadline_s: float = Field(default=600.0, gt=0, le=MAX_SECONDS)
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


class StrategyConfig(Section):
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


class PersonalizationConfig(Section):
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


class CompressionConfig(Section):
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


class ModelConfig(Section):
    """``[model]``: what kind of model the federation trains.

    ``task`` (the default): the model of ``[task]``, trained by rounds of local
    updates. ``gbdt``: gradient-boosted trees grown by the federation from summed
    gradient histograms (``[trees]``, ``docs/trees.md``); simulation only.
    """

    kind: Literal["task", "gbdt"] = "task"


class TreesConfig(Section):
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
