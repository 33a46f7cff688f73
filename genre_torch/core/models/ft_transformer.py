"""FT-Transformer ("Revisiting Deep Learning Models for Tabular Data", Gorishniy et al. 2021).

The same function as the authors' reference (the `rtdl_revisiting_models` package, tests/test_ft_transformer.py
checks it weight for weight): ReGLU feed-forward blocks, pre-normalisation except before the first block's
attention, attention / feed-forward / residual dropout as separate settings, a [CLS] token, and a head of
LayerNorm -> ReLU -> Linear on it. The one difference is the input: every encoded column is a token of its own
(x_j * W_j + b_j), a one-hot category column too, which makes its token a learned embedding of that category.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genre_torch.core.models import Backbone, layers


class FeatureTokenizer(nn.Module):
    """One d_token vector per input column: x_j * W_j + b_j, plus a learned [CLS] token in front."""

    def __init__(self, n_features: int, d_token: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(d_token)
        self.weight = nn.Parameter(torch.empty(n_features, d_token).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_features, d_token).uniform_(-bound, bound))
        self.cls = nn.Parameter(torch.empty(d_token).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, n_features) -> (batch, 1 + n_features, d_token)."""
        tokens = x[..., None] * self.weight + self.bias
        return torch.cat([self.cls.expand(len(x), 1, -1), tokens], dim=1)


class MultiheadAttention(nn.Module):
    """Scaled dot-product attention with query, key, value and (for several heads) output projections, zero biases."""

    def __init__(self, d: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.W_q, self.W_k, self.W_v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.W_out = nn.Linear(d, d) if n_heads > 1 else None
        for linear in [self.W_q, self.W_k, self.W_v, self.W_out]:
            if linear is not None:
                nn.init.zeros_(linear.bias)
        self.dropout = nn.Dropout(dropout)
        self.n_heads = n_heads

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, tokens, d) -> (batch, heads, tokens, d / heads)."""
        return x.unflatten(-1, (self.n_heads, -1)).transpose(1, 2)

    def forward(self, x_q: torch.Tensor, x_kv: torch.Tensor) -> torch.Tensor:
        """Attention of the x_q tokens over the x_kv tokens: (batch, queries, d)."""
        q, k, v = self._heads(self.W_q(x_q)), self._heads(self.W_k(x_kv)), self._heads(self.W_v(x_kv))
        probs = self.dropout(F.softmax(q @ k.transpose(-1, -2) / math.sqrt(k.shape[-1]), dim=-1))
        x = (probs @ v).transpose(1, 2).flatten(2)
        return self.W_out(x) if self.W_out is not None else x


class ReGLU(nn.Module):
    """a * relu(b) for the two halves (a, b) of the last dimension."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., 2 h) -> (..., h)."""
        a, b = x.chunk(2, dim=-1)
        return a * F.relu(b)


class Block(nn.Module):
    """x + Dropout(Attention(Norm(x))), then x + Dropout(FFN(Norm(x))); no attention norm in the first block."""

    def __init__(
        self, d: int, n_heads: int, d_hidden: int, first: bool, attention_dropout: float, ffn_dropout: float,
        residual_dropout: float,
    ) -> None:  # fmt: skip
        super().__init__()
        self.attention_norm = nn.Identity() if first else nn.LayerNorm(d)
        self.attention = MultiheadAttention(d, n_heads, attention_dropout)
        self.ffn_norm = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, 2 * d_hidden), ReGLU(), nn.Dropout(ffn_dropout), nn.Linear(d_hidden, d))
        self.residual_dropout = nn.Dropout(residual_dropout)

    def forward(self, x: torch.Tensor, cls_only: bool = False) -> torch.Tensor:
        """(batch, tokens, d) -> the same, or (batch, 1, d) for the [CLS] token alone (the last block)."""
        h = self.attention_norm(x)
        x = (x[:, :1] if cls_only else x) + self.residual_dropout(self.attention(h[:, :1] if cls_only else h, h))
        return x + self.residual_dropout(self.ffn(self.ffn_norm(x)))


class FTTransformer(Backbone):
    """Feature tokenizer, transformer blocks, prediction from the [CLS] token (the paper's architecture).

    Defaults: the paper's default 3-block configuration. Its optimiser is AdamW (lr 1e-4, weight_decay 1e-5) without
    weight decay for the tokenizer, the normalisations and the biases, which `parameter_groups` declares.

    Args:
        in_features: Width of the encoded input (from the data).
        num_classes: Number of genres (from the data).
        d_token: Token width.
        n_layers: Transformer blocks.
        n_heads: Attention heads (must divide d_token).
        ffn_factor: Hidden width of the ReGLU feed-forward blocks as a multiple of d_token.
        attention_dropout: Dropout on the attention probabilities.
        ffn_dropout: Dropout inside the feed-forward blocks (after ReGLU).
        residual_dropout: Dropout on every residual branch (attention and feed-forward outputs).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        d_token: int = 192,
        n_layers: int = 3,
        n_heads: int = 8,
        ffn_factor: float = 4 / 3,
        attention_dropout: float = 0.2,
        ffn_dropout: float = 0.1,
        residual_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers.check_widths("d_token, n_layers and n_heads", [d_token, n_layers, n_heads])
        for name, p in [("attention", attention_dropout), ("ffn", ffn_dropout), ("residual", residual_dropout)]:
            layers.check_probability(f"{name}_dropout", p)
        if d_token % n_heads:
            raise layers.GenreTorchError(f"n_heads ({n_heads}) must divide d_token ({d_token})")
        d_hidden = int(d_token * layers.check_positive("ffn_factor", ffn_factor))
        if d_hidden < 1:
            raise layers.GenreTorchError(f"ffn_factor ({ffn_factor}) times d_token ({d_token}) must be at least 1")
        self.tokenizer = FeatureTokenizer(in_features, d_token)
        dropouts = (attention_dropout, ffn_dropout, residual_dropout)
        self.blocks = nn.ModuleList(Block(d_token, n_heads, d_hidden, i == 0, *dropouts) for i in range(n_layers))
        self.out = nn.Sequential(nn.LayerNorm(d_token), nn.ReLU())
        self.head = nn.Linear(d_token, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The [CLS] token after the last block, normalised: (batch, d_token)."""
        h = self.tokenizer(x)
        for i, block in enumerate(self.blocks):
            h = block(h, cls_only=i == len(self.blocks) - 1)  # only [CLS] is read after the last block
        return self.out(h[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, num_classes)."""
        return self.head(self.embed(x))

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The reference's groups: no weight decay for the tokenizer, the blocks' normalisations and every bias."""
        no_decay = {id(p) for p in self.tokenizer.parameters()}
        no_decay |= {id(p) for m in self.blocks.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
        no_decay |= {id(p) for name, p in self.named_parameters() if name.endswith(".bias")}
        return [
            {"params": [p for p in self.parameters() if id(p) not in no_decay]},
            {"params": [p for p in self.parameters() if id(p) in no_decay], "wd_factor": 0.0},
        ]
