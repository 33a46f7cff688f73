"""Architecture registry: a name maps to an nn.Module class taking (in_features, num_classes, **settings)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from genre_torch.core.errors import GenreTorchError

_REGISTRY: dict[str, type[nn.Module]] = {}
M = TypeVar("M", bound=type[nn.Module])


def register(name: str) -> Callable[[M], M]:
    """Class decorator that makes an architecture buildable by `name`."""

    def add(cls: M) -> M:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"architecture {name!r} is already registered by {_REGISTRY[name].__name__}")
        _REGISTRY[name] = cls
        return cls

    return add


def names() -> list[str]:
    """Registered architecture names."""
    return sorted(_REGISTRY)


def build(name: str, in_features: int, num_classes: int, **settings: Any) -> nn.Module:
    """Instantiate architecture `name`; unknown names or settings are clear errors."""
    if name not in _REGISTRY:
        raise GenreTorchError(f"unknown architecture {name!r}; known architectures: {', '.join(names())}")
    cls = _REGISTRY[name]
    params = inspect.signature(cls).parameters
    unknown = sorted(set(settings) - set(params) - {"in_features", "num_classes"})
    if unknown:
        known = [p for p in params if p not in ("in_features", "num_classes")]
        raise GenreTorchError(f"unknown setting(s) {unknown} for architecture {name!r}; it takes: {', '.join(known)}")
    return cls(in_features, num_classes, **settings)


# every module in this package registers its architectures on import: adding one is adding a file
for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")
