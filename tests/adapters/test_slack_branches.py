"""A branch and its compare card on Slack, through the real adapter and the fake Slack API: the
branch talks in a thread of its own, and the card is Block Kit with the simulated-answers line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.adapters.platforms import CHANNEL, MODERATOR, slack_workspace, wait_for
from tests.adapters.test_slack import PERSONAS, Bot, start_bot, with_team


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    async with slack_workspace() as fake:
        started = await start_bot(tmp_path, fake)
        try:
            yield started
        finally:
            await started.app.stop()


async def test_a_branch_talks_in_its_thread_and_compare_posts_a_block_kit_card(bot: Bot) -> None:
    await with_team(bot, PERSONAS[:2])
    await bot.say("Would you pay $300 for the speaker?", expect=2)
    await bot.command("fork discount")
    root = next(p for p in bot.bot_posts() if "Branch “discount”" in p["text"])

    in_thread = await bot.say("Priya and Tomasz, would you buy it at $199?", expect=2, user=MODERATOR,
                              thread_ts=root["ts"])
    assert {p.get("thread_ts") for p in in_thread} == {root["ts"]}
    assert all("branch discount" in str(p) for p in in_thread)
    main = bot.app.sessions.get(f"slack:{CHANNEL}")
    assert all("$199" not in e.content for e in main.world.events), "the channel's world never heard the thread"

    await bot.command("compare main discount")
    await wait_for(lambda: any(p.get("blocks") and "Compare" in str(p["blocks"][0]) for p in bot.fake.posts))
    card = next(p for p in bot.fake.posts if p.get("blocks") and "Compare" in str(p["blocks"][0]))
    assert "Compare “main” and “discount”" in card["text"]
    assert all(name in str(card["blocks"]) for name in PERSONAS[:2])
    assert card["blocks"][-1]["type"] == "context" and "real people" in card["blocks"][-1]["elements"][0]["text"]
