"""Branches in a channel, on the in-memory platform: ``fork`` makes one in a thread of its own, each
hears only what is said where it talks, and they survive a restart."""

from __future__ import annotations

import asyncio

import pytest

from adapters.memory import MemoryAdapter
from bots.verification import Verdict, VerdictAction, VerificationContext, Verifier
from tests.support.paths import AGENTS
from tests.support.testbot import TestBot, demo_settings, start_bot, thread_of

TEAM = ("Priya Nair", "Tomasz Kowalski")


@pytest.fixture
async def testbot(tmp_path):
    bot = await start_bot(demo_settings(tmp_path, file_dirs=[AGENTS]))
    yield bot
    await bot.app.stop()


async def team(bot) -> None:
    await bot.command("start Launch review")
    for name in TEAM:
        await bot.command(f"persona add {name}")


def heard(bot, name: str | None = None) -> list[str]:
    """What people said, as the channel's world (or the branch ``name``) heard it."""
    session = bot.app.sessions.get("memory:general") if name is None else bot.app.branches.named("memory:general", name)
    return [e.content for e in session.world.events if e.kind.value == "stimulus"]


async def test_a_fork_talks_in_its_own_thread_and_neither_hears_the_other(testbot):
    await team(testbot)
    await testbot.say("Would you pay $300 for the speaker?")
    sent = await testbot.command("fork discount")
    thread = thread_of(sent)
    reply = [s for s in sent if s.kind in ("reply", "private")][0].text
    branch = testbot.app.branches.named("memory:general", "discount")
    storage = testbot.app.storage
    assert branch.record.id not in await storage.event_counts(), "the fork stored none of the shared events"
    assert await storage.read_events(branch.record.id) == await storage.read_events(branch.record.parent_id)
    assert "Forked the branch “discount”" in reply and "without a model call" in reply

    posted = await testbot.say("It is $199 now.", thread=thread)
    assert heard(testbot, "discount") == ["Would you pay $300 for the speaker?", "It is $199 now."]
    assert heard(testbot) == ["Would you pay $300 for the speaker?"]
    answers = [s for s in posted if s.kind == "post"]
    assert answers and all(s.thread == thread for s in answers), "the branch answers in its thread"
    assert all("branch discount" in (s.tag or "") for s in answers)

    posted = await testbot.say("Still $300 here.")
    assert heard(testbot) == ["Would you pay $300 for the speaker?", "Still $300 here."]
    assert "Still $300 here." not in heard(testbot, "discount")
    assert all(s.thread is None for s in posted if s.kind == "post"), "the channel's world answers in the channel"


async def forked_then_stopped(settings) -> tuple[TestBot, str, list[dict]]:
    """A bot whose channel has a branch, “discount”, that heard a message in its thread; stopped.
    Returns it, the branch's thread and the branch's events as they were."""
    bot = await start_bot(settings)
    try:
        await team(bot)
        await bot.say("Would you pay $300 for the speaker?")
        thread = thread_of(await bot.command("fork discount"))
        await bot.say("It is $199 now.", thread=thread)
        before = [e.model_dump() for e in bot.app.branches.named("memory:general", "discount").world.events]
    finally:
        await bot.app.stop()
    return bot, thread, before


async def test_branches_survive_a_restart_on_the_same_database(tmp_path):
    settings = demo_settings(tmp_path, file_dirs=[AGENTS])
    _, thread, before = await forked_then_stopped(settings)

    bot = await start_bot(settings)
    try:
        branch = bot.app.branches.named("memory:general", "discount")
        assert branch is not None, "the branch came back with its channel's world"
        assert [e.model_dump() for e in branch.world.events] == before
        await bot.say("And with a free cable?", thread=thread)
        assert heard(bot, "discount")[-1] == "And with a free cable?"
        assert "And with a free cable?" not in heard(bot)
        status = await bot.reply("status")
        assert "Branches: discount (active" in status
    finally:
        await bot.app.stop()


async def test_what_was_said_in_a_branch_while_the_bot_was_down_is_heard_in_the_branch(tmp_path):
    settings = demo_settings(tmp_path, file_dirs=[AGENTS])
    bot, thread, _ = await forked_then_stopped(settings)
    platform = MemoryAdapter()
    platform.history = list(bot.adapter.history)
    platform.write_while_away("And with a free cable?", thread=thread)
    platform.write_while_away("Back in the channel: any news?")

    again = await start_bot(settings, platform)
    try:
        await again.app.wait_idle()
        assert heard(again, "discount")[-2:] == ["It is $199 now.", "And with a free cable?"]
        assert heard(again)[-1] == "Back in the channel: any news?"
        assert "And with a free cable?" not in heard(again) and "Back in the channel: any news?" not in heard(again, "discount")
        answers = [s for s in platform.posts() if s.thread == thread]
        assert answers and all("branch discount" in (s.tag or "") for s in answers), "the branch answers in its thread"
    finally:
        await again.app.stop()


async def test_only_moderators_fork_and_mistakes_are_explained(testbot):
    await team(testbot)
    await testbot.say("Would you pay $300 for the speaker?")
    refused = await testbot.reply("fork discount", user="guest", user_is_moderator=False)
    assert "moderators" in refused
    assert testbot.app.branches.of_channel("memory:general") == []

    assert "no event #99" in await testbot.reply("fork later --from 99")
    assert "--from must be a whole number" in await testbot.reply("fork later --from soon")
    assert "cannot name a branch" in await testbot.reply("fork 'two words'")
    assert "names the channel's own world" in await testbot.reply("fork main")
    thread_of(await testbot.command("fork discount"))
    assert "already a branch named “Discount”" in await testbot.reply("fork Discount")
    assert [s.world.name for s in testbot.app.branches.of_channel("memory:general")] == ["discount"]
    assert "no running branch named “dicsount” here; the branches are discount" in \
        await testbot.reply("branch dicsount hello?")


async def test_a_fork_from_an_earlier_event_leaves_the_later_talk_out(testbot):
    await team(testbot)
    await testbot.say("Would you pay $300 for the speaker?")
    first = testbot.app.sessions.get("memory:general").world.events[-1].id
    await testbot.say("What about a robot vacuum instead?")
    thread_of(await testbot.command(f"fork speaker-only --from {first}"))
    branch = testbot.app.branches.named("memory:general", "speaker-only")
    assert heard(testbot, "speaker-only") == ["Would you pay $300 for the speaker?"]
    assert all("vacuum" not in e.content for a in branch.world.agents for e in a.episodic.episodes)
    assert branch.record.fork_event == first


async def test_stop_in_a_branch_stops_only_that_branch(testbot):
    await team(testbot)
    await testbot.say("Would you pay $300 for the speaker?")
    one = thread_of(await testbot.command("fork one"))
    thread_of(await testbot.command("fork two"))
    assert "ends the branch “one”" in await testbot.reply("stop", thread=one)
    assert "Stopped the branch “one”" in await testbot.reply("stop confirm", thread=one)
    assert [s.world.name for s in testbot.app.branches.of_channel("memory:general")] == ["two"]
    status = await testbot.reply("status")
    assert "World “Launch review”: active" in status and "Branches: two (active" in status
    # What is now written in the stopped branch's thread reaches no world.
    await testbot.say("Anyone there?", thread=one)
    assert "Anyone there?" not in heard(testbot) and "Anyone there?" not in heard(testbot, "two")
    # Nor does a command there act on the channel's world.
    assert "was stopped" in await testbot.reply("stop confirm", thread=one)
    assert "World “Launch review”: active" in await testbot.reply("status")


async def test_help_says_how_to_fork_and_compare(testbot):
    text = await testbot.reply("help fork")
    assert "fork NAME [--from EVENT_ID]" in text and "no model call" in text and "(moderators)" in text
    assert 'compare A B [--question "TEXT"]' in await testbot.reply("help compare")
    assert "branch NAME TEXT" in await testbot.reply("help branch")
    from bots.commands import parse_command
    # A command menu writes --from as --from_event: both read the same.
    assert parse_command("fork early --from_event 3").args == parse_command("fork early --from 3").args == {
        "name": "early", "at": 3}


class HoldWhileAsked(Verifier):
    """Holds every persona message for a moderator while ``holding``."""

    holding = False

    async def verify(self, text: str, context: VerificationContext) -> Verdict:
        action = VerdictAction.HOLD if self.holding else VerdictAction.PASS
        return Verdict(action=action, text=text, reasons=["a moderator looks first"] if self.holding else [])


async def test_a_message_held_before_the_fork_is_not_in_the_branchs_export(tmp_path):
    verifier = HoldWhileAsked()
    bot = await start_bot(demo_settings(tmp_path, file_dirs=[AGENTS], default_exchanges=0), verifier=verifier)
    try:
        await team(bot)
        verifier.holding = True
        await bot.say("Would you pay $300 for the speaker?")
        verifier.holding = False
        held = await bot.app.storage.held_outbox("memory:general")
        assert held
        thread = thread_of(await bot.command("fork discount"))
        bot.adapter.uploads = True
        exported = [s for s in await bot.command("export md", thread=thread) if s.kind == "file"]
        body = exported[0].file[1].decode()
        assert "Would you pay $300 for the speaker?" in body, "the shared start is in the branch's export"
        assert all(entry.text not in body for entry in held), "words never posted are not shown as said"
    finally:
        await bot.app.stop()


async def test_a_held_message_of_a_branch_approved_in_the_channel_is_heard_in_the_branch_only(tmp_path):
    verifier = HoldWhileAsked()
    bot = await start_bot(demo_settings(tmp_path, file_dirs=[AGENTS], default_exchanges=0), verifier=verifier)
    try:
        await team(bot)
        await bot.say("Would you pay $300 for the speaker?")
        thread = thread_of(await bot.command("fork discount"))
        await bot.say("Priya and Tomasz, would you buy it at $300 after all?")
        verifier.holding = True
        await bot.say("Priya and Tomasz, would you buy it at $199?", thread=thread)
        verifier.holding = False
        held = await bot.app.storage.held_outbox("memory:general")
        assert held
        main = bot.app.sessions.get("memory:general")
        branch = bot.app.branches.named("memory:general", "discount")
        # The branch's event ids run on from the fork, as the channel's world's do: the same ids, other words.
        assert any(e.id == held[0].event_id for e in main.world.events)
        assert "Approved" in await bot.reply(f"approve {held[0].id}")
        listener = next(a for a in branch.world.agents if a.name != held[0].persona)
        assert any(ep.content == held[0].text for ep in listener.episodic.episodes), "heard in the branch"
        for agent in main.world.agents:
            assert all(ep.content != held[0].text for ep in agent.episodic.episodes), "never heard in the channel"
    finally:
        await bot.app.stop()


async def test_a_branch_cut_short_by_a_stop_answers_after_the_restart(tmp_path):
    from tests.fakes.openai_server import FakeOpenAIServer
    from tests.support.testbot import fake_model_settings
    from tests.support.turns import TurnRule, kind_of, user_text

    rule = TurnRule()
    stalled = asyncio.Event()

    async def stalls_in_the_branch(body):
        if kind_of(body) == "agent_turn" and "half price" in user_text(body) and not stalled.is_set():
            stalled.set()
            await asyncio.sleep(3600)
        return rule(body)

    async with FakeOpenAIServer() as server:
        server.responder = stalls_in_the_branch
        settings = fake_model_settings(tmp_path, server, default_exchanges=0)
        bot = await start_bot(settings)
        try:
            await team(bot)
            await bot.say("Would you pay $300 for the speaker?")
            thread = thread_of(await bot.command("fork discount"))
            bot.adapter.push_message("What about half price?", thread=thread)
            await asyncio.wait_for(stalled.wait(), 10)
        finally:
            await bot.app.stop(timeout=0)

        server.responder = rule
        bot = await start_bot(settings)
        try:
            await bot.app.wait_idle()
            answers = [s for s in bot.adapter.posts() if s.thread == thread]
            assert {s.identity for s in answers} == set(TEAM), "the branch answered what it heard before the stop"
            assert all("half price" in s.text for s in answers)
            assert not [s for s in bot.adapter.posts() if s.thread is None and "half price" in s.text]
        finally:
            await bot.app.stop()
