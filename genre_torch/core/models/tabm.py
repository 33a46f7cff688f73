"""TabM-style parameter-efficient ensemble (BatchEnsemble adapters, k heads), after "TabM" (Gorishniy et al. 2024)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from genre_torch.core.models import Backbone, layers
from genre_torch.core.models.plr import NumericEmbeddingInput


class LinearBE(nn.Module):
    """BatchEnsemble linear layer: member i computes s_i * (W (r_i * x)) + b_i with one shared W."""

    def __init__(self, d_in: int, d_out: int, k: int, adapters: bool = True, random_signs: bool = False) -> None:
        super().__init__()
        bound = 1 / math.sqrt(d_in)
        self.weight = nn.Parameter(torch.empty(d_in, d_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(k, d_out).uniform_(-bound, bound))
        r = torch.randint(0, 2, (k, d_in)).float() * 2 - 1 if random_signs else torch.ones(k, d_in)
        self.r = nn.Parameter(r) if adapters else None
        self.s = nn.Parameter(torch.ones(k, d_out)) if adapters else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, k, d_in) -> (batch, k, d_out)."""
        x = x * self.r if self.r is not None else x
        x = x @ self.weight
        return (x * self.s if self.s is not None else x) + self.bias


class TabM(Backbone):
    """k ensemble members sharing most weights (BatchEnsemble); forward returns log of the mean member probability.

    forward_members(x) gives the (batch, k, classes) logits: GenreClassifier trains every member with its own loss.

    Args:
        in_features: Width of the encoded input (from the data).
        num_classes: Number of genres (from the data).
        k: Number of ensemble members.
        hidden_dims: Width of each hidden layer.
        activation: relu, leaky_relu, tanh, sigmoid, gelu or silu.
        dropout: Dropout probability after each hidden layer.
        mini: Adapters only in the first layer (TabM-mini).
        embedding: Shared PLR(lite) embeddings of the leading numeric columns (see plr.py).
        n_numeric: How many leading input columns are numeric (None: from the data).
        n_frequencies: Frequencies per numeric feature (with embedding).
        sigma: Standard deviation of the initial frequencies (with embedding).
        d_embedding: Embedding width per numeric feature (with embedding).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        k: int = 32,
        hidden_dims: Sequence[int] = (256, 256, 256),
        activation: str = "relu",
        dropout: float = 0.1,
        mini: bool = False,
        embedding: bool = False,
        n_numeric: int | None = None,
        n_frequencies: int = 48,
        sigma: float = 0.01,
        d_embedding: int = 16,
    ) -> None:
        super().__init__()
        layers.check_widths("k", [k])
        layers.check_probability("dropout", dropout)
        self.k = k
        self.input: nn.Module = nn.Identity()
        width = in_features
        if embedding:
            self.input = NumericEmbeddingInput(
                in_features, n_numeric, n_frequencies=n_frequencies, sigma=sigma, d_embedding=d_embedding, lite=True
            )
            width = self.input.out_features
        blocks: list[nn.Module] = []
        for i, hidden in enumerate(layers.check_widths("hidden_dims", hidden_dims)):
            blocks += [LinearBE(width, hidden, k, adapters=i == 0 or not mini, random_signs=i == 0)]
            blocks += [layers.activation(activation), nn.Dropout(dropout)]
            width = hidden
        self.body = nn.Sequential(*blocks)
        bound = 1 / math.sqrt(width)
        self.head_weight = nn.Parameter(torch.empty(k, width, num_classes).uniform_(-bound, bound))
        self.head_bias = nn.Parameter(torch.empty(k, num_classes).uniform_(-bound, bound))

    def forward_members(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every member: (batch, k, num_classes)."""
        h = self.input(x)[:, None].expand(-1, self.k, -1)
        h = self.body(h)
        return torch.einsum("bkd,kdc->bkc", h, self.head_weight) + self.head_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log of the mean member probability (valid logits) of shape (batch, num_classes)."""
        return F.log_softmax(self.forward_members(x), dim=-1).logsumexp(dim=1) - math.log(self.k)
