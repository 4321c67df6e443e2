"""Contribution accounting: leave-one-out and GTG-Shapley scores of the sites.

Pure numpy. Coalition models are rebuilt from a run's kept round updates
(:mod:`~accord.contribution.game`), scored per round
(:mod:`~accord.contribution.shapley`) and summed over the run
(:mod:`~accord.contribution.accounting`). Reading the kept updates from a store and
evaluating models on the sites' holdouts is the caller's job.
"""

from accord.contribution.accounting import (
    ContributionReport,
    Method,
    SiteScore,
    account,
)
from accord.contribution.game import Coalition, RoundGame, RoundUpdates, Value
from accord.contribution.shapley import RoundScores, leave_one_out, shapley

__all__ = [
    "Coalition",
    "ContributionReport",
    "Method",
    "RoundGame",
    "RoundScores",
    "RoundUpdates",
    "SiteScore",
    "Value",
    "account",
    "leave_one_out",
    "shapley",
]
