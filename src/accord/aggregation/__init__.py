"""Aggregation: combine a round's updates, then step the global model.

Pure numpy (no torch, grpc, SQLAlchemy or typer; a test checks it). Rules are plain
functions with thin rule classes over them; server optimizers keep explicit state::

    rule = make_rule("trimmed_mean", beta=0.2)   # or "krum", "geometric_median", ...
    opt = ServerAdam(lr=0.01)
    state = opt.init(global_params)
    delta = rule.aggregate(deltas, weights)
    global_params, state = opt.apply(global_params, delta, state)
"""

from accord.aggregation.bulyan import Bulyan
from accord.aggregation.capped_mean import CappedMeanAccumulator
from accord.aggregation.centered_clip import CenteredClip
from accord.aggregation.dp_mean import DpMeanAccumulator
from accord.aggregation.fedbuff import FedBuffBuffer, staleness_weight
from accord.aggregation.fltrust import FLTrust
from accord.aggregation.geometric_median import GeometricMedian
from accord.aggregation.gram import gram_matrix
from accord.aggregation.integrity import cap_weights, check_params, l2_norm
from accord.aggregation.krum import Krum, MultiKrum, multi_krum
from accord.aggregation.mean import (
    MeanAccumulator,
    linear_combination,
    weighted_mean,
)
from accord.aggregation.median import coordinate_median
from accord.aggregation.norm_bound import NormBoundAccumulator, NormBounding
from accord.aggregation.qfedavg import QFedAvgAccumulator
from accord.aggregation.rule import (
    RULE_NAMES,
    AggregationRule,
    Mean,
    Median,
    TrimmedMean,
    make_rule,
)
from accord.aggregation.scaffold import control_step, site_control_step
from accord.aggregation.server_opt import (
    AdamState,
    ServerAdagrad,
    ServerAdam,
    ServerOptimizer,
    ServerSGD,
    ServerYogi,
    SGDState,
)
from accord.aggregation.trimmed_mean import coordinate_trimmed_mean
from accord.aggregation.weighted_order import (
    WeightedMedian,
    WeightedTrimmedMean,
    weighted_median,
    weighted_trimmed_mean,
)

__all__ = [
    "RULE_NAMES",
    "FedBuffBuffer",
    "AdamState",
    "AggregationRule",
    "Bulyan",
    "CappedMeanAccumulator",
    "DpMeanAccumulator",
    "CenteredClip",
    "FLTrust",
    "GeometricMedian",
    "Krum",
    "Mean",
    "MeanAccumulator",
    "Median",
    "MultiKrum",
    "NormBoundAccumulator",
    "NormBounding",
    "QFedAvgAccumulator",
    "SGDState",
    "ServerAdagrad",
    "ServerAdam",
    "ServerOptimizer",
    "ServerSGD",
    "ServerYogi",
    "TrimmedMean",
    "WeightedMedian",
    "WeightedTrimmedMean",
    "cap_weights",
    "check_params",
    "control_step",
    "coordinate_median",
    "coordinate_trimmed_mean",
    "gram_matrix",
    "l2_norm",
    "linear_combination",
    "make_rule",
    "multi_krum",
    "site_control_step",
    "staleness_weight",
    "weighted_mean",
    "weighted_median",
    "weighted_trimmed_mean",
]
