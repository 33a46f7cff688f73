"""The package's shape: no private Lightning API, the core never imports the tools, the core's wings import one way,
no import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

from genre_torch.core.compat import new_path

PACKAGE = Path(__file__).resolve().parents[1] / "genre_torch"
LIGHTNING = ("pytorch_lightning", "lightning_fabric", "lightning")


def modules() -> dict[str, ast.Module]:
    """Every module of the package, parsed, by dotted name."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        out[name] = ast.parse(path.read_text(), str(path))
    return out


def private_uses(tree: ast.Module) -> list[str]:
    """Underscore attributes of objects other than self/cls, and private Lightning imports."""
    found = []
    for node in ast.walk(tree):
        private = isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
        if private and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            found.append(f"line {node.lineno}: .{node.attr}")
        if isinstance(node, ast.Attribute) and node.attr in ("fit_loop", "epoch_loop", "optim_step_progress"):
            found.append(f"line {node.lineno}: .{node.attr} (loop internals)")
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIGHTNING:
            if any(part.startswith("_") for part in node.module.split(".")):
                found.append(f"line {node.lineno}: from {node.module}")
            found += [f"line {node.lineno}: import {a.name}" for a in node.names if a.name.startswith("_")]
    return found


def test_no_private_api_of_other_objects_and_no_private_lightning_imports() -> None:
    problems = {name: uses for name, tree in modules().items() if (uses := private_uses(tree))}
    assert not problems, problems


def test_the_grep_finds_a_private_use() -> None:
    code = "x = trainer.fit_loop.epoch_loop._batches_that_stepped\nfrom lightning_fabric.utilities._pytree import a"
    tree = ast.parse(code)
    assert len(private_uses(tree)) == 4


def imports(tree: ast.Module, name: str) -> set[str]:
    """The genre_torch modules a module imports (at any depth of its code)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = name.rsplit(".", node.level)[0]
            found.add(f"{base}.{node.module}" if node.module else base)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("genre_torch"):
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("genre_torch")}
    return found


def test_the_core_never_imports_the_tools_or_the_entry_point() -> None:
    for name, tree in modules().items():
        if name.startswith("genre_torch.core"):
            bad = {m for m in imports(tree, name) if m.startswith(("genre_torch.tools", "genre_torch.cli"))}
            assert not bad, (name, bad)


WINGS = {"data": set(), "models": set(), "training": {"data", "models"}}  # wing: the wings it may import


def wing(module: str) -> str | None:
    """The wing of the core a module (by its current or old path) belongs to; "" for the core's shared leaves."""
    parts = new_path(module).split(".")
    if parts[:2] != ["genre_torch", "core"] or len(parts) < 3:
        return None
    return parts[2] if parts[2] in WINGS else ""


def wing_violations(trees: dict[str, ast.Module]) -> list[str]:
    """Imports against the wing rule: training -> data and training -> models only; shared leaves import no wing."""
    found = []
    for name, tree in trees.items():
        own = wing(name)
        if own is None or name == "genre_torch.core":
            continue
        for module in sorted(imports(tree, name)):
            other = wing(module)
            if other and other != own and other not in WINGS.get(own, set()):
                found.append(f"{name} imports {module}")
    return found


def test_the_wings_import_training_to_data_and_models_only() -> None:
    assert not wing_violations(modules())


def test_a_wrong_way_import_between_wings_is_found() -> None:
    bad = {
        "genre_torch.core.data.split": "from genre_torch.core.training.losses import CrossEntropy",
        "genre_torch.core.models.mlp": "from genre_torch.core import data",
        "genre_torch.core.errors": "import genre_torch.core.models.mlp",
        "genre_torch.core.data.songs": "from genre_torch.core.losses import CrossEntropy",  # an old path, same rule
        "genre_torch.core.training.module": "from genre_torch.core.data import GenreDataModule",  # allowed
    }
    found = wing_violations({name: ast.parse(code) for name, code in bad.items()})
    assert {line.split()[0] for line in found} == set(list(bad)[:4])


def test_no_import_cycles() -> None:
    trees = modules()
    graph = {n: {m for m in imports(t, n) if m in trees and m != n} for n, t in trees.items()}
    # a package's __init__ importing its own submodules (the models registry) is how Python packages work
    graph = {n: {m for m in deps if not (n + ".").startswith(m + ".")} for n, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in graph[node]:
            if state.get(dep) == 1:
                raise AssertionError(" -> ".join([*path[path.index(dep) :], dep]) if dep in path else dep)
            if dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
