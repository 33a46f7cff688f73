"""Small building blocks shared by architectures."""

from __future__ import annotations

from torch import nn

from genre_torch.core.errors import GenreTorchError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
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
