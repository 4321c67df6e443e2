"""Participant-level differential privacy with central noise, for one run.

:class:`CentralPrivacy` is the round loop's one contact with DP. It wraps the
aggregation (each round's :class:`~accord.aggregation.DpMeanAccumulator` clips,
sums with uniform weights and adds the noise once, before the server optimizer),
accounts every round whose noised aggregate was computed, and answers the budget's
question before a round starts. The round loop stays the same with DP off.

What a round costs: participants are selected ``selected`` out of ``eligible``
(sampling rate ``q = selected / eligible``), and the sum of their clipped updates
gets Gaussian noise of ``noise_multiplier * clip``: the DpEvent of
:func:`~accord.privacy.events.participant_round_event`. A round that failed before
aggregating (no quorum) drew no noise and released nothing: it costs nothing. A
round whose noised aggregate was computed costs its event even if the aggregate is
then refused by an integrity check (conservative: its failure reason is
published).

**Distributed noise.** Under ``[secure_aggregation] mode = "masking"`` the
coordinator never sees an update: each site clips its own and adds its share of
Skellam noise inside the ring encoding
(:class:`~accord.secagg.noised.DistributedNoise`, sized so that any sum the
protocol unmasks, of at least ``threshold`` sites, carries at least the noise of
the central mechanism). The round declares a
:class:`~accord.privacy.distributed.SkellamEvent` for the *realised* contributors
(``k`` shares) and a :class:`~accord.privacy.distributed.SkellamAccountant`
composes them; no amplification by sampling is claimed. The budget is checked
before a round with the fewest contributors the protocol allows.

``target_epsilon`` is turned into a noise multiplier once, at run start, for the
planned rounds at the expected sampling rate; it is also the run's budget unless
``budget_epsilon`` says otherwise. A resumed run rebuilds its accountant (and an
adaptive clip) from the privacy recorded with its rounds.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from accord.aggregation.dp_mean import DpMeanAccumulator
from accord.config import FedConfig, PrivacyConfig
from accord.errors import ConfigError
from accord.jsontext import parse_json
from accord.params import ParamSpec
from accord.privacy import AdaptiveClip, NoiseSource
from accord.records import PrivacySpent, RoundRecord, RunEvent
from accord.secagg.config import round_parameters
from accord.secagg.noised import DistributedNoise

if TYPE_CHECKING:  # dp-accounting is imported only once DP is on
    from accord.privacy.accountant import DpAccountant
    from accord.privacy.distributed import SkellamAccountant, SkellamEvent
    from accord.privacy.events import DpEvent

Placement = Literal["central", "distributed"]

__all__ = [
    "INITIAL_ADAPTIVE_CLIP",
    "RELEASED_EVENT",
    "CentralPrivacy",
    "check_supported",
    "released_detail",
    "released_spend",
]

logger = logging.getLogger(__name__)

#: Where an adaptive clip starts when ``clip`` is not given (Andrew et al.'s 0.1).
INITIAL_ADAPTIVE_CLIP = 0.1
#: The run event written, before a round's noised model leaves the coordinator,
#: with the round's participant-level spend (:func:`released_detail`).
RELEASED_EVENT = "privacy_released"


def check_supported(config: FedConfig) -> None:
    """Refuse, at run start, a privacy level this accord cannot run.

    Every level runs now: record level (:mod:`accord.coordinator.record_privacy`)
    checks its task when the task is built (``check_task``).
    """


class CentralPrivacy:
    """Noise, accounting and budget of participant-level DP for one run."""

    def __init__(
        self,
        settings: PrivacyConfig,
        *,
        participants: int,
        round_size: int,
        rounds: int,
        placement: Placement = "central",
        secure_threshold: int | None = None,
        secure_degree: int | None = None,
    ) -> None:
        from accord.privacy.accountant import DpAccountant  # needs the privacy extra
        from accord.privacy.budget import PrivacyBudget
        from accord.privacy.calibration import calibrate_noise_multiplier
        from accord.privacy.distributed import SkellamAccountant, calibrate_multiplier

        if not 1 <= round_size <= participants:
            raise ValueError(f"{round_size} selected out of {participants}")
        self.settings = settings
        self.placement: Placement = placement
        self._secure = (secure_threshold, secure_degree)
        self.accountant: DpAccountant | SkellamAccountant = (
            DpAccountant(settings.accountant)
            if placement == "central"
            else SkellamAccountant()
        )
        # What the last distributed round released: its plan and contributors.
        self._released: tuple[DistributedNoise, int] | None = None
        self.budget = PrivacyBudget(
            settings.budget_epsilon or settings.target_epsilon, settings.delta
        )
        self.noise = NoiseSource(settings.noise_seed)
        if self.noise.seeded:
            logger.warning(
                "privacy.noise_seed is set: the DP noise is reproducible, so anyone "
                "who knows the seed can remove it; use it in tests only"
            )
        rate = round_size / participants
        if settings.noise_multiplier is not None:
            self.noise_multiplier = settings.noise_multiplier
        elif placement == "distributed":
            assert settings.target_epsilon is not None  # the config guarantees one
            try:
                self.noise_multiplier = calibrate_multiplier(
                    settings.target_epsilon, rounds=rounds, delta=settings.delta
                )
            except ValueError as exc:
                raise ConfigError(
                    f"{exc}; raise target_epsilon or plan fewer rounds",
                    key="privacy.target_epsilon",
                ) from None
        else:
            assert settings.target_epsilon is not None  # the config guarantees one
            self.noise_multiplier = calibrate_noise_multiplier(
                settings.target_epsilon,
                sampling_rate=rate,
                steps=rounds,
                delta=settings.delta,
                kind=settings.accountant,
            )
            logger.info(
                "noise multiplier %.4f reaches epsilon %g at delta %g over %d rounds",
                self.noise_multiplier,
                settings.target_epsilon,
                settings.delta,
                rounds,
            )
        self.clip = settings.clip or INITIAL_ADAPTIVE_CLIP
        self.adaptive: AdaptiveClip | None = None
        self.update_multiplier = self.noise_multiplier
        if settings.adaptive_clip:
            count_std = settings.clip_count_stddev or max(
                round_size / 20, self.noise_multiplier
            )
            self.adaptive = AdaptiveClip(
                settings.target_quantile, settings.clip_learning_rate, count_std
            )
            try:
                self.update_multiplier = self.adaptive.update_noise_multiplier(
                    self.noise_multiplier
                )
            except ValueError as exc:
                raise ConfigError(str(exc), key="privacy.clip_count_stddev") from None
        self._open: tuple[DpMeanAccumulator, np.random.Generator, float] | None = None

    @classmethod
    def of(cls, config: FedConfig, *, participants: int) -> CentralPrivacy | None:
        """The run's participant-level DP (None at the other levels)."""
        check_supported(config)
        if config.privacy.level != "participant":
            return None
        sel = config.selection
        size = min(
            participants,
            max(sel.min_participants, math.ceil(sel.fraction * participants)),
        )
        secure = config.secure_aggregation
        return cls(
            config.privacy,
            participants=participants,
            round_size=size,
            rounds=config.federation.rounds,
            placement="distributed" if secure.mode == "masking" else "central",
            secure_threshold=secure.threshold,
            secure_degree=secure.degree,
        )

    def epsilon(self) -> float:
        """Epsilon spent so far at the run's delta."""
        return self.accountant.epsilon(self.settings.delta)

    def summary(self) -> dict[str, Any]:
        """What the run's stored summary says of its privacy."""
        return {
            "level": self.settings.level,
            "noise": self.placement,
            "epsilon": self.epsilon(),
            "delta": self.settings.delta,
            "budget_epsilon": self.budget.epsilon,
            "noise_multiplier": self.noise_multiplier,
            "accountant": self._accountant_name,
            "clip": self.clip,
        }

    @property
    def _accountant_name(self) -> str:
        return (
            self.settings.accountant if self.placement == "central" else "skellam-rdp"
        )

    def restore(
        self, recorded: Sequence[RoundRecord], released: Sequence[RunEvent] = ()
    ) -> None:
        """Account the rounds a resumed run recorded; continue their adaptive clip.

        ``released`` are the run's :data:`RELEASED_EVENT` events: a round's noised
        model goes to the sites (and its evaluation) before the round is recorded,
        so a process stopped in between released a model the records do not
        account. Each such release is composed too, so the budget holds across
        crashes; the round run again spends its own.
        """
        recorded_spend: set[int] = set()
        for record in recorded:
            for spent in record.privacy:
                if spent.level != "participant" or spent.participant is not None:
                    continue
                recorded_spend.add(record.number)
                self._compose(spent)
                if self.placement == "central":
                    self.clip = spent.details.get("next_clip", self.clip)
        by_round: dict[int, list[RunEvent]] = {}
        for event in released:
            if event.kind == RELEASED_EVENT and event.round is not None:
                by_round.setdefault(event.round, []).append(event)
        for number, events in sorted(by_round.items()):
            if number in recorded_spend:
                events = events[:-1]  # the last release is the one recorded
            for event in events:
                lost = released_spend(event.detail)
                if lost is None:
                    continue
                logger.warning(
                    "round %d's noised model was released before a stop that kept "
                    "it from being recorded: its privacy spent is accounted",
                    number,
                )
                self._compose(lost)

    def _compose(self, spent: PrivacySpent) -> None:
        from accord.privacy.distributed import SkellamEvent
        from accord.privacy.events import participant_round_event

        if self.placement == "distributed":
            d = spent.details
            self.accountant.compose(SkellamEvent(d["skellam_mu"], d["l2"], d["l1"]))
            return
        event = participant_round_event(spent.noise_multiplier, spent.sampling_rate)
        self.accountant.compose(event)

    def admit(self, selected: int, eligible: int, *, values: int = 1) -> float:
        """Epsilon after a round of ``selected`` out of ``eligible``.

        ``values`` is the model's size (distributed noise's sensitivity depends on
        it); such a round is checked with the fewest contributors the protocol
        unmasks. :class:`~accord.errors.PrivacyBudgetExhausted` if that is over
        the budget: the round must not start.
        """
        if self.placement == "distributed":
            threshold, _ = round_parameters(
                selected, threshold=self._secure[0], degree=self._secure[1]
            )
            plan = self.noise_plan(selected, threshold, values)
            return self.budget.check(self.accountant, _skellam(plan, threshold))
        return self.budget.check(self.accountant, self._event(selected, eligible))

    def noise_plan(
        self, participants: int, threshold: int, values: int
    ) -> DistributedNoise:
        """The distributed noise of a secure round of ``participants`` sites.

        Raises ConfigError when no ring scale fits (too many sites or values).
        """
        try:
            return DistributedNoise.plan(
                clip=self.clip,
                noise_multiplier=self.noise_multiplier,
                participants=participants,
                threshold=threshold,
                values=values,
            )
        except ValueError as exc:
            raise ConfigError(str(exc), key="privacy.noise_multiplier") from None

    def released(self, plan: DistributedNoise, contributors: int) -> None:
        """A secure round unmasked the noised sum of ``contributors`` sites."""
        if contributors < plan.threshold:  # the protocol never unmasks fewer
            raise ValueError(
                f"{contributors} contributors, below the threshold {plan.threshold}"
            )
        self._released = (plan, contributors)

    def accumulator(
        self, spec: ParamSpec, number: int, selected: int
    ) -> DpMeanAccumulator:
        """Round ``number``'s aggregation: clip, sum, noise, divide by ``selected``."""
        rng = self.noise.generator(number)
        acc = DpMeanAccumulator(
            spec,
            clip=self.clip,
            noise_multiplier=self.update_multiplier,
            denominator=selected,
            rng=rng,
        )
        self._open = (acc, rng, self.clip)
        return acc

    def settle(self, selected: int, eligible: int) -> PrivacySpent | None:
        """Account the round just run; None if it drew no noise (nothing released)."""
        if self.placement == "distributed":
            return self._settle_distributed(selected, eligible)
        if self._open is None:
            return None
        acc, rng, clip = self._open
        self._open = None
        if not acc.released:
            return None
        self.accountant.compose(self._event(selected, eligible))
        details: dict[str, float] = {}
        if self.adaptive is not None:
            fraction = self.adaptive.noisy_fraction(acc.within, acc.count, rng)
            self.clip = self.adaptive.next_clip(clip, fraction)
            details = {
                "next_clip": self.clip,
                "update_noise_multiplier": self.update_multiplier,
                "clip_count_stddev": self.adaptive.count_stddev,
            }
        return PrivacySpent(
            level="participant",
            participant=None,
            epsilon=self.epsilon(),
            delta=self.settings.delta,
            accountant=self.settings.accountant,
            noise_multiplier=self.noise_multiplier,
            sampling_rate=selected / eligible,
            clip=clip,
            details=details,
        )

    def _settle_distributed(self, selected: int, eligible: int) -> PrivacySpent | None:
        if self._released is None:
            return None
        plan, contributors = self._released
        self._released = None
        event = _skellam(plan, contributors)
        self.accountant.compose(event)
        return PrivacySpent(
            level="participant",
            participant=None,
            epsilon=self.epsilon(),
            delta=self.settings.delta,
            accountant=self._accountant_name,
            noise_multiplier=self.noise_multiplier,
            sampling_rate=selected / eligible,
            clip=plan.clip,
            details={
                "distributed": 1.0,
                "contributors": float(contributors),
                "threshold": float(plan.threshold),
                "noise_share": plan.noise_share,
                "skellam_mu": event.mu,
                "l2": event.l2,
                "l1": event.l1,
                "scale": plan.scale,
            },
        )

    def _event(self, selected: int, eligible: int) -> DpEvent:
        from accord.privacy.events import participant_round_event

        return participant_round_event(self.noise_multiplier, selected / eligible)


def _skellam(plan: DistributedNoise, contributors: int) -> SkellamEvent:
    """The event of a sum of ``contributors`` inputs of ``plan``."""
    from accord.privacy.distributed import SkellamEvent

    l2, l1 = plan.sensitivity
    return SkellamEvent(plan.summed_noise(contributors), l2, l1)


def released_detail(spent: PrivacySpent) -> str:
    """The :data:`RELEASED_EVENT` detail of a round's participant-level spend."""
    return json.dumps(
        {
            "noise_multiplier": spent.noise_multiplier,
            "sampling_rate": spent.sampling_rate,
            "epsilon": spent.epsilon,
            "delta": spent.delta,
            "accountant": spent.accountant,
            "clip": spent.clip,
            "details": dict(spent.details),
        },
        sort_keys=True,
    )


def released_spend(detail: str) -> PrivacySpent | None:
    """The spend :func:`released_detail` wrote; None if the detail is unreadable."""
    try:
        d = parse_json(detail)
        return PrivacySpent(
            level="participant",
            participant=None,
            epsilon=float(d["epsilon"]),
            delta=float(d["delta"]),
            accountant=str(d["accountant"]),
            noise_multiplier=float(d["noise_multiplier"]),
            sampling_rate=float(d["sampling_rate"]),
            clip=None if d.get("clip") is None else float(d["clip"]),
            details={str(k): float(v) for k, v in d["details"].items()},
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        logger.error("a %s event is unreadable: %.200s", RELEASED_EVENT, detail)
        return None
