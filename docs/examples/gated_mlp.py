"""A new architecture in one file: an MLP whose hidden layers are gated linear units."""

from __future__ import annotations

import torch
from torch import nn

from genre_torch.core.models import Backbone


class GatedMLP(Backbone):
    """Hidden layers h = (W x) * sigmoid(V x), then a linear head.

    Args:
        in_features: Width of the encoded input (from the data).
        num_classes: Number of genres (from the data).
        width: Width of each hidden layer.
        depth: Number of hidden layers.
    """

    def __init__(self, in_features: int, num_classes: int, width: int = 64, depth: int = 2) -> None:
        super().__init__()
        sizes = [in_features] + [width] * depth
        self.layers = nn.ModuleList(nn.Linear(a, 2 * b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.head = nn.Linear(sizes[-1], num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Last hidden layer: TensorBoard's projector shows it for test songs."""
        for layer in self.layers:
            x = nn.functional.glu(layer(x), dim=-1)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, num_classes)."""
        return self.head(self.embed(x))
