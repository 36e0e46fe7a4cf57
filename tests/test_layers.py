"""The layers import only downwards: the simulation knows no bot or platform, an adapter knows only
the adapter contract and the settings, the bot knows no platform library, and the settings know
nothing above them. Read from the source (imports inside functions count; imports only for type
checkers do not run and are left out), so a rule broken anywhere fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Libraries that speak a platform's protocol; only adapters may use them.
PLATFORM_LIBRARIES = ("discord", "slack_bolt", "slack_sdk")


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path) -> set[str]:
    """The absolute module names ``path`` imports when it runs (``from a.b import c`` gives ``a.b``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.If) and _type_checking_only(node)
               for statement in node.body for inner in ast.walk(statement)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def offending(package: str, allowed: tuple[str, ...] = (), forbidden: tuple[str, ...] = ()) -> list[str]:
    """``file: module`` for each import in ``package`` of a project package outside ``allowed``,
    or of a ``forbidden`` library."""
    ours = ("simulation", "bots", "adapters", "config")
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in sorted(imports_of(path)):
            top = name.split(".")[0]
            project = top in ours and top != package and not name.startswith(allowed)
            if project or top in forbidden:
                found.append(f"{path.relative_to(ROOT)}: {name}")
    return found


def test_the_simulation_imports_no_bot_and_no_adapter() -> None:
    assert offending("simulation", allowed=("config",), forbidden=PLATFORM_LIBRARIES) == []


def test_adapters_import_only_the_adapter_contract_and_the_settings() -> None:
    assert offending("adapters", allowed=("config",)) == []


def test_the_bot_imports_no_platform_library() -> None:
    assert offending("bots", allowed=("adapters", "simulation", "config"),
                     forbidden=PLATFORM_LIBRARIES) == []


def test_the_settings_import_nothing_above_them() -> None:
    assert offending("config") == []


def test_a_broken_rule_is_found(tmp_path: Path) -> None:
    """The reader sees imports inside functions and skips those only for type checkers."""
    module = tmp_path / "m.py"
    module.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import bots.app\n"
                      "def later():\n    from slack_sdk import WebClient\n")
    assert imports_of(module) == {"typing", "slack_sdk"}


@pytest.mark.parametrize("package", ["simulation", "bots", "adapters", "config"])
def test_every_layer_is_read(package: str) -> None:
    assert any(imports_of(path) for path in (ROOT / package).rglob("*.py"))
