"""Words typed into a command (a poll's options, a focus group's question, a validation's
expectations) or read from a scenario file come back in the bot's public messages as written: no
link, mention or formatting of theirs acts there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adapters.base import unescape
from tests.support.testbot import TestBot, demo_settings, start_bot

POSING = "[the form](https://evil.example/p) <@&42> **urgent**"
#: A link or a mention that a chat client would act on: its brackets not escaped.
ACTING = re.compile(r"(?<!\\)\[[^\]]*(?<!\\)\]\(|(?<!\\)<@")


def shown_text(sent) -> str:
    return "\n".join(s.card.as_text() if s.card is not None else s.text for s in sent)


@pytest.fixture
async def bot(tmp_path: Path):
    bot = await start_bot(demo_settings(tmp_path, file_dirs=[tmp_path]))
    await bot.command("start Typed words")
    await bot.command("persona add Priya Nair")
    yield bot
    await bot.app.stop()


@pytest.mark.parametrize("command", [
    f'focus "{POSING} would you pay?" --rounds 1',
    f'poll "Ship it?" "{POSING}" no',
    f'validate Priya "{POSING}"',
], ids=["focus", "poll-option", "validate"])
async def test_typed_words_show_as_written_in_the_bots_public_answer(bot: TestBot, command: str) -> None:
    public = [s for s in await bot.command(command) if s.kind in ("reply", "card")]
    text = shown_text(public)
    assert public and not ACTING.search(text), text
    assert "\\*\\*urgent\\*\\*" in text, "the stars show as typed"
    assert "the form" in unescape(text)


async def test_a_world_name_that_would_not_show_as_written_is_refused(tmp_path: Path) -> None:
    bot = await start_bot(demo_settings(tmp_path, file_dirs=[tmp_path]))
    try:
        reply = await bot.reply(f"start {POSING}")
        assert reply.startswith("The world name “") and "write it as plain words. Nothing was started." in reply
        assert not ACTING.search(reply), reply
        assert bot.app.sessions.get("memory:general") is None
        scenario = tmp_path / "launch.yaml"
        scenario.write_text("name: 'Launch <!channel> review'\npersonas: [Priya Nair]\n")
        reply = await bot.reply(f"start --scenario {scenario}")
        assert "launch.yaml: the scenario's name “Launch \\<!channel\\> review” contains" in reply, reply
        assert bot.app.sessions.get("memory:general") is None
        assert (await bot.reply("start Q4 pricing #2 (draft_v2)")).startswith("Started the world “Q4 pricing #2 (draft_v2)”")
    finally:
        await bot.app.stop()
