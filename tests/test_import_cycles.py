"""No module of Troupe (simulation, settings, bot, adapters) imports, however indirectly, one that imports it:
each can be read (and loaded) after the ones it builds on. Imports inside functions count too, so
none can hide a cycle; imports only for type checkers do not run and are left out."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

from tests.support.paths import ROOT

PACKAGES = ("simulation", "config", "bots", "adapters")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported(path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ``known`` that the module at ``path`` imports when it runs."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If) and _type_checking_only(node)
               for statement in node.body for inner in ast.walk(statement)}
    names: list[str] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    found = set()
    for name in names:
        while name and name not in known:  # "bots.storage.Storage" is the module bots.storage
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(path, known) - {name} for name, path in known.items()}


def test_the_bot_and_the_adapters_import_nothing_in_a_circle() -> None:
    try:
        order = list(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as error:
        pytest.fail(f"modules import each other in a circle: {' → '.join(error.args[1])}")
    assert "bots.app" in order and "adapters.discord.adapter" in order


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\n"
                                   "def later():\n    from a import thing\n")
    known = {"a": tmp_path / "a.py", "b": tmp_path / "b.py"}
    assert imported(known["b"], known) == {"a"}
    (tmp_path / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\n")
    assert imported(known["b"], known) == set()
