"""Architectures: a Backbone subclass in its own file here is all it takes to add one.

Every module in this package is imported below, so its Backbone subclasses are known by class name
(`--model.backbone MLP`, or a full class_path for one that lives elsewhere).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import torch
from torch import nn

from genre_torch.core.compat import LEGACY_NAMES
from genre_torch.core.components import resolve, subclasses
from genre_torch.core.errors import GenreTorchError


class Backbone(nn.Module):
    """Base of every architecture: maps encoded features (batch, in_features) to logits (batch, num_classes).

    A subclass's __init__ takes (in_features, num_classes, then its own typed settings, each documented in
    the class docstring's Args: LightningCLI shows them in `genre-torch fit --model.backbone.help NAME`).
    Protocol (optional parts are detected by name and tested for every architecture):

    - `n_numeric: int | None = None` as a setting: left at None, it is filled with the number of leading
      standardised numeric columns of the data (the Preprocessor puts them first).
    - `embed(x) -> (batch, d)`: the penultimate representation; TensorBoard's projector shows it for test songs.
    - `forward_members(x) -> (batch, k, num_classes)`: logits of k ensemble members; the criterion then trains
      every member, and forward() must return the ensemble's logits.
    - `parameter_groups() -> list[dict]`: torch optimiser parameter groups covering every parameter once; a group's
      `lr_factor` / `wd_factor` multiply --optimizer.lr / weight_decay, other keys (e.g. `betas`) are torch's.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - every architecture overrides it
        """Logits of shape (batch, num_classes)."""
        raise NotImplementedError


def names() -> list[str]:
    """Class names of every known architecture."""
    return sorted(subclasses(Backbone))


def get(name: str) -> type[Backbone]:
    """The architecture class for a class name, an import path, or an old registry name (mlp, plr_mlp, ...)."""
    return resolve(LEGACY_NAMES.get(name, name), Backbone)


def build(name: str, in_features: int, num_classes: int, **settings: Any) -> Backbone:
    """Instantiate an architecture by name; unknown settings are a clear error."""
    cls = get(name)
    try:
        return cls(in_features, num_classes, **settings)
    except TypeError as e:
        raise GenreTorchError(f"{cls.__name__}: {e}") from None


def optimizer_groups(backbone: nn.Module, lr: float, weight_decay: float) -> list[dict[str, Any]]:
    """Torch parameter groups for a backbone: its own `parameter_groups()` with the factors applied, else one group."""
    if not hasattr(backbone, "parameter_groups"):
        return [{"params": list(backbone.parameters()), "lr": lr, "weight_decay": weight_decay}]
    groups, seen = [], []
    for group in backbone.parameter_groups():
        group = dict(group)
        params = list(group.pop("params"))
        lr_factor, wd_factor = group.pop("lr_factor", 1.0), group.pop("wd_factor", 1.0)
        seen += [id(p) for p in params]
        if params:
            groups.append({**group, "params": params, "lr": lr * lr_factor, "weight_decay": weight_decay * wd_factor})
    if sorted(seen) != sorted(id(p) for p in backbone.parameters()):
        raise GenreTorchError(
            f"{type(backbone).__name__}.parameter_groups() must list every parameter of the backbone exactly once"
        )
    return groups


for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")
