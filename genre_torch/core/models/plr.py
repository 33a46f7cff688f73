"""Periodic (PLR) numerical embeddings + MLP, after "On Embeddings for Numerical Features in Tabular Deep Learning"."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from genre_torch.core.models import Backbone, layers


class PeriodicEmbeddings(nn.Module):
    """Per numeric feature x_i: ReLU(Linear_i([cos(2 pi w_i x_i), sin(2 pi w_i x_i)])), w_i trained.

    The frequencies start from N(0, sigma^2) truncated to [-3 sigma, 3 sigma], as in the authors' rtdl-num-embeddings.

    `lite` shares the linear layer across features (the "PLR(lite)" variant). Output: (batch, n, d_embedding).
    """

    def __init__(
        self, n_features: int, n_frequencies: int = 48, sigma: float = 0.01, d_embedding: int = 24, lite: bool = False
    ) -> None:
        super().__init__()
        layers.check_widths("n_frequencies and d_embedding", [n_frequencies, d_embedding])
        sigma = layers.check_positive("sigma", sigma)
        self.frequencies = nn.Parameter(torch.empty(n_features, n_frequencies))
        nn.init.trunc_normal_(self.frequencies, 0.0, sigma, a=-3 * sigma, b=3 * sigma)
        n_linear = 1 if lite else n_features
        bound = 1 / math.sqrt(2 * n_frequencies)
        self.weight = nn.Parameter(torch.empty(n_linear, 2 * n_frequencies, d_embedding).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_linear, d_embedding).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, n_features) -> (batch, n_features, d_embedding)."""
        angle = 2 * math.pi * self.frequencies * x[..., None]
        periodic = torch.cat([angle.cos(), angle.sin()], dim=-1)
        return torch.relu(torch.einsum("bnf,nfd->bnd", periodic, self.weight.expand(x.shape[1], -1, -1)) + self.bias)


class NumericEmbeddingInput(nn.Module):
    """Embeds the first n_numeric input columns (standardised numerics), passes the rest through, flattens."""

    def __init__(self, in_features: int, n_numeric: int | None, **embedding: float | int | bool) -> None:
        super().__init__()
        self.n_numeric = in_features if n_numeric is None else min(n_numeric, in_features)
        self.embed = PeriodicEmbeddings(self.n_numeric, **embedding)  # type: ignore[arg-type]
        self.out_features = in_features - self.n_numeric + self.n_numeric * self.embed.bias.shape[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, in_features) -> (batch, out_features)."""
        return torch.cat([self.embed(x[:, : self.n_numeric]).flatten(1), x[:, self.n_numeric :]], dim=1)


class PLRMLP(Backbone):
    """PLR embeddings of the leading numeric columns, then an MLP.

    Args:
        in_features: Width of the encoded input (from the data).
        num_classes: Number of genres (from the data).
        n_numeric: How many leading input columns are numeric (None: from the data).
        n_frequencies: Frequencies per numeric feature.
        sigma: Standard deviation of the initial frequencies (a normal truncated at 3 sigma).
        d_embedding: Embedding width per numeric feature.
        lite: Share the embedding's linear layer across features (PLR(lite)).
        hidden_dims: Width of each hidden layer of the MLP.
        activation: relu, leaky_relu, tanh, sigmoid, gelu or silu.
        dropout: Dropout probability after each hidden layer.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        n_numeric: int | None = None,
        n_frequencies: int = 48,
        sigma: float = 0.01,
        d_embedding: int = 24,
        lite: bool = False,
        hidden_dims: Sequence[int] = (256, 256, 256),
        activation: str = "relu",
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        layers.check_probability("dropout", dropout)
        self.input = NumericEmbeddingInput(
            in_features, n_numeric, n_frequencies=n_frequencies, sigma=sigma, d_embedding=d_embedding, lite=lite
        )
        blocks: list[nn.Module] = []
        width = self.input.out_features
        for hidden in layers.check_widths("hidden_dims", hidden_dims):
            blocks += [nn.Linear(width, hidden), layers.activation(activation), nn.Dropout(dropout)]
            width = hidden
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(width, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer representation."""
        return self.body(self.input(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, num_classes)."""
        return self.head(self.embed(x))
