"""Record-level differential privacy, as the coordinator declares and accounts it.

At ``[privacy] level = "record"`` every site trains with DP-SGD on its own records.
The coordinator decides each site's mechanism and declares it with the site's train
task (:class:`~accord.privacy.dpsgd.DpSgdPlan`, in the task's options): one noise
multiplier ``z`` and clip for the federation, and for each site the sampling rate
``q = batch_size / rows`` and ``steps = epochs * ceil(rows / batch_size)`` per
round (:func:`~accord.privacy.dpsgd.site_mechanism`). A site's rows are what the
coordinator knows of it: the partition in a simulation, ``[deployment]
declared_examples`` in a deployment (required there at this level). Because the
site trains exactly the declared plan, the coordinator can compute every site's
epsilon from its declarations without trusting a number the site sends, and the
site's own ledger (:mod:`accord.participant.privacy_ledger`) composes the same
events.

- ``target_epsilon`` becomes ``z`` at run start: the largest of the multipliers
  that keep each site within the target over the planned rounds (the site whose
  mechanism spends most sets it).
- Before a round the budget (``budget_epsilon``, else ``target_epsilon``) is
  checked for every selected site; if any would pass it, the round does not start
  and the run ends "budget exhausted", naming the site.
- After a round each site whose update reached the coordinator (accepted or
  refused by its checks) is accounted one round of its plan, and its epsilon is
  recorded with the round (``PrivacySpent`` with ``participant`` = the site). A
  site that refused the task (its policy) or reported a failure released nothing
  here. The site's ledger counts every round it trained, so it is the authority
  where the two differ (an update lost on the way).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from accord.config import FedConfig, PrivacyConfig
from accord.errors import ConfigError
from accord.jsontext import parse_json
from accord.privacy.dpsgd import OPTION_KEY, DpSgdPlan, site_mechanism
from accord.records import (
    NewEvent,
    ParticipantOutcome,
    PrivacySpent,
    RoundRecord,
    RunEvent,
)

if TYPE_CHECKING:  # dp-accounting is imported only once DP is on
    from accord.privacy.accountant import DpAccountant
    from accord.privacy.events import DpEvent

__all__ = ["DISPATCHED_EVENT", "RecordPrivacy", "check_task", "site_rows"]

logger = logging.getLogger(__name__)

#: The run event recorded for each site a record-level DP round is declared to,
#: before its task goes out (:meth:`RecordPrivacy.dispatched`).
DISPATCHED_EVENT = "privacy_dispatched"

#: Outcomes whose update reached the coordinator: the site released a DP-SGD round.
_RELEASED = ("ok", "rejected", "timeout")
#: How a site's own refusal reads in a simulation and in a deployment.
_REFUSED = ("site policy", "refused by the site")


def check_task(config: FedConfig, task: object, name: str) -> None:
    """Refuse at run start a task that cannot train with record-level DP-SGD."""
    from accord.participant.privacy_guard import supports_dp_sgd

    if config.privacy.level == "record" and not supports_dp_sgd(task):
        raise ConfigError(
            f"the task {name} ({type(task).__name__}) cannot train with "
            "record-level DP-SGD (per-example clipping and noise inside each site); "
            "use accord.task.torch (Opacus) or the numpy tasks "
            "accord.task.numpy_task:softmax_regression / :mlp, or level = "
            "'participant'",
            key="privacy.level",
        )


def site_rows(config: FedConfig, rows: Mapping[str, int] | None) -> dict[str, int]:
    """Each site's training rows: ``rows``, else ``[deployment] declared_examples``.

    :class:`ConfigError` naming the sites without one (record level needs them).
    """
    known = dict(config.deployment.declared_examples if rows is None else rows)
    missing = sorted(set(config.deployment.participants or known) - set(known))
    if not known or missing:
        raise ConfigError(
            "level = 'record' derives each site's sampling rate (batch_size / "
            "rows) and steps from its number of training rows; declare them in "
            "[deployment] declared_examples"
            + (f" (missing: {', '.join(missing)})" if missing else ""),
            key="deployment.declared_examples",
        )
    return known


class RecordPrivacy:
    """The declared DP-SGD plans, per-site accounting and budget of one run."""

    def __init__(
        self,
        settings: PrivacyConfig,
        *,
        rows: Mapping[str, int],
        batch_size: int,
        epochs: int,
        rounds: int,
    ) -> None:
        from accord.privacy.accountant import DpAccountant  # needs the privacy extra
        from accord.privacy.budget import PrivacyBudget
        from accord.privacy.calibration import calibrate_noise_multiplier

        if settings.clip is None:  # the config guarantees it at this level
            raise ConfigError("level = 'record' needs clip", key="privacy.clip")
        self.settings = settings
        self.clip = settings.clip
        self.mechanisms = {
            site: site_mechanism(n, batch_size=batch_size, epochs=epochs)
            for site, n in rows.items()
        }
        self.budget = PrivacyBudget(
            settings.budget_epsilon or settings.target_epsilon, settings.delta
        )
        self.accountants: dict[str, DpAccountant] = {
            site: DpAccountant(settings.accountant) for site in rows
        }
        if settings.noise_multiplier is not None:
            self.noise_multiplier = settings.noise_multiplier
        else:
            assert settings.target_epsilon is not None  # the config guarantees one
            self.noise_multiplier = max(
                calibrate_noise_multiplier(
                    settings.target_epsilon,
                    sampling_rate=q,
                    steps=steps * rounds,
                    delta=settings.delta,
                    kind=settings.accountant,
                    mechanism="record",
                )
                for q, steps in set(self.mechanisms.values())
                if steps > 0
            )
            logger.info(
                "noise multiplier %.4f keeps every site within epsilon %g at delta "
                "%g over %d rounds",
                self.noise_multiplier,
                settings.target_epsilon,
                settings.delta,
                rounds,
            )
        if settings.noise_seed is not None:
            logger.warning(
                "privacy.noise_seed is set: the sites' DP-SGD noise is reproducible, "
                "so anyone who knows the seed can remove it; use it in tests only"
            )

    @classmethod
    def of(
        cls, config: FedConfig, *, rows: Mapping[str, int] | None
    ) -> RecordPrivacy | None:
        """The run's record-level DP (None unless ``level = "record"``).

        ``rows``: each site's training rows (None: ``[deployment]
        declared_examples``); :class:`ConfigError` naming any site without one.
        """
        if config.privacy.level != "record":
            return None
        known = site_rows(config, rows)
        return cls(
            config.privacy,
            rows=known,
            batch_size=config.train.batch_size,
            epochs=config.train.epochs,
            rounds=config.federation.rounds,
        )

    def plan(self, run: str, site: str) -> DpSgdPlan:
        """What ``site`` is to run this round."""
        q, steps = self._mechanism(site)
        s = self.settings
        return DpSgdPlan(
            run=run,
            noise_multiplier=self.noise_multiplier,
            clip=self.clip,
            sampling_rate=q,
            steps=steps,
            delta=s.delta,
            accountant=s.accountant,
            noise_seed=s.noise_seed,
        )

    def options(self, run: str, site: str) -> dict[str, Any]:
        """The train task's options entry that declares ``site``'s plan."""
        return {OPTION_KEY: self.plan(run, site).to_json()}

    def epsilons(self) -> dict[str, float]:
        """Each site's epsilon so far at the run's delta."""
        delta = self.settings.delta
        return {site: acc.epsilon(delta) for site, acc in self.accountants.items()}

    def summary(self) -> dict[str, Any]:
        """What the run's stored summary says of its privacy."""
        eps = self.epsilons()
        return {
            "level": "record",
            "epsilon": max(eps.values(), default=0.0),
            "sites": eps,
            "delta": self.settings.delta,
            "budget_epsilon": self.budget.epsilon,
            "noise_multiplier": self.noise_multiplier,
            "accountant": self.settings.accountant,
            "clip": self.clip,
        }

    def admit(self, selected: Sequence[str]) -> None:
        """Raise PrivacyBudgetExhausted if a selected site would pass the budget."""
        from accord.errors import PrivacyBudgetExhausted

        for site in selected:
            try:
                self.budget.check(self.accountants[site], self._event(site))
            except PrivacyBudgetExhausted as exc:
                exc.detail = f"site {site}: {exc.detail}"
                raise

    def settle(
        self, outcomes: Iterable[ParticipantOutcome]
    ) -> tuple[PrivacySpent, ...]:
        """Account the sites that released a round; their records for the store."""
        spent = []
        for outcome in outcomes:
            if outcome.status not in _RELEASED or outcome.participant not in (
                self.accountants
            ):
                continue
            if outcome.reason is not None and outcome.reason.startswith(_REFUSED):
                continue  # the site refused the task: it trained nothing
            spent.append(self._account(outcome.participant))
        return tuple(spent)

    def dispatched(self, number: int, selected: Sequence[str]) -> NewEvent:
        """The event to record before round ``number``'s tasks go to ``selected``.

        One per round, naming the sites in its detail (JSON): a round's per-site
        rows would outnumber everything else the run records.
        """
        sites = sorted(site for site in selected if site in self.accountants)
        return NewEvent(
            round=number,
            participant=None,
            kind=DISPATCHED_EVENT,
            detail=json.dumps({"sites": sites}),
        )

    def restore(
        self, recorded: Sequence[RoundRecord], events: Sequence[RunEvent] = ()
    ) -> None:
        """Account the rounds a resumed run recorded, and the attempts it lost.

        ``events`` are the run's: each :data:`DISPATCHED_EVENT` of an attempt the
        records do not account (a round never recorded, or an earlier attempt of
        one recorded later) counts one round of the site's mechanism.
        """
        from accord.privacy.events import dp_sgd_event

        for record in recorded:
            for spent in record.privacy:
                site = spent.participant
                if spent.level != "record" or site not in self.accountants:
                    continue
                steps = int(spent.details.get("steps", 0))
                if steps:
                    self.accountants[site].compose(
                        dp_sgd_event(spent.noise_multiplier, spent.sampling_rate, steps)
                    )
        numbers = {record.number for record in recorded}
        for (number, site), count in _attempts(events).items():
            lost = count - 1 if number in numbers else count  # the last is recorded
            if lost <= 0 or site not in self.accountants:
                continue
            logger.warning(
                "round %d was declared to %s and lost before it was recorded: its "
                "record-level privacy spent is counted as released",
                number,
                site,
            )
            if self._mechanism(site)[1]:
                self.accountants[site].compose(self._event(site), lost)

    def _account(self, site: str) -> PrivacySpent:
        q, steps = self._mechanism(site)
        if steps:
            self.accountants[site].compose(self._event(site))
        return PrivacySpent(
            level="record",
            participant=site,
            epsilon=self.accountants[site].epsilon(self.settings.delta),
            delta=self.settings.delta,
            accountant=self.settings.accountant,
            noise_multiplier=self.noise_multiplier,
            sampling_rate=q,
            clip=self.clip,
            details={"steps": float(steps)},
        )

    def _mechanism(self, site: str) -> tuple[float, int]:
        try:
            return self.mechanisms[site]
        except KeyError:
            raise ConfigError(
                f"site {site} has no declared number of rows for record-level DP",
                key="deployment.declared_examples",
            ) from None

    def _event(self, site: str) -> DpEvent:
        from accord.privacy.events import dp_sgd_event

        q, steps = self._mechanism(site)
        return dp_sgd_event(self.noise_multiplier, q, steps)


def _attempts(events: Sequence[RunEvent]) -> dict[tuple[int, str], int]:
    """How many times each round was declared to each site.

    An unreadable event (the store was edited) is logged and counts for no
    site; the sites' own ledgers still hold what they spent.
    """
    counts: dict[tuple[int, str], int] = {}
    for event in events:
        if event.kind != DISPATCHED_EVENT or event.round is None:
            continue
        try:
            sites = parse_json(event.detail)["sites"]
            if not isinstance(sites, list):
                raise TypeError("sites is not a list")
        except (ValueError, KeyError, TypeError) as exc:
            logger.error("a %s event is unreadable (%s)", DISPATCHED_EVENT, exc)
            continue
        for site in sites:
            if isinstance(site, str):
                key = (event.round, site)
                counts[key] = counts.get(key, 0) + 1
    return counts
