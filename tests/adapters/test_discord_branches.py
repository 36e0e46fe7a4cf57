"""A branch and its compare card on Discord, through real discord.py and the stand-in Discord: the
branch talks in a thread of its own, and the card is an embed with the simulated-answers line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.adapters.test_discord import PERSONAS, Bot, start_bot, with_team
from tests.fakes.discord_server import FakeDiscord


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    async with FakeDiscord() as fake:
        started = await start_bot(tmp_path, fake)
        try:
            yield started
        finally:
            await started.app.stop()


async def test_a_branch_talks_in_its_thread_and_compare_posts_an_embed(bot: Bot) -> None:
    await with_team(bot, PERSONAS[:2])
    await bot.say("Would you pay $300 for the speaker?", expect=2)
    forked = await bot.command("troupe branch fork", {"name": "discount"})
    assert "Forked the branch “discount”" in forked.content
    thread = bot.fake.channel_id("Branch discount")

    await bot.fake.user_says(thread, "Priya and Tomasz, would you buy it at $199?")
    await bot.fake.wait_for(lambda: len(bot.persona_posts(thread)) >= 2, timeout=15)
    await bot.app.wait_idle()
    assert all("branch discount" in (m.author_name or "") for m in bot.persona_posts(thread))
    main = bot.app.sessions.get(f"discord:{bot.general}")
    assert all("$199" not in e.content for e in main.world.events), "the channel's world never heard the thread"

    card = await bot.command("troupe branch compare", {"first": "main", "second": "discount"})
    embed = card.embeds[0]
    assert embed["title"] == "Compare “main” and “discount”"
    assert [field["name"] for field in embed["fields"]] == list(PERSONAS[:2])
    assert "real people" in embed["footer"]["text"]
