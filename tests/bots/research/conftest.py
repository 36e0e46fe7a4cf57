"""A research room on the in-memory platform: the bundled team has heard a first question."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.testbot import TEAM, TestBot, demo_settings, start_bot

FIRST_QUESTION = "Should we ship the new onboarding flow on Friday?"

OpenRoom = Callable[..., Awaitable[TestBot]]


@pytest.fixture
async def research_room(tmp_path: Path) -> AsyncIterator[OpenRoom]:
    """``await research_room(question, more=[persona JSON…])``: the world “Pricing research” with the
    bundled team (and ``more``) after ``question``. Files are shared in the channel, as on a chat
    platform; the bot may read files in ``tmp_path``. Stopped after the test."""
    started: list[TestBot] = []

    async def open_room(question: str = FIRST_QUESTION, *, more: tuple[dict[str, Any], ...] = ()) -> TestBot:
        bot = await start_bot(demo_settings(tmp_path, file_dirs=[tmp_path]))
        started.append(bot)
        bot.adapter.uploads = True
        await bot.command("start Pricing research")
        for name in TEAM:
            await bot.command(f"persona add {name}")
        for spec in more:
            await bot.command(f"persona add {json.dumps(spec)}")
        await bot.say(question)
        return bot

    yield open_room
    for bot in started:
        await bot.app.stop()


@pytest.fixture
async def bot(research_room: OpenRoom) -> TestBot:
    """The research room after its first question."""
    return await research_room()
