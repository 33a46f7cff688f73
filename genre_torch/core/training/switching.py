"""A backbone that inherits settings from another class: say which.

jsonargparse keeps the old backbone's init args that the new class also takes, with no word: `--model.backbone
Other` over a config keeps the config backbone's (a config's `dropout: 0.0` replaces the new backbone's documented
default), and a config that switches the default MLP to another class keeps MLP's values for the settings it does
not name (RealMLP trained with MLP's `activation: relu`). `inherited_settings` finds them; GenreCLI warns in one line.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import yaml


def _class(path: str) -> type | None:
    """The class a dotted class_path names, or None when it cannot be imported."""
    module, _, name = str(path).rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def _defaults(cls: type | None) -> dict[str, Any]:
    """The keyword defaults of a class's __init__."""
    if cls is None:
        return {}
    try:
        parameters = inspect.signature(cls.__init__).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def _as_dict(value: Any) -> dict[str, Any]:
    """A Namespace or mapping as a plain dict (anything else: empty)."""
    if hasattr(value, "as_dict"):
        return value.as_dict()
    return dict(value) if isinstance(value, dict) else {}


def _config_backbone(argv: list[str]) -> dict[str, Any] | None:
    """The backbone (class_path, init_args) of the last --config file that names one, or None."""
    found = None
    for i, arg in enumerate(argv):
        following = argv[i + 1] if i + 1 < len(argv) else None
        path = arg.split("=", 1)[1] if arg.startswith("--config=") else following if arg == "--config" else None
        if path is None:
            continue
        try:
            text = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError):
            continue
        model = text.get("model") if isinstance(text, dict) else None
        model = model.get("init_args", model) if isinstance(model, dict) else None
        backbone = model.get("backbone") if isinstance(model, dict) else None
        if isinstance(backbone, dict) and backbone.get("class_path"):
            found = {"class_path": backbone["class_path"], "init_args": dict(backbone.get("init_args") or {})}
    return found


def _given_on_command_line(argv: list[str]) -> set[str]:
    """Backbone settings the command line sets itself (--model.backbone.KEY, --model.backbone.init_args.KEY, or
    the init_args of a JSON --model.backbone)."""
    given: set[str] = set()
    for i, arg in enumerate(argv):
        match = re.match(r"--model\.(?:init_args\.)?backbone\.(?:init_args\.)?(\w+)", arg)
        if match and match.group(1) != "class_path":
            given.add(match.group(1))
        if re.fullmatch(r"--model\.(?:init_args\.)?backbone(=.*)?", arg):
            value = arg.split("=", 1)[1] if "=" in arg else (argv[i + 1] if i + 1 < len(argv) else "")
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError:
                continue
            if isinstance(parsed, dict):
                given.update(parsed.get("init_args") or {})
    return given


def _shown(value: Any) -> str:
    """A value as it is typed on the command line (a tuple default as a list)."""
    return str(list(value)) if isinstance(value, tuple) else str(value)


def inherited_settings(argv: list[str], backbone: Any) -> str | None:
    """One warning line when the backbone keeps settings it was not given from another class, or None.

    Two cases: `--model.backbone Other` over a config that names another backbone keeps that backbone's settings;
    a config that names a backbone without some of its settings keeps the default backbone's (MLP) values for them.
    Only settings different from the new class's own defaults count.
    """
    new = _as_dict(backbone)
    old = _config_backbone(argv)
    if not new.get("class_path") or old is None:
        return None
    new_name, old_name = str(new["class_path"]).rpartition(".")[2], str(old["class_path"]).rpartition(".")[2]
    new_defaults = _defaults(_class(new["class_path"]))
    given = _given_on_command_line(argv)
    args = _as_dict(new.get("init_args"))
    if new_name == old_name:  # the config's own backbone: what it does not set should be the class's default
        given |= set(old["init_args"])
        kept = {k: v for k, v in args.items() if k in new_defaults and k not in given and v != new_defaults[k]}
        source = f"another backbone (the default MLP or an earlier config's), not {new_name}'s own defaults"
    else:
        old_args = {**_defaults(_class(old["class_path"])), **old["init_args"]}
        kept = {
            k: v
            for k, v in args.items()
            if k in old_args and k in new_defaults and k not in given and v == old_args[k] and v != new_defaults[k]
        }
        source = f"the config's {old_name}, not its own defaults"
    if not kept:
        return None
    values = ", ".join(f"{k}={v!r}" for k, v in kept.items())
    defaults = ", ".join(f"{k}={new_defaults[k]!r}" for k in kept)
    example = next(iter(kept))
    where = "--model.backbone" if new_name != old_name else "the config's backbone"
    return (
        f"{where} {new_name} keeps {values} from {source} ({defaults}); set them in the config or on the "
        f"command line to choose (e.g. --model.backbone.{example} {_shown(new_defaults[example])})"
    )
