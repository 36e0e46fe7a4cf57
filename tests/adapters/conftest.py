"""The platforms the adapter tests run against: the console, the in-memory platform, Discord and Slack."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.adapters.platforms import PLATFORMS, Chat, new_chat


@pytest.fixture(params=PLATFORMS, ids=lambda setup: setup.id)
async def chat(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Chat]:
    """A connected adapter and its channel, on each platform in turn (``platforms.on`` picks others)."""
    started = new_chat(request.param, tmp_path)
    try:
        await started.start()
        yield started
    finally:
        await started.close()
