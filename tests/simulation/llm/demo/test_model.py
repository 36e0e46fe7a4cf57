"""The offline demo model: a newcomer sees personas answer in character with no key and no network."""

from __future__ import annotations

import re

from simulation.agent import TinyPerson
from simulation.llm.demo import DemoModel
from simulation.persona import load_persona
from simulation.world import TinyWorld
from tests.support.worlds import people

QUESTION = "Which would you rather buy for your home: a $300 smart speaker or a $300 robot vacuum? Why?"


def world() -> TinyWorld:
    model = DemoModel()
    return TinyWorld("demo", people(model), model=model)


async def test_demo_personas_answer_the_question_in_their_own_words():
    w = world()
    await w.broadcast(QUESTION)
    events = await w.run(1)
    talks = [e for e in events if e.type == "TALK"]
    assert [e.source for e in talks] == ["Lisa Carter", "Oscar", "Marcos Almeida"]
    for event in talks:
        assert event.model == "demo", "demo output is labelled as such"
        assert "smart speaker" in event.content or "robot vacuum" in event.content
    assert len({e.content for e in talks}) == 3, "each persona answers differently"
    # Replies draw on the persona's own words.
    for event in talks:
        persona_text = str(w.get(event.source).spec.to_tinytroupe_dict()).lower()
        reason = event.content.split(". ", 1)[1].split(";")[0].split(",")[0].lower()[:25]
        assert reason in persona_text, f"{event.source}: {event.content!r}"


async def test_demo_world_is_deterministic_and_quiets_down():
    first, second = world(), world()
    for w in (first, second):
        await w.broadcast(QUESTION)
        await w.run_until_quiet(max_steps=20)
    assert [e.content for e in first.events] == [e.content for e in second.events]
    assert first.clock.step < 20, "personas stop talking among themselves eventually"
    assert not any(a.has_unread() for a in first.agents)


async def test_demo_model_answers_any_structured_request():
    from pydantic import BaseModel

    from simulation.llm.base import ChatRequest, Message

    class Verdict(BaseModel):
        label: str
        score: float
        tags: list[str]

    value, result = await DemoModel().structured(
        ChatRequest(messages=[Message(role="user", content="judge this")]), Verdict
    )
    assert result.model == "demo" and value.label.startswith("(demo model)")


async def test_demo_personas_speak_of_themselves_in_the_first_person():
    """Persona files describe the persona as "he" or "she"; in a reply that becomes "I", "my", "me"."""
    import re

    from simulation.persona import bundled_personas

    model = DemoModel()
    people = [TinyPerson(load_persona(path), model) for path in dict.fromkeys(bundled_personas().values())]
    w = TinyWorld("demo", people, model=model)
    questions = ["What do you all hope for in the next few years?", "Should we move the launch to March?",
                 "What do you think about the new roadmap?", "Is the budget realistic?",
                 "What keeps you busy outside work?", "What would make your week better?"]
    replies: list[str] = []
    for question in questions:
        await w.broadcast(question)
        replies += [e.content for e in await w.run(1) if e.type == "TALK"]
    assert len(replies) >= len(questions) * len(people)
    third_person = [r for r in replies if re.search(r"\b(he|she|him|his|himself|herself)\b", r, re.IGNORECASE)]
    assert not third_person, third_person[:5]
    assert not [r for r in replies if re.search(r"\bi(?:'m|'d)?\b", r)], "'I' keeps its capital"


async def test_demo_replies_from_a_sparse_persona_and_with_proper_nouns_read_well():
    """A pasted persona with only a name and a job still answers in whole phrases, and a day of the
    week keeps its capital inside a sentence."""
    from simulation.agent import TinyPerson
    from simulation.llm.demo import DemoModel
    from simulation.persona import PersonaSpec

    model = DemoModel()
    sparse = TinyPerson(PersonaSpec.from_data({"name": "Sam Lee", "occupation": "student"}, source="pasted"), model)
    said = []
    for n in range(12):
        sparse.listen(f"Point {n}: the new timetable starts next week." if n % 2 else f"What about plan {n}?", "Ana")
        said += [a.content for a in (await sparse.act()).actions if a.type.value == "TALK"]
    assert said and not any(line.endswith((": student.", " of student.")) for line in said), said
    assert any("as a student" in line for line in said)
    wary = TinyPerson(PersonaSpec.from_data({"name": "Kim Ode", "occupation": "engineer",
                                             "dislikes": ["Friday deployments."]}, source="pasted"), model)
    words = []
    for n in range(12):
        wary.listen(f"Should we ship release {n} on Friday?", "Ana")
        words += [a.content for a in (await wary.act()).actions if a.type.value == "TALK"]
    assert any("Friday deployments" in line for line in words) and not any("friday deployments" in line for line in words)


async def test_a_hedged_demo_answer_reads_as_one_sentence():
    """"I'd want to know more first, but I'm wary of X" — not "… but I'm wary of X is what comes to mind"."""
    from simulation.persona import bundled_personas

    model = DemoModel()
    hedged = []
    for path in sorted(set(bundled_personas().values())):
        person = TinyPerson(load_persona(path), model)
        for question in ("What do you think?", "hello, anyone?", "How should we plan the launch?", "Any risks?"):
            person.listen(question, "mod")
            hedged += [a.content for a in (await person.act()).actions
                       if a.type.value == "TALK" and a.content.startswith("I'd want to know more first")]
    assert hedged, "the template is used"
    assert not [h for h in hedged if re.search(r"but (I'm|I |my goal).* is what comes to mind", h)], hedged


async def test_demo_thoughts_quote_a_short_message_whole_and_name_the_job_with_its_article():
    """"You bring up "Should we ship on Friday?". I'll answer as a data scientist." — no ellipsis
    after a message quoted whole, and the job reads as in a sentence (acronyms and states too)."""
    from simulation.persona import PersonaSpec

    model = DemoModel()

    async def thought(occupation: str, message: str) -> str:
        person = TinyPerson(PersonaSpec.from_data({"name": "Ada Vos", "occupation": occupation}, source="pasted"), model)
        person.listen(message, "you")
        return next(a.content for a in (await person.act()).actions if a.type.value == "THINK")

    short = await thought("Data Scientist", "Should we ship on Friday?")
    assert short == 'You bring up "Should we ship on Friday?". I\'ll answer as a data scientist.', short
    long = await thought("HR Lead", "one two three four five six seven eight nine ten eleven twelve")
    assert '"one two three four five six seven eight nine ten…"' in long and long.endswith("as an HR lead."), long
    assert (await thought("UX Researcher", "Hi?")).endswith("as a UX researcher.")
    assert (await thought("Unemployed", "Hi?")).endswith("as someone unemployed.")
    assert (await thought("", "Hi?")).endswith("I'll answer from my own experience.")


async def test_a_demo_yes_is_not_argued_with_a_no():
    """A yes-answer's reason never says "no" or "not" ("Yes, I think so. Saying no to most requests is
    the job." argued against itself), for every bundled persona and a spread of yes/no questions."""
    from simulation.persona import bundled_personas

    model = DemoModel()
    specs = [load_persona(path) for path in dict.fromkeys(bundled_personas().values())]
    yes_replies: list[str] = []
    for question in ("Should we ship on Friday?", "Should we move the launch to March?", "Is the budget realistic?",
                     "Can we drop the free tier?", "Would you pay 5 euros a month for premium?",
                     "Should the team work from the office on Mondays?", "Do we need a second on-call rotation?"):
        for asker in ("you", "moderator"):
            w = TinyWorld("demo", [TinyPerson(spec, model) for spec in specs], model=model)
            await w.broadcast(question, source=asker)
            yes_replies += [e.content for e in await w.run(1)
                            if e.type == "TALK" and e.content.startswith(("Yes", "I'd say yes"))]
    assert len(yes_replies) >= 10, yes_replies
    argued = [r for r in yes_replies if re.search(r"\b(?:no|not|never)\b|n't\b", r.split(".", 1)[1] if "." in r else "", re.I)]
    assert not argued, argued


async def test_demo_open_questions_are_answered_in_their_own_words():
    """"What worries you most about the launch?" gets "What worries me about the launch is …" or
    "Mostly …" with one of the persona's own dislikes; "What would make you trust a new vendor?" names
    one of its likes and the thing asked; "you" in the question becomes "my" in the answer."""
    from simulation.llm.demo.text import mid_sentence
    from simulation.persona import bundled_personas

    model = DemoModel()
    specs = [load_persona(path) for path in dict.fromkeys(bundled_personas().values())]

    async def answers(question: str) -> dict[str, str]:
        w = TinyWorld("demo", [TinyPerson(spec, model) for spec in specs], model=model)
        await w.broadcast(question, source="you")
        return {e.source: e.content for e in await w.run(1) if e.type == "TALK"}

    def own(name: str, kind: str) -> list[str]:
        spec = next(s for s in specs if s.name == name)
        return [mid_sentence(x) for x in getattr(spec, kind)]

    worries = await answers("What worries you most about the launch?")
    assert len(worries) == len(specs)
    for name, line in worries.items():
        assert line.startswith(("What worries me about the launch is ", "Mostly ")), line
        assert any(d in line for d in own(name, "dislikes")), line
        assert not re.search(r"\.['\"’”](?:[.,]|$)", line), line  # a quoted dislike keeps no stop of its own
    needs = await answers("Priya, what would make you trust your vendors again?")
    for name, line in needs.items():
        assert "trust my vendors again" in line and any(x in line.casefold() for x in map(str.casefold, own(name, "likes"))), line
    enjoy = await answers("What do you enjoy most about your job?")
    for name, line in enjoy.items():
        assert any(x in line.casefold() for x in map(str.casefold, own(name, "likes"))), line
    views = await answers("What do you think about our pricing?")
    for line in views.values():
        assert line.startswith(("On our pricing: ", "About our pricing? ")) and "goal" not in line, line


async def test_demo_choice_questions_offer_the_options_as_asked():
    """"Should we use Postgres or MySQL?" is a choice of Postgres or MySQL — not of "Should we use
    Postgres"; lists of three work; an article is kept only where the question had one; "…or wait?"
    is a yes-or-no question."""
    from simulation.persona import bundled_personas

    model = DemoModel()
    specs = [load_persona(path) for path in dict.fromkeys(bundled_personas().values())][:3]

    async def replies(question: str) -> list[str]:
        w = TinyWorld("demo", [TinyPerson(spec, model) for spec in specs], model=model)
        await w.broadcast(question, source="you")
        return [e.content for e in await w.run(1) if e.type == "TALK"]

    for question, options in [("Should we use Postgres or MySQL?", ["Postgres", "MySQL"]),
                              ("Is it better to hire juniors or seniors?", ["juniors", "seniors"]),
                              ("Slack or Teams for the support channel?", ["Slack", "Teams"]),
                              ("Should we pick React, Vue or Svelte?", ["React", "Vue", "Svelte"])]:
        for line in await replies(question):
            assert all(o in line for o in options), (question, line)
            assert "Should we" not in line and "better to" not in line and "the Slack" not in line, line
            assert "support channel" not in line, line
    for line in await replies("Which would you rather buy for your home: a $300 smart speaker or a $300 robot vacuum?"):
        assert "the $300 smart speaker" in line and "the $300 robot vacuum" in line, line
    for line in await replies("Should we ship on Friday or wait?"):
        assert line.startswith(("Yes", "I'd say yes", "Not yet", "I'd hold off", "Honestly, no")), line


async def test_demo_replies_of_a_persona_with_few_fields_read_as_sentences():
    """A persona with a job and a belief or two still speaks in whole, well-formed sentences: no goal
    that is not one, no capital after a comma, no "as Data Scientist", no statement "is what comes to mind"."""
    from simulation.persona import PersonaSpec
    from simulation.polls import Poll, run_poll

    model = DemoModel()
    spec = PersonaSpec.from_data({"name": "Lisa Carter", "occupation": "Data Scientist",
                                  "beliefs": ["Saying no to most requests is the job.", "Climate change needs action now."]})
    said: list[str] = []
    for n, text in enumerate(["The timetable changes next week.", "What about plan B?", "Any risks here?",
                              "We hired two people.", "How should we plan the launch?", "Budget is tight.",
                              "What do we do next?", "The demo went well.", "Thoughts on the roadmap?"] * 2):
        w = TinyWorld("few", [TinyPerson(spec, model)], model=model)
        await w.broadcast(f"{text} ({n})", source="Ana")
        said += [e.content for e in await w.run(1) if e.type == "TALK"]
        result = await run_poll(w, Poll(question=f"Pick one ({n})", options=["red", "blue"]))
        said += [a.reason for a in result.answers]
    assert len(said) >= 20
    bad = [s for s in said if re.search(r"stays on my mind: what I see|, [A-Z][a-z]|as Data Scientist|is the job is what", s)]
    assert not bad, bad


async def test_a_demo_thought_promises_an_answer_only_when_one_is_given():
    """A persona that lets a remark pass thinks so; "I'll answer" is always followed by its words."""
    w = world()
    await w.broadcast(QUESTION)
    await w.run_until_quiet(max_steps=20)
    turns: dict[int, list] = {}
    for event in w.events:
        if event.kind.value == "action":
            turns.setdefault((event.source, event.step), []).append(event)
    promised = silent = 0
    for actions in turns.values():
        thought = next((a.content for a in actions if a.type == "THINK"), "")
        talked = any(a.type == "TALK" for a in actions)
        if "I'll answer" in thought:
            promised += 1
            assert talked, f"promised an answer and gave none: {thought!r}"
        elif thought and "listen" in thought:
            silent += 1
            assert not talked, thought
    assert promised and silent, "both kinds of turn occur in a demo world that quiets down"


async def test_an_extraction_with_nothing_to_fill_is_answered_with_json_null():
    """A schema that only allows null gets ``null``, not an error inside the demo model."""
    from simulation.llm.base import ChatRequest, Message

    request = ChatRequest(
        messages=[Message(role="user", content="extract")], task="extract",
        response_format={"type": "json_schema", "json_schema": {"name": "X", "schema": {"type": "null"}}},
        context={"lines": ["You: hello"], "subject": "Ada"},
    )
    result = await DemoModel().complete(request)
    assert result.text == "null"
