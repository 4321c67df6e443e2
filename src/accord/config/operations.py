"""The sections that say where and how a federation runs: simulation, store, deployment.

``[simulation]`` shapes a run on one machine, ``[deployment]`` a run across
organizations (gRPC with mutual TLS), ``[store]`` where rounds, checkpoints and the
ledger are kept, and ``[profile]`` what is timed while it runs.
"""

from __future__ import annotations

import multiprocessing as mp
from typing import Literal

from pydantic import (
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

from accord.config.base import MAX_SECONDS, Section
from accord.urls import hide_password

__all__ = ["DeploymentConfig", "ProfileConfig", "SimulationConfig", "StoreConfig"]


def _default_start_method() -> Literal["spawn", "forkserver", "fork"]:
    """``forkserver`` where the platform has it (workers start warm), else spawn."""
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


class SimulationConfig(Section):
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


class StoreConfig(Section):
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


class DeploymentConfig(Section):
    """How ``accord coordinator`` runs the federation across organizations.

    ``participants`` is the roster, in the fixed order that selection and seeds use
    (the names in the sites' certificates); empty means the sites of ``[data]``, in
    partition order, as ``accord simulate`` would have them.
    """

    participants: list[str] = Field(default_factory=list)
    wait_s: float = Field(
        default=600.0,
        gt=0,
        le=MAX_SECONDS,
        description="how long the coordinator waits for every participant to "
        "connect before the first round",
    )
    grace_s: float = Field(
        default=30.0,
        ge=0,
        le=MAX_SECONDS,
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
        description="how long an upload may pause between two messages, or a "
        "download leave a message unread; then it is cut and recorded",
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


class ProfileConfig(Section):
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
