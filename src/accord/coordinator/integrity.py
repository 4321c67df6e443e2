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
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from accord.config import FedConfig
from accord.errors import UpdateRejected

__all__ = ["METRIC_RANGES", "ExampleBounds", "check_eval_report", "check_examples"]

#: Closed ranges of the metrics accord's evaluation reports. A finite value outside
#: its range, or an infinite one, is a report no real evaluation produces.
METRIC_RANGES: Mapping[str, tuple[float, float]] = {
    "accuracy": (0.0, 1.0),
    "auc": (0.0, 1.0),
    "loss": (0.0, math.inf),
}
_COUNT = "n"


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


def check_eval_report(
    metrics: Mapping[str, float],
    num_examples: int,
    participant: str,
    bounds: ExampleBounds,
) -> None:
    """Raise :class:`UpdateRejected` for a report no honest evaluation produces.

    The example count is bounded as an update's is; each metric of
    :data:`METRIC_RANGES` is NaN or within its range; ``n`` (the rows scored) is a
    whole number from 0 to the example bound.
    """
    check_examples(num_examples, participant, bounds)
    for name, value in metrics.items():
        if name == _COUNT:
            limit = bounds.bound(participant)
            if not (math.isfinite(value) and float(value).is_integer() and value >= 0):
                raise UpdateRejected(f"metric 'n' must be a whole number, got {value}")
            if value > limit:
                raise UpdateRejected(
                    f"metric 'n' = {value:.0f} is above this federation's bound of "
                    f"{limit} ({bounds.source(participant)})"
                )
            continue
        span = METRIC_RANGES.get(name)
        if span is None or math.isnan(value):
            continue
        low, high = span
        if not (low <= value <= high and math.isfinite(value)):
            raise UpdateRejected(
                f"metric {name!r} = {value} is outside its range [{low:g}, {high:g}]"
                + ("" if math.isfinite(high) else " and must be finite")
            )
