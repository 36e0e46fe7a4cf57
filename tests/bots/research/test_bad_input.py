"""Research commands given wrong or stale input, or overtaken by a stop or reset: each says what is
wrong and how to write it, in one line, and nothing runs on in a world that is gone."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bots.storage import RECENT_EVENTS_HELD
from simulation.events import EventKind
from simulation.summary import MAX_MESSAGES, conversation
from tests.support.testbot import TEAM, demo_settings, start_bot


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
    sent = await focus_then(bot, "stop confirm", after_answers=after_answers)
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
    sent = await focus_then(bot, "reset confirm", after_answers=after_answers)
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


async def test_stop_while_the_report_is_being_written_posts_no_report(bot, monkeypatch) -> None:
    focus_groups = bot.app.focus_groups
    writing, never = asyncio.Event(), asyncio.Event()

    async def slow_card(session, report):
        writing.set()
        await never.wait()

    monkeypatch.setattr(focus_groups, "report_card", slow_card)
    bot.adapter.push_command('focus "Would you pay?" --rounds 1')
    await writing.wait()
    sent = await bot.command("stop confirm")
    assert "focus group" in sent[-1].text and "cancelled" in sent[-1].text
    assert not bot._new()


async def test_stop_and_reset_without_a_focus_group_say_nothing_of_one(bot) -> None:
    assert "focus" not in await bot.reply("reset confirm")
    assert "focus" not in await bot.reply("stop confirm")


# -- extract ------------------------------------------------------------------------------------


def nested(levels: int) -> dict:
    """A property's schema of arrays ``levels`` deep."""
    node: dict = {"type": "string"}
    for _ in range(levels):
        node = {"type": "array", "items": node}
    return node


@pytest.mark.parametrize(
    "content, expected",
    [
        ("[1, 2]", "must be a JSON object"),
        ('"stance"', "must be a JSON object"),
        ("{}", "'properties'"),
        ('{"type": "object", "properties": []}', "'properties'"),
        ('{"type": "object", "properties": {"a": 5}}', "a: a property's schema must be an object"),
        ('{"type": "object", "properties": {"a": {"type": "strnig"}}}', "unsupported JSON schema type 'strnig'"),
        ('{"type": "object", "properties": {"a": {"type": {"x": 1}}}}', "unsupported JSON schema type {\"x\": 1}; 'type' is one of string"),
        ('{"type": "object", "properties": {"a": {"enum": 5}}}', "enum"),
        ('{"type": "object", "properties": {"a": {}}, "required": 5}', "required"),
        ('{"type": "object", "properties": {"a": {"type": "object", "properties": [1]}}}', "'properties'"),
        ('{"type": "object", "properties": {"a": {"type": "array", "items": 3}}}', "a property's schema must be an object"),
        ("{not json", "not valid JSON"),
        (json.dumps({"properties": {"stance": nested(17)}}), "more than 16 levels deep"),
        (json.dumps({"properties": {"stance": nested(300)}}), "more than 16 levels deep"),
    ],
)
async def test_a_schema_file_that_cannot_be_used_is_explained(bot, tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "schema.json"
    path.write_text(content, encoding="utf-8")
    failed = []
    bot.adapter.command_failed = failed.append
    sent = await bot.command(f"extract --schema {path}")
    assert len(sent) == 1 and sent[0].kind == "private", sent
    text = one_line(sent[0].text)
    assert expected in text and "schema.json" in text
    assert "try again" not in text and "usage" not in text
    assert len(failed) == 1


async def test_repeated_extract_fields_are_an_input_mistake_not_a_failure_to_retry(bot) -> None:
    text = one_line(await bot.reply("extract stance Stance"))
    assert "stance" in text and "more than once" in text
    assert "try again" not in text and "budget" not in text


async def test_a_schema_with_odd_property_names_extracts_every_property(bot, tmp_path: Path) -> None:
    path = tmp_path / "schema.json"
    path.write_text(json.dumps({"type": "object", "properties": {"a b": {}, "field_0": {}}}), encoding="utf-8")
    sent = await bot.command(f"extract --schema {path}")
    data = json.loads(next(s for s in sent if s.kind == "file").file[1])
    assert all(set(record) == {"a b", "field_0"} for record in data["records"].values())
    # Field names a model class has for itself are columns like any other.
    sent = await bot.command("extract json copy stance")
    data = json.loads(next(s for s in sent if s.kind == "file").file[1])
    assert all(list(record) == ["json", "copy", "stance"] for record in data["records"].values())


# -- files that cannot be saved -----------------------------------------------------------------


@pytest.mark.parametrize("command", ["export md", "extract stance"])
async def test_a_file_that_cannot_be_saved_is_reported_and_the_command_counts_as_failed(bot, tmp_path: Path,
                                                                                        command: str) -> None:
    (tmp_path / "exports").write_text("not a folder")
    bot.adapter.on_host, bot.adapter.uploads = True, False  # as in the console, which saves the files it cannot show
    failed = []
    bot.adapter.command_failed = failed.append
    sent = await bot.command(command)
    assert len(sent) == 1, sent
    text = one_line(sent[0].text)
    assert "Could not save" in text and "exports" in text and "Saved" not in text
    assert len(failed) == 1


# -- polls --------------------------------------------------------------------------------------


async def test_a_poll_without_a_question_says_how_to_write_one(bot) -> None:
    text = one_line(await bot.reply('poll "" yes no'))
    assert text == 'the poll needs a question: `poll "QUESTION" OPTION OPTION [OPTION...]`'
    assert "at least two options" in one_line(await bot.reply('poll "Ship?" yes ""'))


async def test_an_unquoted_question_is_read_up_to_its_question_mark_and_the_card_says_so(bot) -> None:
    card = cards(await bot.command("poll Ship on Friday? yes no"))[0]
    assert card.title == "Poll: Ship on Friday?"
    assert "Read “Ship on Friday?” as the question" in card.text
    votes = [line.split(":")[0] for line in card.text.splitlines() if line.split(":")[0] in ("yes", "no", "on", "Friday?")]
    assert votes == ["yes", "no"]
    # A quoted question, or a one-word one, is taken as written, without a note.
    assert "Read" not in cards(await bot.command('poll "Ship" yes no maybe?'))[0].text
    assert "Read" not in cards(await bot.command("poll Ship? yes no"))[0].text
    assert "after the question “Ship on Friday?” the poll needs at least two options" in await bot.reply(
        "poll Ship on Friday? yes")


async def test_an_apostrophe_in_a_word_is_not_an_open_quote(bot) -> None:
    """"What's our plan?" and "O'Brien's fix" are words, not the start of a quoted string."""
    assert cards(await bot.command("poll What's our plan for Q3? ship wait"))[0].title == "Poll: What's our plan for Q3?"
    assert cards(await bot.command("poll \"Ship O'Brien's fix?\" yes no"))[0].title == "Poll: Ship O'Brien's fix?"
    assert "check your quotes" in await bot.reply('poll "Ship on Friday? yes no')


# -- duplicates ---------------------------------------------------------------------------------


async def test_a_persona_named_twice_joins_a_focus_group_once(bot) -> None:
    sent = await bot.command('focus "Dup?" --personas "Priya, priya nair" --rounds 1')
    assert "with Priya Nair:" in sent[0].text
    await bot.app.wait_idle()
    sent += bot._new()
    assert [s.identity for s in sent if s.kind == "post"] == ["Priya Nair"]
    assert "1 round(s), 1 turns" in cards(sent)[-1].footer


async def test_a_persona_picked_twice_is_picked_once(bot) -> None:
    await bot.command("policy moderator")
    reply = await bot.reply("pick Priya Priya")
    assert reply == "Next: Priya Nair. Nothing to answer yet: the pick waits for the next message."


def test_a_focus_group_library_user_naming_a_persona_twice_gets_it_once() -> None:
    from simulation.agent import TinyPerson
    from simulation.focus_group import FocusGroup
    from simulation.llm.demo import DemoModel
    from simulation.persona import find_bundled_persona
    from simulation.world import TinyWorld

    model = DemoModel()
    world = TinyWorld("w", [TinyPerson(find_bundled_persona(n), model) for n in TEAM], model=model)
    group = FocusGroup(world, "Dup?", personas=["Henrik", "Priya", "priya nair", world.get("Henrik")])
    assert [a.name for a in group.personas] == ["Henrik Lindqvist", "Priya Nair"]


# -- missing descriptions -------------------------------------------------------------------------


async def test_validate_without_expectations_and_generate_without_a_population_say_how_to_write_them(bot) -> None:
    text = one_line(await bot.reply('validate Priya ""'))
    assert text == 'validation needs expectations to check against: `validate NAME "EXPECTATIONS"`'
    text = one_line(await bot.reply('generate 2 "  "'))
    assert text.startswith("generating personas needs a description of the population: `generate N")
    assert [a.name for a in session_of(bot).world.agents] == list(TEAM)


# -- story --------------------------------------------------------------------------------------


async def test_a_beat_for_someone_who_left_is_not_delivered(bot) -> None:
    session = session_of(bot)
    card = cards(await bot.command("story"))[0]
    target = session.story_beat.target or "Henrik Lindqvist"
    session.story_beat = session.story_beat.model_copy(update={"target": target})
    await bot.command(f"persona remove {target}")
    before = session.world.event_count
    text = one_line(await bot.reply("story inject"))
    assert target in text and "`story`" in text and "left" in text
    assert session.world.event_count == before and card


async def test_story_inject_with_no_personas_left_is_refused(bot) -> None:
    session = session_of(bot)
    await bot.command("story")
    for name in TEAM:
        await bot.command(f"persona remove {name}")
    before = session.world.event_count
    text = one_line(await bot.reply("story inject"))
    assert "no personas" in text and "persona add" in text
    assert session.world.event_count == before
    assert "no personas" in one_line(await bot.reply("story"))


async def test_the_storyteller_refuses_a_beat_for_a_persona_who_left() -> None:
    from simulation.agent import TinyPerson
    from simulation.llm.demo import DemoModel
    from simulation.persona import find_bundled_persona
    from simulation.storytelling import StaleBeatError, StoryBeat, Storyteller
    from simulation.world import TinyWorld

    model = DemoModel()
    world = TinyWorld("w", [TinyPerson(find_bundled_persona(n), model) for n in TEAM], model=model)
    teller = Storyteller(model, purpose="pricing")
    beat = StoryBeat(kind="message", content="Henrik, is it worth it?", target="Henrik Lindqvist", rationale="r")
    world.remove_agent("Henrik Lindqvist")
    with pytest.raises(StaleBeatError, match="Henrik Lindqvist, who has left"):
        await teller.inject(world, beat)
    for name in TEAM[:2]:
        world.remove_agent(name)
    with pytest.raises(StaleBeatError, match="no personas"):
        await teller.inject(world, beat.model_copy(update={"target": None}))
    assert not world.events


# -- summary of a long world -------------------------------------------------------------------


def span_of(footer: str) -> tuple[int, int]:
    first, last = footer.split(" ", 2)[1].rstrip(".:").split("–")
    return int(first.lstrip("#")), int(last.lstrip("#"))


async def test_a_summary_of_a_long_world_says_which_events_it_covers_before_and_after_a_restart(tmp_path: Path) -> None:
    settings = demo_settings(tmp_path)
    bot = await start_bot(settings)
    try:
        await bot.command("start Long")
        await bot.command("persona add Priya Nair")
        await bot.command("policy everyone --exchanges 0")
        while session_of(bot).world.event_count < RECENT_EVENTS_HELD + RECENT_EVENTS_HELD // 4 + 10:
            await bot.say("And what do you think now?")
        assert session_of(bot).world.events_first > 0, "the oldest events are only in storage now"
        before = cards(await bot.command("summary"))[0]
    finally:
        await bot.app.stop()
    bot = await start_bot(settings)
    try:
        after = cards(await bot.command("summary"))[0]
        assert (after.footer, after.text) == (before.footer, before.text), "a restart changes nothing"
        log = await session_of(bot).whole_log()
        messages = conversation(log)
        first, last = span_of(after.footer)
        assert last == log[-1].id and first > 1
        assert sum(first <= e.id <= last for e in messages) == MAX_MESSAGES
        talks = sum(first <= e.id <= last and e.kind is EventKind.ACTION for e in messages)
        assert f"in {talks} messages" in after.text
        assert f"the latest {MAX_MESSAGES} messages; earlier ones are not in this summary" in after.footer
        # From the first event, the first messages, and where the next summary goes on from.
        page = cards(await bot.command("summary --since 0"))[0]
        first, last = span_of(page.footer)
        assert (first, last) == (1, messages[MAX_MESSAGES - 1].id)
        assert f"`summary --since {last}` goes on" in page.footer
        rest = cards(await bot.command(f"summary --since {last}"))[0]
        assert span_of(rest.footer)[0] == last + 1
    finally:
        await bot.app.stop()


async def test_the_summarizer_states_the_range_it_read_when_the_world_holds_only_recent_events(monkeypatch) -> None:
    import simulation.summary
    from simulation.agent import TinyPerson
    from simulation.llm.demo import DemoModel
    from simulation.persona import find_bundled_persona
    from simulation.summary import Summarizer
    from simulation.world import TinyWorld

    model = DemoModel()
    world = TinyWorld("w", [TinyPerson(find_bundled_persona("Priya Nair"), model)], model=model)
    for i in range(4):
        await world.broadcast(f"Question {i}?", source="mod")
        await world.step()
    summary = await Summarizer(model).summarize(world)
    assert (summary.since_event_id, summary.more_before, summary.more_after) == (None, False, False)
    world.forget_events_before(3)
    summary = await Summarizer(model).summarize(world)
    assert summary.since_event_id == 3 and summary.more_before and summary.last_event_id == world.events[-1].id
    # Past the character budget, the latest messages that fit are read.
    monkeypatch.setattr(simulation.summary, "MAX_CHARS", 60)
    summary = await Summarizer(model).summarize(world)
    said = conversation(world.events)
    assert summary.messages < len(said) and summary.since_event_id == said[-summary.messages - 1].id
