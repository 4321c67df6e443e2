"""Task for churn: scikit-learn's LogisticRegression, warm-started every round."""

from typing import Any

from accord import DatasetInfo, Task
from accord.task.sklearn import logistic_regression


def build(info: DatasetInfo, **options: Any) -> Task:
    return logistic_regression(info, C=1.0, **options)
