"""Residual MLP (the ResNet of "Revisiting Deep Learning Models for Tabular Data")."""

from __future__ import annotations

import torch
from torch import nn

from genre_torch.core.errors import GenreTorchError
from genre_torch.core.models import Backbone, layers


class ResidualBlock(nn.Module):
    """x + Dropout(Linear(Dropout(act(Linear(norm(x))))))."""

    def __init__(self, width: int, hidden: int, activation: str, dropout: float, norm: str | None) -> None:
        super().__init__()
        self.body = nn.Sequential(
            layers.norm(norm, width),
            nn.Linear(width, hidden),
            layers.activation(activation),
            nn.Dropout(dropout),
            nn.Linear(hidden, width),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual update of x."""
        return x + self.body(x)


class ResMLP(Backbone):
    """Linear stem, `depth` residual blocks, norm + activation, linear head.

    Args:
        in_features: Width of the encoded input (from the data).
        num_classes: Number of genres (from the data).
        width: Width of the residual stream.
        depth: Number of residual blocks.
        expansion: Inner width of a block as a multiple of width.
        activation: relu, leaky_relu, tanh, sigmoid, gelu or silu.
        dropout: Dropout probability inside the blocks.
        norm: Normalisation at the start of each block: batch, layer or null.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        width: int = 256,
        depth: int = 3,
        expansion: float = 2.0,
        activation: str = "relu",
        dropout: float = 0.1,
        norm: str | None = "batch",
    ) -> None:
        super().__init__()
        layers.check_widths("width", [width])
        if depth < 0:
            raise GenreTorchError(f"depth must be 0 or more, got {depth}")
        layers.check_probability("dropout", dropout)
        hidden = max(1, int(width * layers.check_positive("expansion", expansion)))
        self.stem = nn.Linear(in_features, width)
        self.blocks = nn.Sequential(*(ResidualBlock(width, hidden, activation, dropout, norm) for _ in range(depth)))
        self.out = nn.Sequential(layers.norm(norm, width), layers.activation(activation))
        self.head = nn.Linear(width, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer representation."""
        return self.out(self.blocks(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, num_classes)."""
        return self.head(self.embed(x))
