"""Compatibility with what older versions of genre_torch wrote: the one place that knows the old names.

- MOVED: module paths before the core was divided into data / models / training wings, and modules renamed
  since (RENAMED). Class paths stored in checkpoints and configs (e.g. `genre_torch.core.losses.CrossEntropy`)
  keep importing: an old module path is the module at its current path (the same object), through a finder
  installed when genre_torch.core is imported.
- LEGACY_NAMES: backbone names of the registry before backbones were classes (`arch: mlp`).
- legacy_optimizer: optimiser settings before optimisers were injected (optimizer: adam, lr, scheduler, ...).
- preprocessor_state: the Preprocessor's state keys before they said what they hold (mean / std, which held
  median / IQR under robust scaling, are now center / scale); checkpoints and prepared folders keep loading.
- data_state: where a checkpoint keeps its data state (the datamodule's state_dict, or the older CHECKPOINT_KEY),
  its preprocessor state in current names.

Pure Python: importing it imports neither torch nor Lightning.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

_DATA = ("encoders", "prepared", "preprocessing", "songs", "split", "streaming", "titles")
_DATASETS = ("", ".cleaning", ".leakage", ".schema")
_TRAINING = (
    "atomic_io", "checkpoint_io", "checkpoints", "console", "fast", "latest", "lightning_cli", "losses", "module",
    "provenance", "provenance_callback", "runs", "schedules", "signals", "transforms",
)  # fmt: skip
_WINGS = {
    **{n: f"data.{n}" for n in _DATA},
    **{f"datasets{s}": f"data.datasets{s}" for s in _DATASETS},
    **{n: f"training.{n}" for n in _TRAINING},
}  # old path -> path in its wing, under genre_torch.core
RENAMED = {  # renamed in its wing: old -> current, under genre_torch.core
    "data.encoders": "data.target_encoding",
    "data.titles": "data.text_encoding",
    "training.checkpoint_io": "training.safe_files",
}
MOVED: dict[str, str] = {  # old module path -> current module path, one step (a wing move and a rename in one)
    f"genre_torch.core.{old}": f"genre_torch.core.{RENAMED.get(new, new)}" for old, new in {**_WINGS, **RENAMED}.items()
}

LEGACY_NAMES = {"mlp": "MLP", "plr_mlp": "PLRMLP", "resmlp": "ResMLP", "tabm": "TabM"}
LEGACY_SCHEDULES = {"cosine": "WarmupCosine", "coslog4": "CosLog4", "onecycle": "OneCycle"}
CHECKPOINT_KEY = "genre_torch"  # where checkpoints kept the data state before it was the datamodule's state_dict
PREPROCESSOR_KEYS = {"mean": "center", "std": "scale"}  # old -> new key of the (x - center) / scale statistics


def new_path(path: str) -> str:
    """The current dotted path of a module or class path that may name a module by its old path."""
    module = path
    while module:
        if module in MOVED:
            return MOVED[module] + path[len(module) :]
        module = module.rpartition(".")[0]
    return path


class _OldModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module path (MOVED) as the module at its new path."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        """A spec for an old module path, None for every other name."""
        if fullname not in MOVED:
            return None
        new = importlib.util.find_spec(MOVED[fullname])
        return importlib.util.spec_from_loader(fullname, self, is_package=bool(new and new.submodule_search_locations))

    def create_module(self, spec: Any) -> None:
        """The default module: exec_module replaces it."""
        return None

    def exec_module(self, module: ModuleType) -> None:
        """Put the module at the new path where the import system looks for the old one."""
        sys.modules[module.__name__] = importlib.import_module(MOVED[module.__name__])


def install() -> None:
    """Let old module paths import (once per process)."""
    if not any(isinstance(f, _OldModules) for f in sys.meta_path):
        sys.meta_path.insert(0, _OldModules())  # before the path finder, which would load a second copy


def legacy_optimizer(args: dict[str, Any]) -> dict[str, Any]:
    """Move the settings of before injected optimisers (optimizer: adam|adamw, lr, weight_decay, scheduler,
    warmup) into optimizer / lr_scheduler configs that build the same optimiser and schedule."""
    if not isinstance(args.get("optimizer", {}), str) and not {"lr", "scheduler", "warmup", "weight_decay"} & set(args):
        return args
    args = dict(args)
    name = args.pop("optimizer", "adam") or "adam"
    settings = {"lr": args.pop("lr", 1e-3), "weight_decay": args.pop("weight_decay", 0.0)}
    args["optimizer"] = {"class_path": f"torch.optim.{'AdamW' if name == 'adamw' else 'Adam'}", "init_args": settings}
    schedule, warmup = args.pop("scheduler", None), args.pop("warmup", 0.0) or 0.0
    if schedule is not None:
        init = {"pct_start": warmup or 0.3} if schedule == "onecycle" else {"warmup": warmup}
        path = f"genre_torch.core.training.schedules.{LEGACY_SCHEDULES[schedule]}"
        args["lr_scheduler"] = {"class_path": path, "init_args": init}
    return args


def preprocessor_state(state: dict[str, Any]) -> dict[str, Any]:
    """A Preprocessor state (checkpoint or prepared folder) in current key names: a copy with the old keys
    (PREPROCESSOR_KEYS) renamed, or `state` itself when it holds none of them."""
    old = [k for k in PREPROCESSOR_KEYS if k in state and PREPROCESSOR_KEYS[k] not in state]
    if not old:
        return state
    return {(PREPROCESSOR_KEYS[k] if k in old else k): v for k, v in state.items()}


def data_state(ckpt: dict[str, Any]) -> dict[str, Any] | None:
    """The data state a checkpoint was trained with: dataset name, spec and fitted preprocessing (one reader).

    Lightning saves the datamodule's state_dict under the datamodule's class name; older checkpoints under
    CHECKPOINT_KEY, written by the module. The state itself, or a copy where its preprocessor state had old keys.
    """
    if isinstance(ckpt.get(CHECKPOINT_KEY), dict):
        state = ckpt[CHECKPOINT_KEY]
    else:
        state = next((v for v in ckpt.values() if isinstance(v, dict) and {"preprocessor", "spec"} <= set(v)), None)
    pre = state.get("preprocessor") if state is not None else None
    if isinstance(pre, dict) and preprocessor_state(pre) is not pre:
        state = {**state, "preprocessor": preprocessor_state(pre)}
    return state
