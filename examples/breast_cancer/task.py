"""Task for breast cancer: scikit-learn's SGDClassifier with logistic loss."""

from typing import Any

from accord import DatasetInfo, Task
from accord.task.sklearn import sgd_classifier


def build(info: DatasetInfo, **options: Any) -> Task:
    return sgd_classifier(info, penalty="l2", **options)
