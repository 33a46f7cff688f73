"""RealMLP-style MLP, after "Better by Default: Strong Pre-Tuned MLPs and Boosted Trees on Tabular Data" (2024).

Every part of the recipe is a switch, so that a benchmark can show what each adds: smooth clipping of the
standardised numerics, PBLD numeric embeddings, a learnable front scale, the NTK parametrisation, a parametric
activation, data-dependent initialisation, and per-parameter learning-rate factors (declared through
`parameter_groups`, which GenreClassifier's optimiser reads).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from genre_torch.core.errors import GenreTorchError
from genre_torch.core.models import Backbone, layers


def smooth_clip(x: torch.Tensor) -> torch.Tensor:
    """x / sqrt(1 + (x/3)^2): about x near 0, bounded to (-3, 3), smooth and monotone."""
    return x / torch.sqrt(1 + (x / 3) ** 2)


class PBLDEmbeddings(nn.Module):
    """Per numeric feature x_i: [Linear_i(cos(2 pi w_i x_i + b_i)), x_i] (periodic, bias, linear, densenet).

    w_i ~ N(0, sigma^2) and the phases b_i ~ U(-pi, pi) are trained. Output: (batch, n_features * d_embedding).
    """

    def __init__(self, n_features: int, n_frequencies: int = 16, d_embedding: int = 4, sigma: float = 0.1) -> None:
        super().__init__()
        layers.check_widths("n_frequencies and d_embedding", [n_frequencies, d_embedding])
        if d_embedding < 2:
            raise GenreTorchError(f"d_embedding must be at least 2 (the raw value is one of them), got {d_embedding}")
        self.frequencies = nn.Parameter(torch.randn(n_features, n_frequencies) * layers.check_positive("sigma", sigma))
        self.phases = nn.Parameter(torch.empty(n_features, n_frequencies).uniform_(-math.pi, math.pi))
        bound = 1 / math.sqrt(n_frequencies)
        self.weight = nn.Parameter(torch.empty(n_features, n_frequencies, d_embedding - 1).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_features, d_embedding - 1).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, n_features) -> (batch, n_features * d_embedding)."""
        periodic = torch.cos(2 * math.pi * x[..., None] * self.frequencies + self.phases)
        linear = torch.einsum("bnf,nfd->bnd", periodic, self.weight) + self.bias
        return torch.cat([linear, x[..., None]], dim=-1).flatten(1)


class NumericInput(nn.Module):
    """The first n_numeric columns [smooth-clipped] [PBLD-embedded], the rest passed through; flat output."""

    def __init__(self, in_features: int, n_numeric: int | None, clip: bool, pbld: dict[str, Any] | None) -> None:
        super().__init__()
        self.n_numeric = in_features if n_numeric is None else min(n_numeric, in_features)
        self.clip = clip
        self.embedding = PBLDEmbeddings(self.n_numeric, **pbld) if pbld is not None else None
        d = pbld["d_embedding"] if pbld is not None else 1
        self.out_features = in_features - self.n_numeric + self.n_numeric * d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, in_features) -> (batch, out_features)."""
        numeric, rest = x[:, : self.n_numeric], x[:, self.n_numeric :]
        numeric = smooth_clip(numeric) if self.clip else numeric
        return torch.cat([self.embedding(numeric) if self.embedding is not None else numeric, rest], dim=1)


class ScaledLinear(nn.Module):
    """x W m + b. NTK parametrisation (ntk): W ~ N(0, 1) and m = 1/sqrt(d_in); otherwise torch's Linear init, m = 1.

    `initialize(x)` (data-dependent): W rescaled to unit output std on the batch x, and b set to minus a random
    convex combination of 5 of the batch's outputs per unit, so that the activation's kink lies among the data.
    """

    def __init__(self, d_in: int, d_out: int, ntk: bool) -> None:
        super().__init__()
        self.multiplier = 1 / math.sqrt(d_in) if ntk else 1.0
        bound = 1 / math.sqrt(d_in)
        weight = torch.randn(d_in, d_out) if ntk else torch.empty(d_in, d_out).uniform_(-bound, bound)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(d_out) if ntk else torch.empty(d_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, d_in) -> (batch, d_out)."""
        return x @ (self.weight * self.multiplier) + self.bias

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Data-dependent initialisation on a training batch x (see the class docstring)."""
        out = x @ (self.weight * self.multiplier)
        std = out.std(0, correction=0)
        self.weight.div_(torch.where(std > 1e-6, std, torch.ones_like(std)))
        out = x @ (self.weight * self.multiplier)
        picks = torch.randint(0, len(x), (out.shape[1], 5), device=x.device)
        weights = torch.empty(out.shape[1], 5, device=x.device).exponential_()
        chosen = out.T.gather(1, picks)
        self.bias.copy_(-(chosen * weights).sum(1) / weights.sum(1))


class ParametricActivation(nn.Module):
    """f(x), or x + a * (f(x) - x) with one learnable a per unit, starting at 1 (parametric)."""

    def __init__(self, name: str, width: int, parametric: bool) -> None:
        super().__init__()
        self.f = layers.activation(name)
        self.weight = nn.Parameter(torch.ones(width)) if parametric else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Elementwise activation."""
        y = self.f(x)
        return y if self.weight is None else x + (y - x) * self.weight


class FrontScale(nn.Module):
    """A learnable scale per input column, starting at 1 (a soft feature selection)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x * scale."""
        return x * self.weight


class RealMLP(Backbone):
    """RealMLP's recipe on the standardised input: [smooth clip] -> [PBLD] -> [front scale] -> MLP -> linear head.

    The learning-rate factors multiply --optimizer.lr (and --optimizer.weight_decay, except for biases, which get none)
    for their parameters; RealMLP's own training recipe is in configs/music_genre_audio_realmlp.yaml.

    Args:
        in_features: Width of the encoded input (from the data).
        num_classes: Number of genres (from the data).
        n_numeric: How many leading input columns are numeric (None: from the data).
        hidden_dims: Width of each hidden layer.
        activation: relu, leaky_relu, tanh, sigmoid, gelu, silu, selu or mish.
        parametric_activation: Learn a per-unit mix x + a * (f(x) - x) (a starts at 1).
        dropout: Dropout probability after each hidden layer.
        smooth_clip: Smoothly clip the numeric columns to (-3, 3) with x / sqrt(1 + (x/3)^2).
        embedding: PBLD embeddings of the numeric columns (else their value as it is).
        n_frequencies: Frequencies per numeric feature (with embedding).
        d_embedding: Embedding width per numeric feature, the raw value included (with embedding).
        sigma: Standard deviation of the initial frequencies (with embedding).
        front_scale: A learnable scale per MLP input column.
        ntk: NTK parametrisation of the linear layers (weights N(0, 1), outputs divided by sqrt(fan-in)).
        data_init: Initialise the linear layers on the first training batch (unit output std, biases among the data).
        scale_lr_factor: Learning-rate factor of the front scale.
        bias_lr_factor: Learning-rate factor of the linear layers' biases.
        embedding_lr_factor: Learning-rate factor of the embeddings.
        activation_lr_factor: Learning-rate factor of the parametric activations.
        betas: Adam's (beta1, beta2) for this backbone's parameters.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        n_numeric: int | None = None,
        hidden_dims: Sequence[int] = (256, 256, 256),
        activation: str = "selu",
        parametric_activation: bool = True,
        dropout: float = 0.15,
        smooth_clip: bool = True,
        embedding: bool = True,
        n_frequencies: int = 16,
        d_embedding: int = 4,
        sigma: float = 0.1,
        front_scale: bool = True,
        ntk: bool = True,
        data_init: bool = True,
        scale_lr_factor: float = 6.0,
        bias_lr_factor: float = 0.1,
        embedding_lr_factor: float = 0.1,
        activation_lr_factor: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.95),
    ) -> None:
        super().__init__()
        layers.check_probability("dropout", dropout)
        factors = [scale_lr_factor, bias_lr_factor, embedding_lr_factor, activation_lr_factor]
        for name, value in zip(["scale", "bias", "embedding", "activation"], factors, strict=True):
            layers.check_positive(f"{name}_lr_factor", value)
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise GenreTorchError(f"betas must be two numbers in [0, 1), got {list(betas)}")
        self.factors = {
            FrontScale: scale_lr_factor,
            PBLDEmbeddings: embedding_lr_factor,
            ParametricActivation: activation_lr_factor,
        }
        self.bias_lr_factor, self.betas = bias_lr_factor, tuple(betas)
        pbld = {"n_frequencies": n_frequencies, "d_embedding": d_embedding, "sigma": sigma} if embedding else None
        self.input = NumericInput(in_features, n_numeric, smooth_clip, pbld)
        width = self.input.out_features
        self.scale = FrontScale(width) if front_scale else None
        blocks: list[nn.Module] = []
        for hidden in layers.check_widths("hidden_dims", hidden_dims):
            act = ParametricActivation(activation, hidden, parametric_activation)
            blocks.append(nn.Sequential(ScaledLinear(width, hidden, ntk), act, nn.Dropout(dropout)))
            width = hidden
        self.blocks = nn.ModuleList(blocks)
        self.head = ScaledLinear(width, num_classes, ntk)
        # saved with the weights: a resumed or reloaded model is never initialised again
        self.register_buffer("initialized", torch.tensor(not data_init))
        self._ready, self._initializing = not data_init, False

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Last hidden layer's representation."""
        h = self.input(x)
        h = self.scale(h) if self.scale is not None else h
        for block in self.blocks:
            if self._initializing:
                block[0].initialize(h)
            h = block(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, num_classes); the first training batch initialises the layers (data_init)."""
        if self.training and not self._ready:
            self._initialize(x)
        return self.head(self.embed(x))

    def _initialize(self, x: torch.Tensor) -> None:
        if not bool(self.initialized):  # one host sync per process: later calls read the Python flag
            self._initializing = True
            try:
                with torch.no_grad():
                    self.head.initialize(self.embed(x))
            finally:
                self._initializing = False
            self.initialized.fill_(True)
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                for param in self.parameters():  # every rank starts from rank 0's weights
                    torch.distributed.broadcast(param.data, src=0)
        self._ready = True

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Optimiser groups with their learning-rate / weight-decay factors and Adam betas (see docs/extending.md)."""
        groups: dict[tuple[float, float], list[nn.Parameter]] = {}
        for module in self.modules():
            factor = self.factors.get(type(module), 1.0)
            for name, param in module.named_parameters(recurse=False):
                bias = isinstance(module, ScaledLinear) and name == "bias"  # biases: their own factor, no decay
                groups.setdefault((self.bias_lr_factor, 0.0) if bias else (factor, factor), []).append(param)
        return [
            {"params": params, "lr_factor": lr, "wd_factor": wd, "betas": self.betas}
            for (lr, wd), params in groups.items()
        ]
