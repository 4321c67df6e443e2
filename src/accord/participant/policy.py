"""What a site agrees to train for, whatever the coordinator asks: its policy.

A site's operator decides what may leave the site, not the federation's job: with
``accord participant --require-secure-aggregation`` the site refuses to send an
update in the clear (a plain train task), and with ``--min-threshold N`` it takes
part only in secure rounds whose threshold (the fewest participants whose sum the
coordinator may learn) is at least ``N``. A minimum threshold implies secure
aggregation: a plain round has no threshold at all, and neither has a CKKS round
(the coordinator with any one participant holds the key to every update), so a
site with ``--min-threshold`` takes part in masking rounds only, while
``--require-secure-aggregation`` alone accepts both protocols. A refused task is
reported to
the coordinator as refused by the site, with the policy in its reason, and recorded
in the site log; the round goes on without the site.

Differential privacy is the site's to decide too: with ``--require-dp record`` the
site trains only tasks that declare record-level DP-SGD, and with ``--max-epsilon
E`` (at ``--delta``) it trains only while its own accountant, over its own privacy
ledger of every run it took part in, stays within ``E`` after the round (a task
without DP has no bound at all, so it is refused too). Those checks are made by
:class:`~accord.participant.privacy_guard.PrivacyGuard` from the mechanism the task
declares; nothing the coordinator sends can switch them off.

Evaluation tasks are not concerned: they send only the global model's scores.
This module is pure: :meth:`SitePolicy.refusal` sees only whether a task is
secure, by which protocol, and its threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from accord.errors import ConfigError

__all__ = ["SitePolicy"]


@dataclass(frozen=True, slots=True)
class SitePolicy:
    """The site's conditions for training; the default accepts every task."""

    require_secure_aggregation: bool = False
    min_threshold: int | None = None
    #: ``"record"``: train only tasks that declare record-level DP-SGD.
    require_dp: Literal["record"] | None = None
    #: The most epsilon this site's records may spend, over every run together.
    max_epsilon: float | None = None
    #: The delta at which the site accounts its epsilon.
    dp_delta: float = 1e-5
    #: The smallest count this site's data profile reveals, whatever the run asks
    #: (``[profile] min_count`` is raised to it, never lowered): a site's own floor.
    min_profile_count: int | None = None

    @property
    def guards_privacy(self) -> bool:
        """Whether the site checks the DP of the tasks it trains."""
        return self.require_dp is not None or self.max_epsilon is not None

    def __post_init__(self) -> None:
        if self.require_dp not in (None, "record"):
            raise ConfigError(
                f"unknown DP level {self.require_dp!r}; the site can require 'record'",
                key="--require-dp",
            )
        if self.max_epsilon is not None and not (
            math.isfinite(self.max_epsilon) and self.max_epsilon > 0
        ):
            raise ConfigError(
                f"must be a finite number > 0, not {self.max_epsilon!r}",
                key="--max-epsilon",
            )
        if not 0 < self.dp_delta < 1:
            raise ConfigError(
                f"must be in (0, 1), not {self.dp_delta!r}; a delta well below "
                "1 / (the site's records) is the usual choice",
                key="--delta",
            )
        if self.min_profile_count is not None and not (
            1 <= self.min_profile_count <= 1_000_000
        ):
            raise ConfigError(
                f"must be 1 to 1000000, not {self.min_profile_count}",
                key="--min-profile-count",
            )
        if self.min_threshold is not None and self.min_threshold < 2:
            raise ConfigError(
                f"a minimum threshold must be at least 2, not {self.min_threshold}: "
                "a sum over one participant is that participant's update",
                key="--min-threshold",
            )

    @property
    def requires_secure(self) -> bool:
        """Whether the site trains only under secure aggregation."""
        return self.require_secure_aggregation or self.min_threshold is not None

    def refusal(
        self, *, secure: bool, threshold: int | None = None, ckks: bool = False
    ) -> str | None:
        """Why the site refuses a train task (None: it accepts it).

        ``secure`` says whether the task runs under secure aggregation, ``ckks``
        whether by CKKS rather than masking, and ``threshold`` is a masking
        round's threshold.
        """
        if not secure:
            if not self.requires_secure:
                return None
            flag = (
                "--require-secure-aggregation"
                if self.require_secure_aggregation
                else f"--min-threshold {self.min_threshold}"
            )
            return (
                "site policy: this site sends updates only under secure aggregation "
                f"({flag}), and this task is a plain one"
            )
        if self.min_threshold is not None and ckks:
            return (
                "site policy: a CKKS round has no threshold (the coordinator with "
                "any one site could read every update), and this site takes part "
                f"only in rounds with a threshold of at least {self.min_threshold} "
                "(--min-threshold)"
            )
        if self.min_threshold is not None and (
            threshold is None or threshold < self.min_threshold
        ):
            return (
                f"site policy: the round's threshold {threshold} is below this "
                f"site's minimum of {self.min_threshold} (--min-threshold)"
            )
        return None
