"""Aggregation rules: the interface the coordinator uses, and the registry of rules.

A rule combines the round's updates into one. The classes are thin, immutable
wrappers over pure functions (:func:`weighted_mean`, :func:`coordinate_median`,
:func:`coordinate_trimmed_mean`, and the robust rules in their own modules: Krum and
Multi-Krum, Bulyan, the geometric median, centered clipping, FLTrust, the
weight-aware median and trimmed mean, norm bounding), carrying their options from
the config. ``streaming`` tells the coordinator whether it may fold updates in as
they arrive instead of holding all of them: the mean and norm bounding can, which is
also why only they could compose with secure aggregation. ``docs/robustness.md``
says what each rule assumes and stops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from accord.aggregation.bulyan import Bulyan
from accord.aggregation.centered_clip import CenteredClip
from accord.aggregation.fltrust import FLTrust
from accord.aggregation.geometric_median import GeometricMedian
from accord.aggregation.krum import Krum, MultiKrum
from accord.aggregation.mean import MeanAccumulator, weighted_mean
from accord.aggregation.median import coordinate_median
from accord.aggregation.norm_bound import NormBounding
from accord.aggregation.trimmed_mean import check_beta, coordinate_trimmed_mean
from accord.aggregation.weighted_order import WeightedMedian, WeightedTrimmedMean
from accord.errors import ConfigError
from accord.params import Params, ParamSpec

__all__ = [
    "RULE_NAMES",
    "AggregationRule",
    "Mean",
    "Median",
    "TrimmedMean",
    "make_rule",
]


class AggregationRule(Protocol):
    """Combines a round's updates (with their weights) into one update."""

    @property
    def name(self) -> str:
        """The rule's name in configuration files."""
        ...

    @property
    def streaming(self) -> bool:
        """True if updates can be folded in one at a time (O(model) memory)."""
        ...

    def aggregate(self, updates: Sequence[Params], weights: Sequence[float]) -> Params:
        """Combine ``updates``; ``weights`` are their example counts or similar."""
        ...


def _check_weight_count(updates: Sequence[Params], weights: Sequence[float]) -> None:
    if len(weights) != len(updates):
        raise ValueError(f"{len(updates)} updates but {len(weights)} weights")


@dataclass(frozen=True, slots=True)
class Mean:
    """Weighted mean (FedAvg); streaming."""

    name: ClassVar[str] = "mean"
    streaming: ClassVar[bool] = True
    workers: int | None = None

    def aggregate(self, updates: Sequence[Params], weights: Sequence[float]) -> Params:
        """``sum(w_i x_i) / sum(w_i)`` per coordinate."""
        return weighted_mean(updates, weights, workers=self.workers)

    def accumulator(self, spec: ParamSpec) -> MeanAccumulator:
        """A streaming accumulator giving the same result as :meth:`aggregate`."""
        return MeanAccumulator(spec, workers=self.workers)


@dataclass(frozen=True, slots=True)
class Median:
    """Coordinate-wise median; unweighted (weights are checked, then ignored)."""

    name: ClassVar[str] = "median"
    streaming: ClassVar[bool] = False
    workers: int | None = None

    def aggregate(self, updates: Sequence[Params], weights: Sequence[float]) -> Params:
        """Median of each coordinate across ``updates``."""
        _check_weight_count(updates, weights)
        return coordinate_median(updates, workers=self.workers)


@dataclass(frozen=True, slots=True)
class TrimmedMean:
    """Coordinate-wise mean after cutting ``floor(beta n)`` per end; unweighted."""

    name: ClassVar[str] = "trimmed_mean"
    streaming: ClassVar[bool] = False
    beta: float = 0.1
    workers: int | None = None

    def __post_init__(self) -> None:
        check_beta(self.beta)

    def aggregate(self, updates: Sequence[Params], weights: Sequence[float]) -> Params:
        """Trimmed mean of each coordinate across ``updates``."""
        _check_weight_count(updates, weights)
        return coordinate_trimmed_mean(updates, self.beta, workers=self.workers)


_RULES: tuple[type[AggregationRule], ...] = (
    Mean,
    Median,
    TrimmedMean,
    WeightedMedian,
    WeightedTrimmedMean,
    Krum,
    MultiKrum,
    Bulyan,
    GeometricMedian,
    CenteredClip,
    FLTrust,
    NormBounding,
)

#: Names accepted by :func:`make_rule`.
RULE_NAMES: tuple[str, ...] = tuple(str(cls.name) for cls in _RULES)


def make_rule(name: str, **options: Any) -> AggregationRule:
    """Build the rule called ``name`` with ``options`` (e.g. ``beta=0.2``).

    Raises :class:`~accord.errors.ConfigError` for an unknown name (listing the known
    ones), an option the rule does not take or a missing one it needs.
    """
    classes = {str(cls.name): cls for cls in _RULES}
    cls = classes.get(name)
    if cls is None:
        known = ", ".join(RULE_NAMES)
        raise ConfigError(
            f"unknown aggregation rule {name!r}; choose one of: {known}", key="rule"
        )
    try:
        rule: AggregationRule = cls(**options)
    except TypeError as exc:
        raise ConfigError(
            f"rule {name!r} does not accept options {sorted(options)}, or lacks "
            f"one it needs ({exc})",
            key="rule",
        ) from exc
    return rule
