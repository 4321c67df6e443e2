"""FLTrust (Cao, Fang, Liu and Gong, NDSS 2021): trust bootstrapped from a root update.

The coordinator trains the current global model on a small clean *root* dataset of
its own and uses that update ``g0`` as the reference for the round. Each update gets
the trust score ``ReLU(cos(x_i, g0))`` (an update pointing away from the reference
counts for nothing), is rescaled to ``g0``'s norm (so scaling an update up buys no
influence), and the result is the trust-weighted mean::

    sum_i TS_i (||g0|| / ||x_i||) x_i / sum_i TS_i

Example counts are not used, as in the paper: the trust score is the weight. When no
update has a positive score (or an update or the reference is zero) the round's
aggregate is zero: the model does not move. The rule needs a reference each round;
:mod:`accord.coordinator.strategy` takes it from a root-update source the coordinator
is given (in simulation, ``[strategy] root_examples`` drawn from the central test set,
see ``docs/robustness.md``), and refuses the configuration when there is none.

Norms and cosines come from the (uncentered) Gram matrix of ``[x_1 .. x_n, g0]``
(:mod:`accord.aggregation.gram`): the model is read twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from accord.aggregation.geometric_median import Vector
from accord.aggregation.gram import Matrix, gram_matrix
from accord.aggregation.mean import linear_combination
from accord.params import Params

__all__ = ["FLTrust", "fltrust", "trust_coefficients"]

logger = logging.getLogger(__name__)


def trust_coefficients(gram: Matrix) -> Vector:
    """Coefficients of FLTrust over ``[x_1 .. x_n]`` given the Gram of ``[x.., g0]``."""
    n = gram.shape[0] - 1
    norms = np.sqrt(np.maximum(np.diag(gram), 0.0))
    ref_norm = norms[n]
    coefficients = np.zeros(n)
    if ref_norm == 0:
        return coefficients
    usable = norms[:n] > 0
    cosine = np.zeros(n)
    cosine[usable] = gram[:n, n][usable] / (norms[:n][usable] * ref_norm)
    trust = np.maximum(cosine, 0.0)
    total = trust.sum()
    if total <= 0:
        return coefficients
    coefficients[usable] = trust[usable] * ref_norm / (norms[:n][usable] * total)
    return coefficients


def fltrust(
    updates: Sequence[Params],
    weights: Sequence[float],
    *,
    reference: Params,
    workers: int | None = None,
) -> Params:
    """FLTrust of ``updates`` against the root update ``reference``."""
    if len(weights) != len(updates):
        raise ValueError(f"{len(updates)} updates but {len(weights)} weights")
    gram = gram_matrix([*updates, reference], centered=False, workers=workers)
    coefficients = trust_coefficients(gram)
    logger.debug(
        "fltrust: %d of %d updates trusted", (coefficients > 0).sum(), len(gram) - 1
    )
    return linear_combination(updates, coefficients.tolist(), workers=workers)


@dataclass(frozen=True, slots=True)
class FLTrust:
    """FLTrust against :attr:`reference`, the coordinator's root update this round."""

    name: ClassVar[str] = "fltrust"
    streaming: ClassVar[bool] = False
    reference: Params | None = None
    workers: int | None = None

    def aggregate(self, updates: Sequence[Params], weights: Sequence[float]) -> Params:
        """Trust-weighted mean; ``ValueError`` if no reference was set."""
        if self.reference is None:
            raise ValueError(
                "fltrust needs the coordinator's root update for the round; give the "
                "strategy a root-update source (simulation draws one from the test "
                "set with [strategy] root_examples)"
            )
        return fltrust(updates, weights, reference=self.reference, workers=self.workers)
