"""TabM: a parameter-efficient ensemble of k MLPs (BatchEnsemble), after "TabM" (Gorishniy et al. 2024).

Defaults are the paper's and its `tabm` package's: k = 32 members, 3 x 512 (2 x 512 with numeric embeddings),
ReLU, dropout 0.1; the first layer's input scalings r start as random signs, or, with embeddings, as one N(0, 1)
value per member and feature (shared by the feature's embedding); every other scaling starts at 1 and all members'
biases start equal. tests/test_tabm.py checks the architecture against the `tabm` package where it is installed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from genre_torch.core.models import Backbone, layers
from genre_torch.core.models.plr import NumericEmbeddingInput


def init_scaling(k: int, width: int, how: str, chunks: Sequence[int] | None = None) -> torch.Tensor:
    """(k, width) scalings: ones, random-signs or normal; with chunks, one value per member and chunk of columns."""
    sizes = list(chunks) if chunks is not None else [1] * width
    draw = {
        "ones": lambda: torch.ones(k, len(sizes)),
        "random-signs": lambda: torch.randint(0, 2, (k, len(sizes))).float() * 2 - 1,
        "normal": lambda: torch.randn(k, len(sizes)),
    }[how]()
    return draw.repeat_interleave(torch.tensor(sizes), dim=1)


class LinearBE(nn.Module):
    """BatchEnsemble linear layer: member i computes s_i * ((r_i * x) W) + b_i with one shared W.

    Without r (r_init None) the input is not scaled; without per_member, s is absent and b is shared (TabM-mini).
    Input and output: (batch, k, width).
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        k: int,
        r_init: str | None = "ones",
        per_member: bool = True,
        chunks: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        bound = 1 / math.sqrt(d_in)
        self.weight = nn.Parameter(torch.empty(d_in, d_out).uniform_(-bound, bound))
        bias = torch.empty(d_out).uniform_(-bound, bound)  # one draw: every member's bias starts the same
        self.bias = nn.Parameter(bias.repeat(k, 1) if per_member else bias)
        self.r = nn.Parameter(init_scaling(k, d_in, r_init, chunks)) if r_init is not None else None
        self.s = nn.Parameter(torch.ones(k, d_out)) if per_member else None

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
        hidden_dims: Width of each hidden layer (None: the paper's 3 x 512, or 2 x 512 with embedding).
        activation: relu, leaky_relu, tanh, sigmoid, gelu, silu, selu or mish.
        dropout: Dropout probability after each hidden layer.
        mini: TabM-mini: the members differ only in a scaling of the input and their heads.
        embedding: PLR embeddings of the leading numeric columns, shared by the members (see plr.py).
        lite: Share the embeddings' linear layer across features (PLR(lite)); the paper's PLR has one per feature.
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
        hidden_dims: Sequence[int] | None = None,
        activation: str = "relu",
        dropout: float = 0.1,
        mini: bool = False,
        embedding: bool = False,
        lite: bool = False,
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
        width, chunks, first = in_features, None, "random-signs"
        if embedding:
            self.input = NumericEmbeddingInput(
                in_features, n_numeric, n_frequencies=n_frequencies, sigma=sigma, d_embedding=d_embedding, lite=lite
            )
            width = self.input.out_features
            n = self.input.n_numeric
            chunks, first = [d_embedding] * n + [1] * (in_features - n), "normal"  # one scaling per feature
        hidden_dims = hidden_dims if hidden_dims is not None else [512] * (2 if embedding else 3)
        blocks: list[nn.Module] = []
        for i, hidden in enumerate(layers.check_widths("hidden_dims", hidden_dims)):
            r_init = first if i == 0 else (None if mini else "ones")
            blocks += [LinearBE(width, hidden, k, r_init, per_member=not mini, chunks=chunks if i == 0 else None)]
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
