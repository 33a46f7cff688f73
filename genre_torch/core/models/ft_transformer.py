"""FT-Transformer ("Revisiting Deep Learning Models for Tabular Data", Gorishniy et al. 2021)."""

from __future__ import annotations

import math

import torch
from torch import nn

from genre_torch.core.models import Backbone, layers


class FeatureTokenizer(nn.Module):
    """One d_token vector per input column: x_j * W_j + b_j, plus a learned [CLS] token in front."""

    def __init__(self, n_features: int, d_token: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(d_token)
        self.weight = nn.Parameter(torch.empty(n_features, d_token).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_features, d_token).uniform_(-bound, bound))
        self.cls = nn.Parameter(torch.empty(1, 1, d_token).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, n_features) -> (batch, 1 + n_features, d_token)."""
        tokens = x[..., None] * self.weight + self.bias
        return torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1)


class FTTransformer(Backbone):
    """Feature tokenizer, pre-norm transformer layers, prediction from the [CLS] token.

    Every encoded column is a token (a one-hot category column too, which makes its token a learned
    embedding of that category).

    Args:
        in_features: Width of the encoded input (from the data).
        num_classes: Number of genres (from the data).
        d_token: Token width.
        n_layers: Transformer layers.
        n_heads: Attention heads (must divide d_token).
        ffn_factor: Feed-forward width as a multiple of d_token.
        attention_dropout: Dropout on attention weights.
        ffn_dropout: Dropout inside the feed-forward blocks and on residual branches.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        d_token: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        ffn_factor: float = 4 / 3,
        attention_dropout: float = 0.2,
        ffn_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        layers.check_widths("d_token, n_layers and n_heads", [d_token, n_layers, n_heads])
        layers.check_probability("attention_dropout", attention_dropout)
        layers.check_probability("ffn_dropout", ffn_dropout)
        if d_token % n_heads:
            raise layers.GenreTorchError(f"n_heads ({n_heads}) must divide d_token ({d_token})")
        self.tokenizer = FeatureTokenizer(in_features, d_token)
        block = nn.TransformerEncoderLayer(
            d_token, n_heads, max(1, int(d_token * layers.check_positive("ffn_factor", ffn_factor))),
            dropout=ffn_dropout, activation="gelu", batch_first=True, norm_first=True,
        )  # fmt: skip
        block.self_attn.dropout = attention_dropout
        self.encoder = nn.TransformerEncoder(block, n_layers, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(d_token), nn.ReLU())
        self.head = nn.Linear(d_token, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The [CLS] token after the last layer, normalised: (batch, d_token)."""
        return self.out(self.encoder(self.tokenizer(x))[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, num_classes)."""
        return self.head(self.embed(x))
