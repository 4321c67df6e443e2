"""The site's check of a train task's differential privacy, and its ledger entry.

Before it trains, a site reads the mechanism the task declares (a
:class:`~accord.privacy.dpsgd.DpSgdPlan` in its options, or none) and decides with
its own policy (:class:`~accord.participant.policy.SitePolicy`) and its own
accountant over its own ledger
(:class:`~accord.participant.privacy_ledger.PrivacyLedger`):

- a malformed declaration, or one for another run, is refused;
- a declaration the site's task cannot honour (it has no DP-SGD) is refused, so a
  task never trains without the noise the coordinator accounts;
- without a declaration: refused if the site requires DP (``--require-dp record``)
  or bounds its epsilon (``--max-epsilon``: a task without DP has no bound);
- a declaration with a noise seed (tests only: it voids the noise) is refused by a
  site that guards its privacy;
- a round already in the ledger is refused (trained once, counted once: a resumed
  run goes on without the site for that round);
- a round that would take the ledger's total epsilon, every run composed, past
  ``--max-epsilon`` is refused, with both numbers in the reason.

A task the site accepts is entered in the ledger once trained, before its update
leaves the site (written ahead: a crash after sending cannot forget it). The same
guard runs in a deployed participant and in each simulated site; the coordinator's
settings cannot reach it.
"""

from __future__ import annotations

import logging

from accord.errors import ConfigError
from accord.participant.policy import SitePolicy
from accord.participant.privacy_ledger import PrivacyLedger, RoundSpend
from accord.privacy.dpsgd import DpSgdPlan
from accord.task.protocol import TrainConfig

__all__ = ["PrivacyGuard", "supports_dp_sgd"]

logger = logging.getLogger(__name__)

_PREFIX = "site policy: "


def supports_dp_sgd(task: object) -> bool:
    """Whether ``task`` trains with record-level DP-SGD when a task declares it."""
    return getattr(task, "supports_dp_sgd", False) is True


class PrivacyGuard:
    """A site's privacy policy applied to train tasks, with its ledger (if any)."""

    def __init__(
        self,
        policy: SitePolicy,
        *,
        ledger: PrivacyLedger | None,
    ) -> None:
        if policy.max_epsilon is not None and ledger is None:
            raise ConfigError(
                "a site with a maximum epsilon needs a privacy ledger to count what "
                "it spends across runs",
                key="--max-epsilon",
            )
        self.policy = policy
        self.ledger = ledger

    def refusal(
        self, config: TrainConfig, *, supports_dp: bool, run: str | None = None
    ) -> str | None:
        """Why the site refuses this train task (None: it may train it).

        ``supports_dp``: whether the site's task trains with DP-SGD when declared
        (:func:`supports_dp_sgd`). ``run``: the run the task came from, where the
        site knows it (a deployed site reads it from the task); a declaration for
        another run is refused.
        """
        try:
            plan = DpSgdPlan.of(config.options)
        except ConfigError as exc:
            return f"{_PREFIX}the task's DP-SGD declaration is malformed: {exc}"
        policy = self.policy
        if plan is None:
            if policy.require_dp is not None:
                return (
                    f"{_PREFIX}this site trains only with record-level differential "
                    "privacy (--require-dp record), and this task declares none"
                )
            if policy.max_epsilon is not None:
                return (
                    f"{_PREFIX}this site bounds its epsilon at {policy.max_epsilon:g} "
                    "(--max-epsilon), and this task declares no differential "
                    "privacy, whose epsilon is unbounded"
                )
            return None
        if policy.guards_privacy and plan.noise_seed is not None:
            return (
                f"{_PREFIX}the task's DP-SGD noise is seeded (noise_seed), so "
                "whoever knows the seed can remove it: no privacy at all; this site "
                "guards its privacy and trains only with noise from its own CSPRNG"
            )
        if run is not None and plan.run != run:
            return (
                f"{_PREFIX}the task's DP-SGD declaration names run {plan.run}, "
                f"not {run}"
            )
        run = plan.run
        if not supports_dp:
            return (
                f"{_PREFIX}this site's task cannot train with record-level DP-SGD "
                "(it has no per-example clipping and noise); use a task that "
                "supports it, or level = 'participant'"
            )
        if self.ledger is None:
            return None
        if self.ledger.has(run, config.round):
            return (
                f"{_PREFIX}round {config.round} of run {run} was already trained "
                "and is in this site's privacy ledger; a round is spent once"
            )
        if policy.max_epsilon is None:
            return None
        spent = self.ledger.epsilon()
        after = self.ledger.epsilon(extra=_spend(plan))
        if after > policy.max_epsilon:
            return (
                f"{_PREFIX}this round would take this site's epsilon from "
                f"{spent:.4g} to {after:.4g} (every run together, at delta "
                f"{policy.dp_delta:g}), above its maximum of {policy.max_epsilon:g} "
                "(--max-epsilon)"
            )
        return None

    def spent(self, config: TrainConfig) -> float | None:
        """Enter a trained round in the ledger (before its update leaves the site).

        The ledger's total epsilon after it; None when nothing was entered.
        """
        plan = DpSgdPlan.of(config.options)
        if plan is None or self.ledger is None:
            return None
        self.ledger.record(plan.run, config.round, _spend(plan))
        return self.ledger.epsilon()


def _spend(plan: DpSgdPlan) -> RoundSpend:
    return RoundSpend(
        noise_multiplier=plan.noise_multiplier,
        sampling_rate=plan.sampling_rate,
        steps=plan.steps,
        clip=plan.clip,
    )
