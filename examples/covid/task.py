"""Task for the COVID-19 clinics: logistic regression in plain numpy.

A task is any object with ``init_params``, ``train`` and ``predict``; this one is a
thin wrapper over accord's own, with a little L2 regularisation for the small clinics.
"""

from typing import Any

from accord import DatasetInfo, Task
from accord.task.numpy_task import softmax_regression


def build(info: DatasetInfo, **options: Any) -> Task:
    return softmax_regression(
        info, weight_decay=float(options.get("weight_decay", 0.0))
    )
