"""Task for the COVID-19 clinics: logistic regression in plain numpy.

A task is any object with ``init_params``, ``train`` and ``predict``; this one is a
thin wrapper over accord's own, with a little L2 regularisation for the small clinics.
"""

from accord import DatasetInfo, Task
from accord.task.numpy_task import softmax_regression


def build(info: DatasetInfo, *, weight_decay: float = 0.0) -> Task:
    # Options are keyword arguments: a misspelt one in fed.toml is an error that
    # names it, not a setting silently ignored.
    return softmax_regression(info, weight_decay=float(weight_decay))
