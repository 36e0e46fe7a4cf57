"""Nobody can run commands, or have the personas answer, without limit, and a file that cannot be shared
stays nowhere on the host.

Each person has an allowance of commands (a smaller one for commands that make a file), larger for
moderators, and of messages in a channel the personas answer; the one refused is told, privately,
when to try again. A file a chat platform did not
take is not kept on the host, and no reply on a chat platform names a host path.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from config.settings import SettingsError, load_settings
from simulation.events import EventKind
from tests.support.testbot import demo_settings, start_bot

GUEST = {"user": "guest", "user_is_moderator": False}


async def started(tmp_path, **rates):
    bot = await start_bot(demo_settings(tmp_path, rate_limits=rates))
    await bot.command("start Team room")
    await bot.command("persona add Priya Nair")
    await bot.say("Priya, what do you think of the plan?")
    bot.adapter.uploads = True
    return bot


def files(sent):
    return [s for s in sent if s.kind == "file"]


async def test_a_guest_past_the_file_allowance_is_told_privately_when_to_try_again(tmp_path):
    bot = await started(tmp_path, files="2 per 2 seconds")
    try:
        assert files(await bot.command("export md", **GUEST)) and files(await bot.command("export csv", **GUEST))
        (refused,) = await bot.command("export json", **GUEST)
        assert refused.kind == "private" and refused.user == "guest"
        assert "You have asked for 2 files (`export` or `extract`) in the last 2 seconds" in refused.text
        wait = int(re.search(r"Try again in (\d) seconds?\.", refused.text).group(1))
        assert 1 <= wait <= 2

        # Someone else's allowance is their own; the guest's comes back once the window has passed.
        assert files(await bot.command("export md", user="other", user_is_moderator=False))
        await asyncio.sleep(wait)
        assert files(await bot.command("export json", **GUEST))
    finally:
        await bot.app.stop()


async def test_moderators_have_a_larger_allowance(tmp_path):
    bot = await started(tmp_path, files="1 per minute", moderator_files="3 per minute")
    try:
        for fmt in ("md", "csv", "json"):
            assert files(await bot.command(f"export {fmt}"))
        (refused,) = await bot.command("extract stance")
        assert refused.kind == "private" and "3 files" in refused.text and "in the last minute" in refused.text
        assert "bot.rate_limits.moderator_files" in refused.text and re.search(r"Try again in (1 minute|\d+ seconds)\.", refused.text)
        assert files(await bot.command("export md", **GUEST)), "a guest's allowance is not the moderator's"
    finally:
        await bot.app.stop()


async def test_by_default_a_flood_of_commands_is_cut_off(tmp_path):
    bot = await start_bot(demo_settings(tmp_path))
    try:
        answers = [await bot.reply("status", **GUEST) for _ in range(20)]
        assert all("No world in this channel" in a for a in answers)
        (refused,) = await bot.command("status", **GUEST)
        assert refused.kind == "private" and "20 commands in the last minute" in refused.text
        assert "Try again in" in refused.text
        assert "No world in this channel" in await bot.reply("status"), "a moderator still gets answers"
    finally:
        await bot.app.stop()


async def test_a_guest_who_floods_a_channel_is_heard_but_answered_within_the_allowance(tmp_path):
    """Twelve quick messages from one guest cost the model for three: the rest are heard (the personas
    read them when they next speak) but start no answer, and the guest is told once."""
    bot = await started(tmp_path, messages="3 per minute", default_exchanges=0)
    try:
        session = bot.app.sessions.get("memory:general")
        posts_before = len(bot.adapter.posts())
        told = []
        for n in range(12):
            sent = await bot.say(f"Priya, message number {n}?", **GUEST)
            told += [s for s in sent if s.kind == "private"]
        await bot.app.wait_idle()
        heard = [e.content for e in session.world.events if e.kind is EventKind.STIMULUS and e.source == "guest"]
        assert heard == [f"Priya, message number {n}?" for n in range(12)], "every message is heard"
        assert len(bot.adapter.posts()) - posts_before == 3, "three answers, one for each allowed message"
        (notice,) = told
        assert notice.user == "guest" and notice.text.startswith("You have written 3 messages here in the last minute")
        assert "bot.rate_limits.messages" in notice.text and "They hear what you write" in notice.text

        # Another person, and a moderator, have allowances of their own.
        assert [s for s in await bot.say("Priya, and mine?", user="other", user_is_moderator=False) if s.kind == "post"]
        for n in range(5):
            assert [s for s in await bot.say(f"Moderator question {n}?") if s.kind == "post"]
    finally:
        await bot.app.stop()


async def test_a_message_delivered_twice_counts_once_against_the_allowance(tmp_path):
    bot = await started(tmp_path, messages="2 per minute", default_exchanges=0)
    try:
        before = len(bot.adapter.posts())
        first = bot.adapter.push_message("Priya, first?", user="guest", user_is_moderator=False)
        await bot.app.wait_idle()
        bot.adapter.deliver_again(first)
        await bot.app.wait_idle()
        bot.adapter.push_message("Priya, second?", user="guest", user_is_moderator=False)
        await bot.app.wait_idle()
        assert len(bot.adapter.posts()) - before == 2, "both answered: the first was heard, and counted, once"
        assert not [s for s in bot.adapter.sent if s.kind == "private" and s.user == "guest"], "no notice"
    finally:
        await bot.app.stop()


async def test_a_file_the_platform_does_not_take_is_not_kept_and_no_host_path_is_shown(tmp_path):
    bot = await started(tmp_path)
    bot.adapter.uploads = False  # the platform refuses the file
    failed = []
    bot.adapter.command_failed = failed.append
    try:
        for command, who in (("export json", GUEST), ("export md", {}), ("extract stance", {})):
            (said,) = await bot.command(command, **who)
            assert said.kind == "private", "a failure is told to its caller alone"
            assert "Could not share" in said.text and "Nothing was kept" in said.text
            assert str(tmp_path) not in said.text and "/" not in said.text.replace("“", "").split("Could not")[1]
        assert len(failed) == 3
        assert not (tmp_path / "exports").exists(), "no file piles up on the host"
    finally:
        await bot.app.stop()


@pytest.mark.parametrize(("value", "expected"), [
    ("3 every minute", "bot.rate_limits.files: '3 every minute' is not a rate: write it as COUNT per [N] "
                       "second|minute|hour|day, e.g. '3 per 10 minutes', or null for no limit"),
    ("0 per minute", "bot.rate_limits.files: '0 per minute' allows nothing: give a count of 1 or more"),
    ("3 per minute; 9 per hour", "'3 per minute; 9 per hour' holds 2 rates: give one"),
])
def test_a_rate_that_cannot_be_read_is_named_with_how_to_write_it(monkeypatch, tmp_path, value, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "troupe.yaml").write_text(f"bot:\n  rate_limits:\n    files: {value}\n")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert expected in str(caught.value) and "troupe.yaml" in str(caught.value)


def test_a_limit_can_be_lifted(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "troupe.yaml").write_text("bot:\n  rate_limits:\n    commands: null\n    files: 1 per hour\n")
    limits = load_settings().bot.rate_limits
    assert limits.commands is None and limits.files == "1 per hour"
