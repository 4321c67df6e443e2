"""Task for lending club: a small numpy MLP (no torch needed)."""

from typing import Any

from accord import DatasetInfo, Task
from accord.task.numpy_task import mlp


def build(info: DatasetInfo, **options: Any) -> Task:
    return mlp(info, hidden=int(options.get("hidden", 32)), weight_decay=1e-4)
