"""Secure aggregation: the coordinator learns the sum of the updates, never one update.

The masking protocol of Bonawitz et al. 2017 (SecAgg) with the sparse neighbour
graph of Bell et al. 2020 (SecAgg+) for large federations, in three layers, as in
Flower: small pure crypto modules (:mod:`~accord.secagg.crypto`,
:mod:`~accord.secagg.mask`, :mod:`~accord.secagg.shamir`), the coordinator's
protocol (:class:`SecAggServer`) and the participant's step
(:class:`SecAggParticipant`), both pure state machines with no I/O. Updates enter
the ring Z_2^32 through :class:`FixedPointEncoding`; statistics that must sum
exactly (the preprocessing fit's) through :class:`ExactEncoding`.
:func:`run_local_round` runs a whole round in one process. ``docs/security.md``
states the threat model.

Needs the ``secagg`` extra (``cryptography`` and ``protobuf``).
"""

from accord.secagg.config import SecAggConfig
from accord.secagg.encoding import FixedPointEncoding
from accord.secagg.exact import ExactEncoding
from accord.secagg.graph import (
    NeighbourGraph,
    build_graph,
    check_threshold,
    safe_defaults,
)
from accord.secagg.local import LocalRun, StageTime, run_local_round
from accord.secagg.mask import MaskGenerator, RingVector
from accord.secagg.messages import Stage
from accord.secagg.participant import SecAggParticipant
from accord.secagg.server import SecAggResult, SecAggServer

__all__ = [
    "ExactEncoding",
    "FixedPointEncoding",
    "LocalRun",
    "MaskGenerator",
    "NeighbourGraph",
    "RingVector",
    "SecAggConfig",
    "SecAggParticipant",
    "SecAggResult",
    "SecAggServer",
    "Stage",
    "StageTime",
    "build_graph",
    "check_threshold",
    "run_local_round",
    "safe_defaults",
]
