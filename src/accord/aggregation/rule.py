"""Aggregation rules: the interface the coordinator uses, and the built-in rules.

A rule combines the round's updates into one. The classes here are thin, immutable
wrappers over the pure functions (:func:`weighted_mean`, :func:`coordinate_median`,
:func:`coordinate_trimmed_mean`), carrying their options from the config.
``streaming`` tells the coordinator whether it may fold updates in as they arrive
(:meth:`Mean.accumulator`) instead of holding all of them: only the mean can, which is
also why only the mean composes with secure aggregation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from accord.aggregation.mean import MeanAccumulator, weighted_mean
from accord.aggregation.median import coordinate_median
from accord.aggregation.trimmed_mean import check_beta, coordinate_trimmed_mean
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


#: Names accepted by :func:`make_rule`.
RULE_NAMES: tuple[str, ...] = (Mean.name, Median.name, TrimmedMean.name)


def make_rule(name: str, **options: Any) -> AggregationRule:
    """Build the rule called ``name`` with ``options`` (e.g. ``beta=0.2``).

    Raises :class:`~accord.errors.ConfigError` for an unknown name (listing the known
    ones) or an option the rule does not take.
    """
    classes: dict[str, type[Mean] | type[Median] | type[TrimmedMean]] = {
        Mean.name: Mean,
        Median.name: Median,
        TrimmedMean.name: TrimmedMean,
    }
    cls = classes.get(name)
    if cls is None:
        known = ", ".join(RULE_NAMES)
        raise ConfigError(
            f"unknown aggregation rule {name!r}; choose one of: {known}", key="rule"
        )
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(
            f"rule {name!r} does not accept options {sorted(options)} ({exc})",
            key="rule",
        ) from exc
