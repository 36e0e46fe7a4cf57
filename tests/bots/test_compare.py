"""``compare A B`` on the in-memory platform: a card per persona, quotes checked against each
branch's own events, verification on everything a persona wrote; and branches draw on one budget."""

from __future__ import annotations

import json
import re

import pytest

from bots.verification import Verdict, VerdictAction, VerificationContext, Verifier
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support.paths import AGENTS
from tests.support.testbot import demo_settings, fake_model_settings, start_bot, thread_of
from tests.support.turns import TurnRule, system_text, user_text

TEAM = ("Priya Nair", "Tomasz Kowalski")


async def team(bot) -> None:
    await bot.command("start Launch review")
    for name in TEAM:
        await bot.command(f"persona add {name}")


def card_of(sent):
    cards = [s for s in sent if s.kind == "card"]
    assert len(cards) == 1, sent
    return cards[0].card


@pytest.fixture
async def testbot(tmp_path):
    bot = await start_bot(demo_settings(tmp_path, file_dirs=[AGENTS]))
    yield bot
    await bot.app.stop()


async def test_compare_puts_the_same_question_to_both_and_shows_each_persona_in_each(testbot):
    await team(testbot)
    await testbot.say("Would you pay $300 for the speaker?")
    thread = thread_of(await testbot.command("fork discount"))
    await testbot.say("It is $199 now.", thread=thread)

    sent = await testbot.command('compare main discount --question "Would you buy it today?"')
    posts = [s for s in sent if s.kind == "post"]
    assert {s.thread for s in posts} == {None, thread}, "both were asked, each answered where it talks"
    card = card_of(sent)
    assert card.title == "Compare “main” and “discount”"
    assert "Both were asked: “Would you buy it today?”" in card.text
    assert re.search(r"Priya Nair +main +█+ 1", card.text), card.text
    assert [f.name for f in card.fields] == list(TEAM)
    for field in card.fields:
        assert field.value.startswith("main: ") and "\ndiscount: " in field.value and "\nChanged: " in field.value
    assert card.footer == "Simulated answers from the offline demo model; they may not reflect what real people think."
    # Each quote is the words of a post in its own branch, with that post's event id.
    branch = testbot.app.branches.named("memory:general", "discount")
    main = testbot.app.sessions.get("memory:general")
    for field in card.fields:
        for line, session in zip(field.value.splitlines(), (main, branch)):
            for text, event_id in re.findall(r"“([^”]+)” \(#(\d+)\)", line):
                said = next(e for e in session.world.events if e.id == int(event_id))
                assert said.source == field.name and text in said.content


async def test_compare_without_a_question_reads_what_was_said_since_the_fork(testbot):
    await team(testbot)
    await testbot.say("Would you pay $300 for the speaker?")
    thread = thread_of(await testbot.command("fork discount"))
    await testbot.say("It is $199 now.", thread=thread)
    card = card_of(await testbot.command("compare discount main"))
    assert "since they parted" in card.text
    for field in card.fields:
        assert "\nmain: said nothing since" in field.value and "Changed: a stance in “discount” only" in field.value

    assert "nothing called “nowhere” to compare here: name two of main, discount" in (await testbot.reply("compare main nowhere"))
    assert "two different worlds" in await testbot.reply("compare main main")
    assert "moderators" in await testbot.reply("compare main discount", user="guest", user_is_moderator=False)


class HoldsSpeaker(Verifier):
    """Holds every persona message that speaks of the speaker's price."""

    async def verify(self, text: str, context: VerificationContext) -> Verdict:
        if "$199" in text or "199" in text:
            return Verdict(action=VerdictAction.HOLD, text=text, reasons=["mentions the new price"])
        return Verdict(action=VerdictAction.PASS, text=text)


async def test_a_stance_verification_would_hold_is_withheld_from_the_card(tmp_path):
    rule = TurnRule()

    def responder(body):
        if system_text(body).startswith("You summarise a group conversation"):
            lines = re.findall(r"\[#(\d+)\] ([^:\n]+): (.+)", user_text(body))
            positions = [{"persona": name, "stance": f"{name.split()[0]} would pay 199 now",
                          "quotes": [{"event_id": int(i), "text": text}]}
                         for i, name, text in lines if name in TEAM]
            return json.dumps({"overview": "They talked.", "key_points": [], "positions": positions})
        return rule(body)

    async with FakeOpenAIServer() as server:
        server.responder = responder
        bot = await start_bot(fake_model_settings(tmp_path, server, default_exchanges=0), verifier=HoldsSpeaker())
        try:
            await team(bot)
            await bot.say("Would you pay $300 for the speaker?")
            thread = thread_of(await bot.command("fork discount"))
            await bot.say("Any thoughts?", thread=thread)
            card = card_of(await bot.command("compare main discount"))
            for field in card.fields:
                assert "199" not in field.value
                assert "stance withheld by verification (mentions the new price)" in field.value
        finally:
            await bot.app.stop()


async def test_a_quote_not_in_the_branchs_events_is_never_shown_as_a_quote(tmp_path):
    rule = TurnRule()

    def responder(body):
        if system_text(body).startswith("You summarise a group conversation"):
            lines = re.findall(r"\[#(\d+)\] ([^:\n]+): (.+)", user_text(body))
            said = {name: (int(i), text) for i, name, text in lines if name in TEAM}
            priya, tomasz = said["Priya Nair"], said["Tomasz Kowalski"]
            return json.dumps({"overview": "They talked.", "key_points": [], "positions": [
                {"persona": "Priya Nair", "stance": "Keen.", "quotes": [{"event_id": priya[0], "text": priya[1]}]},
                # Words Tomasz never said, given the id of a message he did say.
                {"persona": "Tomasz Kowalski", "stance": "Keen too.",
                 "quotes": [{"event_id": tomasz[0], "text": "I would buy ten of them"}]},
            ]})
        return rule(body)

    async with FakeOpenAIServer() as server:
        server.responder = responder
        bot = await start_bot(fake_model_settings(tmp_path, server, default_exchanges=0))
        try:
            await team(bot)
            await bot.say("Would you pay $300 for the speaker?")
            thread = thread_of(await bot.command("fork discount"))
            await bot.say("It is $199 now.", thread=thread)
            card = card_of(await bot.command("compare main discount"))
            fields = {f.name: f.value for f in card.fields}
            assert "discount: Keen. “Priya Nair replies to <" in fields["Priya Nair"]
            assert "I would buy ten of them" not in fields["Tomasz Kowalski"]
            assert "discount: Keen too." in fields["Tomasz Kowalski"]
        finally:
            await bot.app.stop()


async def test_a_fork_makes_no_model_call_and_branches_draw_on_one_budget(tmp_path):
    async with FakeOpenAIServer() as server:
        server.responder = TurnRule()
        settings = fake_model_settings(tmp_path, server, default_exchanges=0)
        settings.llm.budget_tokens = 3000
        bot = await start_bot(settings)
        try:
            await team(bot)
            await bot.say("Would you pay $300 for the speaker?")
            main = bot.app.sessions.get("memory:general")
            calls = len(server.requests)
            spent = bot.app.stack.ledger.scope_totals(main.world.id).total_tokens
            thread = thread_of(await bot.command("fork discount"))
            assert len(server.requests) == calls, "forking made a model call"
            assert bot.app.stack.ledger.scope_totals(main.world.id).total_tokens == spent

            paused = []
            for n in range(40):
                sent = await bot.say(f"Offer {n}: would you pay ${199 - n}?", thread=thread)
                paused = [s.text for s in sent if s.text.startswith("“discount” is paused")]
                if paused:
                    break
            assert paused and "its budget of 3,000 tokens" in paused[0]
            assert bot.app.stack.ledger.scope_totals(main.world.id).total_tokens >= 3000, \
                "the branch's calls count against the channel's world"
            # The channel's world has nothing left to spend either.
            calls = len(server.requests)
            assert "stays paused: it reached its budget" in await bot.reply("run 1")
            spent = bot.app.stack.ledger.scope_totals(main.world.id).total_tokens
        finally:
            await bot.app.stop()

        # What the branch spent still counts after a restart, though the channel's world stored it last
        # before the branch did.
        bot = await start_bot(settings)
        try:
            assert bot.app.stack.ledger.scope_totals(main.world.id).total_tokens == spent
            assert "stays paused: it reached its budget" in await bot.reply("run 1")
            assert "stays paused: it reached its budget" in await bot.reply("resume", thread=thread)
            await bot.say("And in the channel?")
            assert len(server.requests) == calls
        finally:
            await bot.app.stop()


async def test_forks_of_forks_are_compared_from_where_their_lines_parted(testbot):
    await team(testbot)
    await testbot.say("Would you pay $300 for the speaker?")
    one = thread_of(await testbot.command("fork one"))
    main = testbot.app.sessions.get("memory:general")
    parted_from_main = main.world.event_count
    await testbot.say("Priya and Tomasz, would you buy it at $199?", thread=one)
    two = thread_of(await testbot.command("fork two", thread=one))
    first = testbot.app.branches.named("memory:general", "one")
    parted_from_one = first.world.event_count
    assert "This is the branch “two”" in await testbot.reply("status", thread=two)
    await testbot.say("Priya and Tomasz, and at $99?", thread=two)
    assert "$99" not in " ".join(e.content for e in first.world.events), "a fork of a fork is heard apart too"

    assert f"(after event #{parted_from_one})" in card_of(await testbot.command("compare one two")).text
    assert f"(after event #{parted_from_main})" in card_of(await testbot.command("compare main two")).text
    # Stopping the first branch stops the one forked from it; the channel's world goes on.
    assert "with two, forked from it" in await testbot.reply("stop confirm", thread=one)
    assert testbot.app.branches.of_channel("memory:general") == []
