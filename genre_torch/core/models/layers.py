"""Small building blocks shared by architectures, and checks of their settings."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from genre_torch.core.errors import GenreTorchError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "selu": nn.SELU,
    "mish": nn.Mish,
}
NORMS: dict[str, type[nn.Module]] = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm}


def activation(name: str) -> nn.Module:
    """An activation module by name; unknown names are a clear error listing the known ones."""
    if name not in ACTIVATIONS:
        raise GenreTorchError(f"unknown activation {name!r}; known activations: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def norm(name: str | None, width: int) -> nn.Module:
    """A normalisation layer by name (batch, layer) or identity for None."""
    if name is None:
        return nn.Identity()
    if name not in NORMS:
        raise GenreTorchError(f"unknown norm {name!r}; known norms: {', '.join(NORMS)} (or null)")
    return NORMS[name](width)


def check_widths(name: str, widths: Sequence[int]) -> list[int]:
    """Layer widths must be positive integers."""
    widths = list(widths)
    if any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in widths):
        raise GenreTorchError(f"{name} must be positive integers, got {widths}")
    return widths


def check_probability(name: str, p: float, upper_open: bool = True) -> float:
    """A probability in [0, 1) (dropout) or [0, 1]."""
    if not (0.0 <= p < 1.0 if upper_open else 0.0 <= p <= 1.0):
        raise GenreTorchError(f"{name} must be in [0, 1{')' if upper_open else ']'}, got {p}")
    return p


def check_positive(name: str, value: float) -> float:
    """A setting that must be > 0."""
    if not value > 0:
        raise GenreTorchError(f"{name} must be greater than 0, got {value}")
    return value
