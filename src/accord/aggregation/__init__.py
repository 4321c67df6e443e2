"""Aggregation: combine a round's updates, then step the global model.

Pure numpy (no torch, grpc, SQLAlchemy or typer; a test checks it). Rules are plain
functions with thin rule classes over them; server optimizers keep explicit state::

    rule = make_rule("trimmed_mean", beta=0.2)
    opt = ServerAdam(lr=0.01)
    state = opt.init(global_params)
    delta = rule.aggregate(deltas, weights)
    global_params, state = opt.apply(global_params, delta, state)
"""

from accord.aggregation.capped_mean import CappedMeanAccumulator
from accord.aggregation.dp_mean import DpMeanAccumulator
from accord.aggregation.integrity import cap_weights, check_params, l2_norm
from accord.aggregation.mean import MeanAccumulator, weighted_mean
from accord.aggregation.median import coordinate_median
from accord.aggregation.rule import (
    RULE_NAMES,
    AggregationRule,
    Mean,
    Median,
    TrimmedMean,
    make_rule,
)
from accord.aggregation.server_opt import (
    AdamState,
    ServerAdam,
    ServerOptimizer,
    ServerSGD,
    SGDState,
)
from accord.aggregation.trimmed_mean import coordinate_trimmed_mean

__all__ = [
    "RULE_NAMES",
    "AdamState",
    "AggregationRule",
    "CappedMeanAccumulator",
    "DpMeanAccumulator",
    "Mean",
    "MeanAccumulator",
    "Median",
    "SGDState",
    "ServerAdam",
    "ServerOptimizer",
    "ServerSGD",
    "TrimmedMean",
    "cap_weights",
    "check_params",
    "coordinate_median",
    "coordinate_trimmed_mean",
    "l2_norm",
    "make_rule",
    "weighted_mean",
]
