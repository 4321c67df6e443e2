"""Task for lending club: a small numpy MLP (no torch needed)."""

from accord import DatasetInfo, Task
from accord.task.numpy_task import mlp


def build(info: DatasetInfo, *, hidden: int = 32) -> Task:
    # Options are keyword arguments: a misspelt one in fed.toml is an error.
    return mlp(info, hidden=int(hidden), weight_decay=1e-4)
