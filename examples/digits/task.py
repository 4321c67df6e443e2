"""Task for digits: your own PyTorch model, federated by accord's torch adapter."""

from typing import Any

from torch import nn

from accord import DatasetInfo
from accord.task.torch import TorchTask


class DigitsNet(nn.Module):
    """A 64-64-10 multilayer perceptron."""

    def __init__(self, n_features: int, n_classes: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(n_features, 64), nn.ReLU(), nn.Linear(64, n_classes)
        )

    def forward(self, x: Any) -> Any:
        """Class scores (logits)."""
        return self.layers(x)


def build(info: DatasetInfo, **options: Any) -> TorchTask:
    return TorchTask(lambda: DigitsNet(info.n_features, info.n_classes), **options)
