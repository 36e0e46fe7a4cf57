"""Where the tests find the project and the TinyTroupe files they load, wherever a test file sits."""

from __future__ import annotations

from pathlib import Path

#: The project's root (where pyproject.toml is).
ROOT = Path(__file__).resolve().parents[2]
#: The test data kept with the tests (corpora, persona files written for the tests).
DATA = ROOT / "tests" / "data"
#: TinyTroupe's own examples, kept beside the project: persona files, fragments, populations.
TINYTROUPE = ROOT.parent / "shared" / "tinytroupe"
AGENTS = TINYTROUPE / "agents"
