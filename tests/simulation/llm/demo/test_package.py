"""The offline demo model's modules share only public names and import one another in one direction,
so each can be read (and changed) on its own."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

PACKAGE = "simulation.llm.demo"
#: Found without importing it, so a cycle shows as a failed assertion rather than an ImportError.
ROOT = Path(importlib.util.find_spec(PACKAGE).origin).parent


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join((PACKAGE, *parts[:-1])) if parts[-1] == "__init__" else ".".join((PACKAGE, *parts))
        found[name] = ast.parse(path.read_text(encoding="utf-8"))
    return found


def _imports(tree: ast.Module) -> list[ast.ImportFrom]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE)]


def test_demo_modules_import_no_underscore_names_from_one_another():
    private = [
        f"{module} imports {alias.name} from {node.module}"
        for module, tree in _modules().items()
        for node in _imports(tree)
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert not private, private


def test_demo_modules_import_one_another_without_a_cycle():
    modules = _modules()
    edges = {module: {node.module for node in _imports(tree) if node.module in modules} for module, tree in modules.items()}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        assert module not in path, " -> ".join([*path, module])
        if module in done:
            return
        for target in edges[module]:
            visit(target, [*path, module])
        done.add(module)

    for module in modules:
        visit(module, [])
