"""Pluggable parts (backbone, criterion, batch transform) as factories, and their plain {class_path, init_args} form.

GenreClassifier takes each part as a factory: a class, a functools.partial of one, or a config dict
`{"class_path": ..., "init_args": {...}}` (what LightningCLI writes, and what a checkpoint stores, so that
`torch.load(..., weights_only=True)` can read it).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

from genre_torch.core.errors import GenreTorchError


def class_path(cls: type) -> str:
    """The import path of a class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def resolve(path: str, base: type | tuple[type, ...]) -> type:
    """The class at an import path, or a subclass of `base` known by its class name (e.g. "MLP")."""
    bases = base if isinstance(base, tuple) else (base,)
    if "." not in path:
        known = {name: cls for b in bases for name, cls in subclasses(b).items()}
        if path not in known:
            raise GenreTorchError(f"unknown {bases[0].__name__.lower()} {path!r}; known: {', '.join(sorted(known))}")
        same = sorted({class_path(c) for b in bases for c in _all_subclasses(b) if c.__name__ == path})
        if len(same) > 1:  # which one a name meant would depend on import order: refuse, name the candidates
            raise GenreTorchError(f"{len(same)} classes are named {path} ({', '.join(same)}): give the full class_path")
        return known[path]
    module, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise GenreTorchError(f"cannot import {path!r}: check the class_path") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise GenreTorchError(f"{path} is not a {' or '.join(b.__name__ for b in bases)} subclass")
    return cls


def subclasses(base: type) -> dict[str, type]:
    """Every imported subclass of `base` (any depth), by class name (a name two classes share: see resolve)."""
    found: dict[str, type] = {}
    for cls in _all_subclasses(base):
        found.setdefault(cls.__name__, cls)
    return found


def _all_subclasses(base: type) -> list[type]:
    """Every imported subclass of `base`, any depth."""
    found, todo = [], list(base.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found


def to_config(value: Any) -> dict[str, Any] | None:
    """The plain config of a factory: a class, a partial of one (also jsonargparse's), or a config dict."""
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, type):
        return {"class_path": class_path(value), "init_args": {}}
    if isinstance(value, functools.partial):
        cls = value.func if isinstance(value.func, type) else next((a for a in value.args if isinstance(a, type)), None)
        if cls is not None:
            return {"class_path": class_path(cls), "init_args": dict(value.keywords)}
    raise GenreTorchError(f"cannot store {value!r} in a checkpoint: pass a class, a functools.partial or a config dict")


def to_factory(value: Any, base: type | tuple[type, ...]) -> Callable[..., Any]:
    """A callable building the part: config dicts are resolved, classes and partials are returned as they are."""
    if not isinstance(value, dict):
        return value
    if "class_path" not in value:
        raise GenreTorchError(f"a {getattr(base, '__name__', 'component')} config needs a class_path, got {value}")
    cls = resolve(value["class_path"], base)
    return functools.partial(cls, **(value.get("init_args") or {}))


def bound_arguments(factory: Callable[..., Any]) -> dict[str, Any]:
    """Keyword arguments a factory already binds (a partial's keywords; none for a class)."""
    return dict(getattr(factory, "keywords", {}) or {})
