"""A backbone with its own parameter groups: the head learns faster, biases get no weight decay."""

from __future__ import annotations

import torch
from torch import nn

from genre_torch.core.models import Backbone


class HeadLRMLP(Backbone):
    """One hidden ReLU layer; parameter_groups() gives the head `head_lr_factor` times the optimiser's lr.

    Args:
        in_features: Width of the encoded input (from the data).
        num_classes: Number of genres (from the data).
        width: Width of the hidden layer.
        head_lr_factor: Multiplies --optimizer.lr for the head.
    """

    def __init__(self, in_features: int, num_classes: int, width: int = 64, head_lr_factor: float = 10.0) -> None:
        super().__init__()
        self.hidden, self.head = nn.Linear(in_features, width), nn.Linear(width, num_classes)
        self.head_lr_factor = head_lr_factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.hidden(x)))

    def parameter_groups(self) -> list[dict]:
        """Every parameter once: lr_factor / wd_factor multiply the optimiser's lr / weight_decay."""
        return [
            {"params": [self.hidden.weight]},
            {"params": [self.head.weight], "lr_factor": self.head_lr_factor},
            {"params": [self.hidden.bias, self.head.bias], "wd_factor": 0.0},
        ]
