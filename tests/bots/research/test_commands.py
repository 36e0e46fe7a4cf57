"""The research commands as moderators use them: cards, charts, files, generated personas, the focus group."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import matplotlib.image

from bots.storage import OutboxStatus
from simulation.events import EventKind
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support.testbot import demo_settings, start_bot

DISCLAIMER = "they may not reflect what real people think"


def cards(sent) -> list:
    return [s.card for s in sent if s.kind == "card"]


async def test_poll_posts_a_tally_card_with_a_chart_of_the_votes(bot, tmp_path: Path) -> None:
    sent = await bot.command('poll "Ship on Friday?" yes no later')
    card = cards(sent)[0]
    assert card.title == "Poll: Ship on Friday?"
    votes = {line.split(":")[0]: int(line.split(":")[1].split()[0]) for line in card.text.splitlines()[1:]}
    assert set(votes) == {"yes", "no", "later"} and sum(votes.values()) == 3
    assert {f.name.split(":")[0] for f in card.fields} == {"Priya Nair", "Tomasz Kowalski", "Henrik Lindqvist"}
    assert DISCLAIMER in card.footer and "demo" in card.footer
    name, png = card.image
    assert name.endswith(".png") and png.startswith(b"\x89PNG")
    image = matplotlib.image.imread(io.BytesIO(png), format="png")
    assert image.shape[0] > 100 and image.shape[1] > 100


async def test_bad_polls_are_explained(bot) -> None:
    assert "at least two options" in await bot.reply('poll "Ship?" yes')
    assert "must differ" in await bot.reply('poll "Ship?" yes Yes')


async def test_summary_card_quotes_what_was_said(bot) -> None:
    card = cards(await bot.command("summary"))[0]
    assert card.title == "Summary of “Pricing research”"
    assert card.footer.startswith("Events #1–#"), card.footer
    session = bot.app.sessions.get("memory:general")
    said = {e.id: e.content for e in session.world.events if e.kind is EventKind.ACTION and e.type == "TALK"}
    assert card.fields, "each persona who spoke has a stance"
    for field in card.fields:
        quote = field.value.split("“", 1)[1].split("”", 1)[0]
        event_id = int(field.value.rsplit("(#", 1)[1].rstrip(")"))
        assert quote in said[event_id]
    assert DISCLAIMER in card.footer


async def test_summary_card_puts_each_yes_or_no_in_a_word_and_quotes_the_answer(bot) -> None:
    """To "Should we ship … on Friday?" an answer opening "Not yet" reads "Would wait." with the answer
    quoted after it, reason and all; the card never says the same words twice."""
    card = cards(await bot.command("summary"))[0]
    session = bot.app.sessions.get("memory:general")
    said = {e.source: e.content for e in session.world.events if e.kind is EventKind.ACTION and e.type == "TALK"}
    words = {"Yes": "For it.", "I'd say yes": "For it.", "Not yet": "Would wait.", "I'd hold off": "Would wait.",
             "Honestly, no": "Against it."}
    assert {f.name for f in card.fields} == set(said)
    stances = {f.name: next(word for lead, word in words.items() if said[f.name].startswith(lead)) for f in card.fields}
    # The key points group the personas by their answer, in the order for, wait, against.
    points = [line.removeprefix("• ") for line in card.text.splitlines()[1:]]
    groups = [w for w in ("For it.", "Would wait.", "Against it.") if w in stances.values()]
    assert points == [f"{w.rstrip('.')}: {', '.join(n for n in said if stances[n] == w)}" for w in groups], points
    for field in card.fields:
        expected = stances[field.name]
        stance, quote = field.value.split(" “", 1)
        assert stance == expected, field.value
        quote = quote.split("”", 1)[0]
        assert said[field.name].startswith(quote) and len(quote) > len(said[field.name].split(".")[0]) + 1


async def test_summary_card_does_not_repeat_a_stance_that_is_its_quote(bot) -> None:
    await bot.command("reset confirm")
    await bot.say("What worries you most about the onboarding flow?")
    card = cards(await bot.command("summary"))[0]
    assert card.fields
    for field in card.fields:
        quote = field.value.split("“", 1)[1].split("”", 1)[0]
        assert field.value.count(quote) == 1 and field.value.startswith("“"), field.value


async def test_a_summary_follows_the_topics_as_they_change_focus_groups_included(bot) -> None:
    """Three topics in turn (the opening question, a focus group, a new question): the summary names
    each, counts every yes or no under the question it answered, and states no question as a stance."""
    await bot.command('focus "Would you pay 5 euros a month for premium?" --rounds 1')
    await bot.say("New topic: what do you think of the new logo?")
    card = cards(await bot.command("summary"))[0]
    overview, *points = [line.removeprefix("• ") for line in card.text.splitlines()]
    topics = ["Should we ship the new onboarding flow on Friday?", "Would you pay 5 euros a month for premium?",
              "New topic: what do you think of the new logo?"]
    places = [overview.find(t) for t in topics]
    assert -1 not in places and places == sorted(places), overview
    short = [" ".join(t.split()[:8]) for t in topics]
    for point in points:
        assert point.startswith(tuple(f'On "{t}' for t in short)), point
    votes = [p for p in points if p.split(": ", 1)[1].startswith(("For it", "Would wait", "Against it"))]
    assert {p.split(": ")[0] for p in votes} == {f'On "{t}…"' for t in short[:2]}, "yes/no only where asked"
    session = bot.app.sessions.get("memory:general")
    said = {e.id: e for e in session.world.events}
    for field in card.fields:
        stance = field.value.split("“")[0]
        assert not stance.rstrip(" .").endswith("?"), field.value
    for position in (await _last_summary(session)).positions:
        event = said[position.quotes[0].event_id]
        assert event.source == position.persona and event.id > max(
            e.id for e in said.values() if e.kind is EventKind.STIMULUS and "logo" in e.content)


async def _last_summary(session):
    from simulation.summary import Summarizer

    return await Summarizer(session.world.model).summarize(session.world)


async def test_focus_group_runs_rounds_posts_answers_and_a_report(bot) -> None:
    sent = await bot.command('focus "Would you pay 5 euros a month for premium?" --rounds 2 --personas "Priya, Henrik"')
    assert "Focus group started (2 round(s)) with Priya Nair, Henrik Lindqvist" in sent[0].text
    await bot.app.wait_idle()
    sent += bot._new()
    posts = [s for s in sent if s.kind == "post"]
    assert [p.identity for p in posts] == ["Priya Nair", "Henrik Lindqvist"] * 2
    progress = [s.text for s in sent if s.kind == "progress"]
    assert "Focus group: round 1/2: Priya is thinking" in progress
    assert progress[-1] == "Focus group: focus group finished"
    report = cards(sent)[-1]
    assert report.title.startswith("Focus group: Would you pay 5 euros")
    assert DISCLAIMER in report.footer and "2 round(s), 4 turns" in report.footer
    # The report is about the question, and each stance is the persona's answer to it.
    assert 'talked about "Would you pay 5 euros a month for premium?"' in report.text
    first_answers = {p.identity: p.text for p in posts[:2]}
    for field in report.fields:
        quote = field.value.split("“", 1)[1].split("”", 1)[0]
        assert quote in first_answers[field.name.split(":")[0]]
    session = bot.app.sessions.get("memory:general")
    assert session.focus is None
    entries = await bot.app.storage.outbox_entries(session.record.id)
    assert sum(e.status is OutboxStatus.POSTED for e in entries) == len([e for e in entries if e.status is not OutboxStatus.BLOCKED])


async def test_a_probe_without_a_focus_group_is_explained(bot) -> None:
    assert "No focus group ran here" in await bot.reply("probe and at 10 euros?")


async def test_a_probe_after_the_focus_group_finished_is_answered_in_one_more_round(bot) -> None:
    await bot.command('focus "Would you pay 5 euros a month?" --rounds 1 --personas "Priya, Henrik"')
    await bot.app.wait_idle()
    session = bot.app.sessions.get("memory:general")
    assert session.focus is None, "the group has finished"
    sent = await bot.command("probe And at 10 euros?")
    assert next(s.text for s in sent if s.kind == "reply").startswith(
        "The focus group had finished: one more round asks Priya Nair, Henrik Lindqvist that.")
    await bot.app.wait_idle()
    asked = [e for e in session.world.events if e.type == "CONVERSATION" and "10 euros" in e.content]
    assert [e.target for e in asked] == ["Priya Nair", "Henrik Lindqvist"]
    answered = {e.source for e in session.world.events if e.type == "TALK" and e.id > asked[0].id}
    assert {"Priya Nair", "Henrik Lindqvist"} <= answered


async def test_extract_shares_a_csv_with_a_row_per_persona(bot) -> None:
    sent = await bot.command("extract stance willingness_to_pay --format csv")
    shared = next(s for s in sent if s.kind == "file")
    name, data = shared.file
    assert name == "extract-pricing-research.csv"
    text = data.decode()
    assert text.startswith("persona,"), "the header is line 1"
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["persona"] for r in rows] == ["Priya Nair", "Tomasz Kowalski", "Henrik Lindqvist"]
    assert all(r["note"].startswith("Simulated answers") for r in rows), "the disclaimer is a column"
    assert {"stance", "willingness_to_pay"} <= set(rows[0])


async def test_extract_json_carries_the_note_and_the_model(bot) -> None:
    sent = await bot.command("extract stance")
    raw = next(s for s in sent if s.kind == "file").file[1]
    assert raw.endswith(b"\n"), "a text file ends with a newline"
    data = json.loads(raw)
    assert DISCLAIMER in data["disclaimer"] and data["model_name"] == "demo"
    assert set(data["records"]) == {"Priya Nair", "Tomasz Kowalski", "Henrik Lindqvist"}


async def test_extract_fills_each_field_from_the_answer_that_speaks_to_it(bot) -> None:
    """Willingness to pay comes from each persona's answer to the price question, its stance from
    its latest words, and a field nobody spoke of stays empty: no field repeats the last message."""
    await bot.command('focus "Would you pay 5 euros a month for premium?" --rounds 1')
    await bot.say("New topic: what do you think of the new logo?")
    sent = await bot.command("extract stance willingness_to_pay favourite_colour")
    records = json.loads(next(s for s in sent if s.kind == "file").file[1])["records"]
    session = bot.app.sessions.get("memory:general")
    events = session.world.events
    for persona, record in records.items():
        asked = next(e for e in events if e.kind is EventKind.STIMULUS and e.target == persona and "5 euros" in e.content)
        answer = next(e for e in events if e.id > asked.id and e.source == persona and e.type == "TALK")
        assert record["willingness_to_pay"] == answer.content, (persona, record)
        latest = [e.content for e in events if e.source == persona and e.type == "TALK"][-1]
        assert record["stance"] == latest and record["stance"] != record["willingness_to_pay"], record
        assert record["favourite_colour"] is None, record


async def test_generate_adds_distinct_valid_personas_to_the_world_and_database(bot) -> None:
    sent = await bot.command('generate 2 "nurses working night shifts in Lisbon"')
    assert "Generated 2 persona(s)" in sent[0].text
    assert sent[0].text.endswith("Simulated personas from the offline demo model; they may not reflect what real people think.")
    session = bot.app.sessions.get("memory:general")
    names = [a.name for a in session.world.agents]
    assert len(names) == 5 and len(set(names)) == 5
    stored = await bot.app.storage.load_world(session.record.id)
    assert [p.name for p in stored.personas] == names
    assert "room for" in await bot.reply('generate 12 "more nurses"')


async def test_story_suggests_then_injects_a_beat_the_personas_react_to(bot) -> None:
    suggestion = cards(await bot.command("story"))[0]
    assert suggestion.title == "Suggested next beat"
    assert suggestion.footer == "`story inject` delivers it. Suggested by the offline demo model."
    sent = await bot.command("story inject")
    assert next(s.text for s in sent if s.kind == "reply").startswith("Injected")
    assert any(s.kind == "post" for s in sent + bot._new())
    session = bot.app.sessions.get("memory:general")
    assert any(e.kind is EventKind.STIMULUS and e.source == "narrator" for e in session.world.events)


async def test_validate_scores_a_persona_against_expectations(bot) -> None:
    card = cards(await bot.command('validate Priya "a product manager who cares about customers"'))[0]
    score = float(card.title.split(": ")[1].split()[0])
    assert card.title.startswith("Validation of Priya Nair") and 0 <= score <= 1
    assert card.fields and DISCLAIMER in card.footer
    # Each question on its own line and its answer below it, not run together.
    lines = card.as_text().splitlines()
    for field in card.fields:
        assert field.name.endswith("?")
        at = lines.index(f"**{field.label}**")
        assert lines[at + 1] == field.value
    assert "no persona" in (await bot.reply('validate Nobody "anything"')).lower()


async def test_enrich_returns_the_enriched_text(bot) -> None:
    card = cards(await bot.command('enrich "Try our app: it saves time." --requirements "add a price"'))[0]
    assert card.title == "Enriched content" and "Try our app" in card.text
    assert card.footer == "Written by the offline demo model for use in the simulation."


async def test_research_on_a_failing_model_explains_and_changes_nothing(tmp_path: Path) -> None:
    async with FakeOpenAIServer() as server:
        settings = demo_settings(tmp_path)
        settings.llm = settings.llm.model_copy(update={"provider": "openai", "base_url": server.base_url,
                                                       "model": "gpt-4o-mini", "max_retries": 0, "cache": False})
        from pydantic import SecretStr

        settings.llm.api_key = SecretStr("sk-test")
        bot = await start_bot(settings)
        try:
            await bot.command("start Pricing research")
            await bot.command("persona add Priya Nair")
            server.script(["{not json", "{still not json"] * 4)
            reply = await bot.reply('validate Priya "a pragmatic designer"')
            assert "could not finish" in reply and "validate" in reply
            server.fail("server_error", times=10)
            reply = await bot.reply("summary")
            assert "could not finish" in reply or "No one" in reply or "Summary" in reply
            session = bot.app.sessions.get("memory:general")
            assert [a.name for a in session.world.agents] == ["Priya Nair"]
        finally:
            await bot.app.stop()


async def test_a_summary_since_an_event_still_to_come_says_so(bot) -> None:
    latest = bot.app.sessions.get("memory:general").world.event_count
    text = await bot.reply(f"summary --since {latest + 100}")
    assert text == f"There is nothing after event #{latest + 100}: this world's latest event is #{latest}."
    assert cards(await bot.command(f"summary --since {latest - 1}")), "the last event alone is summarised"


async def test_a_beat_addressed_to_one_persona_is_answered_by_that_persona(bot) -> None:
    from simulation.storytelling import StoryBeat

    await bot.command("policy everyone --exchanges 0")
    session = bot.app.sessions.get("memory:general")
    session.story_beat = StoryBeat(kind="message", content="Henrik, what does the budget say about Friday?",
                                   target="Henrik Lindqvist", rationale="the finances decide it")
    await bot.app.wait_idle()
    bot._new()  # what the opening message set off is not this test's
    sent = await bot.command("story inject")
    assert next(s.text for s in sent if s.kind == "reply").startswith("Injected, addressed to Henrik Lindqvist")
    assert [s.identity for s in sent if s.kind == "post"] == ["Henrik Lindqvist"], "only the one addressed answers"
