"""What a site may claim: example counts within bounds, metrics within their range.

A participant's weight in a plain round is the example count it claims, and its
federated metrics are weighted the same way, so an unbounded claim lets one site
decide the model or the reported score (``num_examples = 2**63 - 1`` did). Every
claim is bounded by :class:`ExampleBounds`: the federation-wide ``[strategy]
max_examples`` and, where the operator recorded what a site declared at enrolment,
``[deployment] declared_examples``.

Refuse, not cap. Secure aggregation caps a site's weight at ``max_examples``
because there the *site* computes its weight and the coordinator cannot see the
count; an honest site with more examples is simply counted as ``max_examples``. In
a plain round the coordinator sees the claim, and a claim above the federation's
bound is either a lie or a misconfiguration that the operator should hear about:
folding it, even capped, would give a lying site's update the largest weight the
round allows. So it is refused, with a reason the site can read, and recorded; the
bound is the same in both paths, so no site ever weighs more than ``max_examples``.
Evaluation reports are held to the same bound, and their metric values to their
range (:data:`METRIC_RANGES`); NaN stays allowed, as "undefined here" (an AUC on a
holdout with one class), and is left out of the federated mean as before.

Huge but finite updates (:func:`outliers`). An absolute norm bound (``[strategy]
max_update_norm``) depends on the model, so it is off by default; without any
bound, one site's update of norm 1e30 decides the mean (or overflows it and fails
the round, every round). So by default an update whose L2 norm is more than
``[strategy] max_norm_ratio`` (10) times the median norm of the round's valid
updates is refused. The median of at least :data:`MIN_OUTLIER_UPDATES` norms is
set by the honest majority, whatever one site sends; honest updates of one round
differ in norm by far less than 10x (they start from the same model and train
alike), so an honest round is not affected. The judgement needs every norm of the
round, so a round under the rule holds its updates until the last one is in
(:class:`~accord.coordinator.round.Round`); it is made on the set of updates, not
on the order they arrived, so the model stays the same however they raced.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from accord.config import FedConfig
from accord.errors import UpdateRejected
from accord.evaluation.group_sums import is_count_metric
from accord.records import metric_name_problem

__all__ = [
    "METRIC_RANGES",
    "MIN_OUTLIER_UPDATES",
    "ExampleBounds",
    "check_eval_report",
    "check_examples",
    "check_metric_names",
    "outliers",
]

#: Closed ranges of the metrics accord's evaluation reports. A finite value outside
#: its range, or an infinite one, is a report no real evaluation produces.
METRIC_RANGES: Mapping[str, tuple[float, float]] = {
    "accuracy": (0.0, 1.0),
    "auc": (0.0, 1.0),
    "loss": (0.0, math.inf),
}
_COUNT = "n"
#: The prefix of a site's personalized-model metrics
#: (:mod:`accord.task.personalization`).
_PERSONAL = "personalized_"
#: The fewest valid updates a round needs before :func:`outliers` judges any: with
#: fewer, a median says nothing about which one is out of line.
MIN_OUTLIER_UPDATES = 3


@dataclass(frozen=True, slots=True)
class ExampleBounds:
    """The most examples each participant may claim in one message."""

    default: int
    declared: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, config: FedConfig) -> ExampleBounds:
        """The bounds ``config`` sets (``[strategy]`` and ``[deployment]``)."""
        return cls(
            config.strategy.max_examples, dict(config.deployment.declared_examples)
        )

    def bound(self, participant: str) -> int:
        """``participant``'s bound: the smaller of its declared one and the default."""
        return min(self.default, self.declared.get(participant, self.default))

    def source(self, participant: str) -> str:
        """Which setting sets ``participant``'s bound (for messages)."""
        declared = self.declared.get(participant)
        if declared is not None and declared < self.default:
            return f"[deployment] declared_examples for {participant!r}"
        return "[strategy] max_examples"


def check_examples(num_examples: int, participant: str, bounds: ExampleBounds) -> None:
    """Raise :class:`UpdateRejected` unless ``1 <= num_examples <= bound``."""
    if num_examples <= 0:
        raise UpdateRejected(f"num_examples must be positive, got {num_examples}")
    limit = bounds.bound(participant)
    if num_examples > limit:
        raise UpdateRejected(
            f"num_examples {num_examples} is above this federation's bound of {limit} "
            f"({bounds.source(participant)}); send the number of examples you "
            "trained or evaluated on, or ask the coordinator's operator to raise "
            "the bound if you really hold more"
        )


def check_metric_names(metrics: Mapping[str, float]) -> None:
    """Raise :class:`UpdateRejected` for a metric name the round could not record."""
    for name in metrics:
        problem = metric_name_problem(name)
        if problem is not None:
            raise UpdateRejected(problem)


def check_eval_report(
    metrics: Mapping[str, float],
    num_examples: int,
    participant: str,
    bounds: ExampleBounds,
) -> None:
    """Raise :class:`UpdateRejected` for a report no honest evaluation produces.

    The example count is bounded as an update's is; each metric of
    :data:`METRIC_RANGES` is NaN or within its range; ``n`` (the rows scored) and
    each per-group confusion count (``fairness:GROUP:tp``, ...) is a whole number
    from 0 to the example bound.
    """
    check_examples(num_examples, participant, bounds)
    check_metric_names(metrics)
    for name, value in metrics.items():
        if name == _COUNT or is_count_metric(name):
            limit = bounds.bound(participant)
            if not (math.isfinite(value) and float(value).is_integer() and value >= 0):
                raise UpdateRejected(
                    f"metric {name!r} must be a whole number, got {value}"
                )
            if value > limit:
                raise UpdateRejected(
                    f"metric {name!r} = {value:.0f} is above this federation's "
                    f"bound of {limit} ({bounds.source(participant)})"
                )
            continue
        # A personalized model's metric (personalized_accuracy) has its twin's range.
        span = METRIC_RANGES.get(name.removeprefix(_PERSONAL))
        if span is None or math.isnan(value):
            continue
        low, high = span
        if not (low <= value <= high and math.isfinite(value)):
            raise UpdateRejected(
                f"metric {name!r} = {value} is outside its range [{low:g}, {high:g}]"
                + ("" if math.isfinite(high) else " and must be finite")
            )


def outliers(
    norms: Mapping[str, float], ratio: float, *, order: Sequence[str]
) -> dict[str, str]:
    """The participants whose update norm is above ``ratio`` x the median, and why.

    ``norms`` are the L2 norms of a round's valid updates by participant; ``order``
    (the round's selection) fixes the order of the answer. Nothing is judged with
    ``ratio`` 0 (the rule is off) or fewer than :data:`MIN_OUTLIER_UPDATES` norms.
    A median of 0 (most updates are zero) refuses every non-zero update.
    """
    if ratio <= 0 or len(norms) < MIN_OUTLIER_UPDATES:
        return {}
    median = statistics.median(norms.values())
    bound = ratio * median
    return {
        p: (
            f"the update's L2 norm is {norms[p]:.6g}, more than {ratio:g} times the "
            f"median norm {median:.6g} of this round's {len(norms)} valid updates "
            "([strategy] max_norm_ratio); check the local training (a diverged "
            "run, a learning rate too high, scaled data) before sending again"
        )
        for p in order
        if p in norms and not norms[p] <= bound
    }
