"""Research commands given wrong or stale input, or overtaken by a stop or reset: each says what is
wrong and how to write it, in one line, and nothing runs on in a world that is gone."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bots.storage import RECENT_EVENTS_HELD
from simulation.events import EventKind
from tests.bot_support import demo_settings, start_bot

PERSONAS = ("Priya Nair", "Tomasz Kowalski", "Henrik Lindqvist")


@pytest.fixture
async def bot(tmp_path: Path):
    started = await start_bot(demo_settings(tmp_path, file_dirs=[tmp_path]))
    await started.command("start Pricing research")
    for name in PERSONAS:
        await started.command(f"persona add {name}")
    await started.say("Should we ship the new onboarding flow on Friday?")
    yield started
    await started.app.stop()


def cards(sent) -> list:
    return [s.card for s in sent if s.kind == "card"]


def one_line(text: str) -> str:
    assert "\n" not in text and "Traceback" not in text and "pydantic" not in text and "validation error" not in text, text
    return text


def session_of(bot):
    return bot.app.sessions.get("memory:general")


# -- a focus group overtaken by stop or reset ---------------------------------------------------


async def focus_then(bot, command: str, *, after_answers: int) -> list:
    """Start a five-round focus group, then run ``command`` once ``after_answers`` answers are posted."""
    bot.adapter.push_command('focus "Would you pay?" --rounds 5')
    while sum(s.kind == "post" for s in bot.adapter.sent[bot._seen :]) < after_answers:
        await asyncio.sleep(0.001)
    bot.adapter.push_command(command)
    await bot.app.wait_idle()
    return bot._new()


@pytest.mark.parametrize("after_answers", [0, 2])
async def test_stop_cancels_a_running_focus_group_and_nothing_of_it_posts_after(bot, after_answers: int) -> None:
    sent = await focus_then(bot, "stop", after_answers=after_answers)
    stopped = next(i for i, s in enumerate(sent) if s.text.startswith("Stopped the world"))
    assert "focus group" in sent[stopped].text and "cancelled" in sent[stopped].text
    assert not [s for s in sent[stopped + 1 :] if s.kind in ("post", "card", "progress")]
    assert not cards(sent), "no report card for a group that was cancelled"
    assert sum(s.kind == "post" for s in sent) < 15
    progress = [s.text for s in sent if s.kind == "progress"]
    if after_answers:
        assert progress[-1] == "Focus group: cancelled"
    assert bot.app.sessions.get("memory:general") is None
    assert "No world" in await bot.reply("status")


@pytest.mark.parametrize("after_answers", [0, 2])
async def test_reset_cancels_a_running_focus_group_and_the_new_world_starts_empty(bot, after_answers: int) -> None:
    sent = await focus_then(bot, "reset", after_answers=after_answers)
    reset = next(i for i, s in enumerate(sent) if s.text.startswith("Reset"))
    assert "focus group" in sent[reset].text and "cancelled" in sent[reset].text
    assert not [s for s in sent[reset + 1 :] if s.kind in ("post", "card", "progress")]
    session = session_of(bot)
    assert session.focus is None and not session.world.events
    assert not await bot.app.storage.read_events(session.record.id), "nothing of the old group is in the new log"
    # The world goes on as usual afterwards, and a new focus group can run.
    sent = await bot.command('focus "Again?" --rounds 1')
    assert sent[0].text.startswith("Focus group started")
    await bot.app.wait_idle()
    report = cards(sent + bot._new())[-1]
    assert "1 round(s), 3 turns" in report.footer and "3 personas" in report.text


async def test_stop_and_reset_without_a_focus_group_say_nothing_of_one(bot) -> None:
    assert "focus" not in await bot.reply("reset")
    assert "focus" not in await bot.reply("stop")
