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

``target_epsilon`` is turned into a noise multiplier once, at run start, for the
planned rounds at the expected sampling rate; it is also the run's budget unless
``budget_epsilon`` says otherwise. A resumed run rebuilds its accountant (and an
adaptive clip) from the privacy recorded with its rounds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from accord.aggregation.dp_mean import DpMeanAccumulator
from accord.config import FedConfig, PrivacyConfig
from accord.errors import ConfigError
from accord.params import ParamSpec
from accord.privacy import AdaptiveClip, NoiseSource
from accord.records import PrivacySpent, RoundRecord

if TYPE_CHECKING:  # dp-accounting is imported only once DP is on
    from accord.privacy.events import DpEvent

__all__ = ["INITIAL_ADAPTIVE_CLIP", "CentralPrivacy", "check_supported"]

logger = logging.getLogger(__name__)

#: Where an adaptive clip starts when ``clip`` is not given (Andrew et al.'s 0.1).
INITIAL_ADAPTIVE_CLIP = 0.1


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
    ) -> None:
        from accord.privacy.accountant import DpAccountant  # needs the privacy extra
        from accord.privacy.budget import PrivacyBudget
        from accord.privacy.calibration import calibrate_noise_multiplier

        if not 1 <= round_size <= participants:
            raise ValueError(f"{round_size} selected out of {participants}")
        self.settings = settings
        self.accountant = DpAccountant(settings.accountant)
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
        return cls(
            config.privacy,
            participants=participants,
            round_size=size,
            rounds=config.federation.rounds,
        )

    def epsilon(self) -> float:
        """Epsilon spent so far at the run's delta."""
        return self.accountant.epsilon(self.settings.delta)

    def summary(self) -> dict[str, Any]:
        """What the run's stored summary says of its privacy."""
        return {
            "level": self.settings.level,
            "epsilon": self.epsilon(),
            "delta": self.settings.delta,
            "budget_epsilon": self.budget.epsilon,
            "noise_multiplier": self.noise_multiplier,
            "accountant": self.settings.accountant,
            "clip": self.clip,
        }

    def restore(self, recorded: Sequence[RoundRecord]) -> None:
        """Account the rounds a resumed run recorded; continue their adaptive clip."""
        from accord.privacy.events import participant_round_event

        for record in recorded:
            for spent in record.privacy:
                if spent.level != "participant" or spent.participant is not None:
                    continue
                event = participant_round_event(
                    spent.noise_multiplier, spent.sampling_rate
                )
                self.accountant.compose(event)
                self.clip = spent.details.get("next_clip", self.clip)

    def admit(self, selected: int, eligible: int) -> float:
        """Epsilon after a round of ``selected`` out of ``eligible``.

        :class:`~accord.errors.PrivacyBudgetExhausted` if that is over the budget:
        the round must not start.
        """
        return self.budget.check(self.accountant, self._event(selected, eligible))

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

    def _event(self, selected: int, eligible: int) -> DpEvent:
        from accord.privacy.events import participant_round_event

        return participant_round_event(self.noise_multiplier, selected / eligible)
