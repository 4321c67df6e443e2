"""accord: federated learning across organizations that cannot pool their data.

The public API is what ``__all__`` lists; everything else may change between releases.
"""

from accord.data.arrays import ArrayData, DatasetInfo
from accord.errors import (
    AccordError,
    ConfigError,
    DatasetError,
    MissingExtraError,
    RoundFailed,
    RunAborted,
    RunNotFound,
    StoreError,
    TaskError,
    UpdateRejected,
)
from accord.params import Params, ParamSpec, TensorSpec
from accord.task.protocol import Task, TaskFactory, TrainConfig, TrainResult

__version__ = "0.1.0"

__all__ = [
    "AccordError",
    "ArrayData",
    "ConfigError",
    "DatasetError",
    "DatasetInfo",
    "MissingExtraError",
    "ParamSpec",
    "Params",
    "RoundFailed",
    "RunAborted",
    "RunNotFound",
    "StoreError",
    "Task",
    "TaskError",
    "TaskFactory",
    "TensorSpec",
    "TrainConfig",
    "TrainResult",
    "UpdateRejected",
    "__version__",
]
