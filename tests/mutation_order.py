"""A pytest plugin for mutation runs (``make mutation``): the quickest tests first.

Each mutant runs the tests that call the function it changed and stops at the first failure; most
mutants are caught by a quick direct test, so running those before the slower whole-bot tests
(which wait seconds for a post that never comes) keeps a run short. The durations are the ones
mutmut measured in its first pass; without them the order is left alone.
"""

from __future__ import annotations

import json
from pathlib import Path


def pytest_collection_modifyitems(session, config, items) -> None:
    stats = Path("mutmut-stats.json")
    if not stats.exists():
        return
    durations = json.loads(stats.read_text()).get("duration_by_test", {})
    items.sort(key=lambda item: durations.get(item.nodeid, 0.0))
