"""The sections that protect the updates and the model: secrecy, privacy, robustness.

``[secure_aggregation]`` hides each update from the coordinator, ``[privacy]``
bounds what the model can reveal about any record, ``[robustness]`` defends the
aggregate against poisoned updates, and ``[attack]`` plays the attacker those
defences are measured against (simulation only).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    model_validator,
)

from accord.config.base import MAX_SECONDS, Section

__all__ = [
    "UPDATE_ATTACKS",
    "AttackConfig",
    "BackdoorConfig",
    "PrivacyConfig",
    "RobustnessConfig",
    "SecureAggregationConfig",
    "SitePrivacyConfig",
]


class SecureAggregationConfig(Section):
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
    stage_timeout_s: float = Field(default=120.0, gt=0, le=MAX_SECONDS)

    @model_validator(mode="before")
    @classmethod
    def _mode_shorthand(cls, value: Any) -> Any:
        # ``secure_aggregation = "masking"`` is short for ``[secure_aggregation]
        # mode = "masking"``.
        return {"mode": value} if isinstance(value, str) else value


class SitePrivacyConfig(Section):
    """A simulated site's own privacy policy (``[privacy.sites.NAME]``).

    What ``accord participant --max-epsilon --delta --require-dp`` sets at a real
    site; the simulated site enforces it with its own ledger. See
    ``docs/privacy.md``.
    """

    max_epsilon: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    delta: float = Field(default=1e-5, gt=0, lt=1)
    require_dp: Literal["record"] | None = None


class PrivacyConfig(Section):
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


class BackdoorConfig(Section):
    """A trigger set on a share of the malicious sites' rows, relabelled ``target``.

    ``features`` are the (flattened) feature indices the trigger sets (empty: the
    last four); ``value`` what it sets them to (None: the largest value those
    features take in the federation's training data, a bright pixel on images).
    """

    target: int = Field(default=0, ge=0)
    features: list[int] = Field(default_factory=list, max_length=10_000)
    value: float | None = None
    fraction: float = Field(default=0.5, gt=0, le=1)


class AttackConfig(Section):
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


class RobustnessConfig(Section):
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
