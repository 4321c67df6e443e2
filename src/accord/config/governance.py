"""The sections that judge a model before it is released: evaluation, gates, credit.

``[evaluation]`` says how the model is measured, ``[gates]`` what it must reach
before it is released, and ``[contribution]`` how each site's share of the result
is accounted for.
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
)

from accord.config.base import Section

__all__ = ["ContributionConfig", "EvaluationConfig", "GatesConfig"]


class EvaluationConfig(Section):
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


class GatesConfig(Section):
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


class ContributionConfig(Section):
    """``[contribution]``: keep what ``accord contributions RUN`` needs.

    ``keep_updates`` stores every valid update of every round, and the model the
    round started from, as safetensors files next to the checkpoints
    (``{directory}/{run}/updates/round-NNNNN/``): about ``(sites + 1) x model
    size`` of disk per round (``docs/governance.md``). Off by default.
    """

    keep_updates: bool = False
