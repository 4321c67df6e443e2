"""The user's contract (:class:`Task`) and adapters: numpy, scikit-learn, PyTorch."""

from accord.task.protocol import Task, TaskFactory, TrainConfig, TrainResult

__all__ = ["Task", "TaskFactory", "TrainConfig", "TrainResult"]
