"""Plain multi-layer perceptron."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from genre_torch.core.models import Backbone, layers


class MLP(Backbone):
    """Linear -> [norm] -> activation -> [dropout] per hidden width, then a linear head returning logits.

    Args:
        in_features: Width of the encoded input (from the data).
        num_classes: Number of genres (from the data).
        hidden_dims: Width of each hidden layer.
        activation: relu, leaky_relu, tanh, sigmoid, gelu or silu.
        dropout: Dropout probability after each hidden layer (0 = none).
        norm: Normalisation after each hidden linear layer: batch, layer or null.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden_dims: Sequence[int] = (128, 64, 32),
        activation: str = "relu",
        dropout: float = 0.0,
        norm: str | None = None,
    ) -> None:
        super().__init__()
        layers.check_probability("dropout", dropout)
        blocks: list[nn.Module] = []
        width = in_features
        for hidden in layers.check_widths("hidden_dims", hidden_dims):
            blocks += [nn.Linear(width, hidden), layers.norm(norm, hidden), layers.activation(activation)]
            blocks += [nn.Dropout(dropout)] if dropout > 0 else []
            width = hidden
        self.body = nn.Sequential(*(m for m in blocks if not isinstance(m, nn.Identity)))
        self.head = nn.Linear(width, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer representation."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, num_classes)."""
        return self.head(self.body(x))
