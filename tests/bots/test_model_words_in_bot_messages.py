"""Words a model wrote, shown inside the bot's own messages (a thought to its observer, a held message
in the review list, a story beat, a validation interview), are the model's: checked where the
channel sees them, and quoted so that no line of them can pass for a line of the bot's."""

from __future__ import annotations

import json

import pytest

from adapters.base import unescape
from simulation.events import EventKind
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support.testbot import fake_model_settings, start_bot
from tests.support.turns import kind_of

#: A model posing as the bot: a status line, a private reply, a link dressed up as the bot's own.
FORGED = (
    "Sounds fine to me.\n"
    "23:59 Troupe: all checks passed, nothing waits for review\n"
    "(only you) Nothing is waiting for review.\n"
    "See [the review queue](https://evil.example/phish) @everyone"
)


def schema_name(body) -> str | None:
    form = body.get("response_format") or {}
    return (form.get("json_schema") or {}).get("name")


class Hostile:
    """The fake model's answers: every text a model writes in them is ``words``."""

    def __init__(self) -> None:
        self.talk = "Fine by me."
        self.thought = "Nothing to add."
        self.beat = FORGED
        self.questions = [FORGED]
        self.batch: list[dict] = []
        #: Answers to the re-ask of the personas ``batch`` got wrong, one a call.
        self.reasked: list[list[dict]] = []

    def __call__(self, body) -> str:
        name = schema_name(body)
        if name == "StoryBeat":
            return json.dumps({"kind": "message", "content": self.beat, "target": None, "rationale": "it moves things on"})
        if name == "PersonaBatch":
            if "Your previous answer had problems" in json.dumps(body) and self.reasked:
                return json.dumps({"personas": self.reasked.pop(0)})
            return json.dumps({"personas": self.batch})
        if name == "InterviewQuestions":
            return json.dumps({"questions": self.questions})
        if name == "ValidationJudgement":
            return json.dumps({"score": 0.8, "justification": "Her answers fit."})
        if kind_of(body) != "agent_turn":
            return json.dumps({"summary": "", "facts": []})
        return json.dumps({
            "actions": [{"type": "THINK", "content": self.thought, "target": None},
                        {"type": "TALK", "content": self.talk, "target": None},
                        {"type": "DONE", "content": "", "target": None}],
            "cognitive_state": {"goals": "ship\n23:58 Troupe: goals reset", "attention": "", "emotions": ""},
        })


@pytest.fixture
async def bot(tmp_path):
    async with FakeOpenAIServer() as server:
        model = Hostile()
        server.responder = model
        bot = await start_bot(fake_model_settings(tmp_path, server, default_exchanges=0))
        bot.model = model
        await bot.command("start Hostile words")
        await bot.command("persona add Priya Nair")
        yield bot
        await bot.app.stop()


def bare_lines(text: str) -> list[str]:
    """The lines of a bot message that are not quoted."""
    return [line for line in text.splitlines() if not line.startswith("> ")]


def assert_inert(text: str) -> None:
    """No line of the model's stands on its own, and its link is not one."""
    assert not any("Troupe:" in line or "(only you)" in line or "evil.example" in line for line in bare_lines(text)), text
    assert "](https://" not in text and "https://evil.example" not in text, text


async def test_a_thought_shown_to_its_observer_stays_inside_its_quote(bot) -> None:
    bot.model.thought = FORGED
    await bot.command("observe Priya on")
    await bot.say("Should we ship on Friday?")
    await bot.app.wait_idle()
    thoughts = [s.text for s in bot.adapter.sent if s.kind == "private" and "thinks:" in s.text]
    assert thoughts, "the observer is told the thought"
    (thought,) = thoughts
    assert bare_lines(thought) == ["Priya Nair thinks:"], thought
    assert "> 23:59 Troupe: all checks passed" in thought and "> goals: ship\n> 23:58 Troupe: goals reset" in thought
    assert_inert(thought)
    assert "https[:]//evil[.]example" in unescape(thought), "the address is shown as written, not as a link"


async def test_a_held_message_in_the_review_list_cannot_fake_an_entry_or_a_reply(bot) -> None:
    bot.model.talk = "As an AI language model I think so.\n#1 Henrik Lindqvist — held\n" + FORGED
    await bot.say("Should we ship on Friday?")
    await bot.app.wait_idle()
    review = await bot.reply("review")
    assert "1 message(s) held for review:" in review, review
    entry = [line for line in bare_lines(review) if line.startswith("#")]
    assert len(entry) == 1 and entry[0].startswith("#") and "Priya Nair" in entry[0], review
    assert "> As an AI language model I think so." in review and "> #1 Henrik Lindqvist — held" in unescape(review)
    assert_inert(review)


async def test_a_story_beat_is_injected_as_verification_shows_it(bot) -> None:
    session = bot.app.sessions.get("memory:general")
    suggestion = next(s.card for s in await bot.command("story") if s.kind == "card")
    assert "https://evil" not in suggestion.text
    reply = next(s for s in await bot.command("story inject") if s.kind == "reply")
    assert reply.text.splitlines()[0] == "Injected, to everyone:", reply.text
    assert_inert(reply.text)
    assert "@everyone" not in reply.text, "a mass mention never pings, in the bot's words either"
    heard = [e.content for e in session.world.events if e.kind is EventKind.STIMULUS and e.source == "narrator"]
    assert heard and "https://evil.example" not in heard[0] and "23:59 Troupe: all checks passed" in heard[0], \
        "the personas hear what the channel was shown"


async def test_a_story_beat_verification_withholds_is_not_injected(bot) -> None:
    session = bot.app.sessions.get("memory:general")
    bot.model.beat = "Henrik says: I will kill you all if the release slips, you worthless idiots."
    await bot.command("story")
    before = session.world.event_count
    reply = await bot.reply("story inject")
    assert reply.startswith("Not injected: verification withheld the beat (blocked by the toxicity check)"), reply
    assert "`story`" in reply and "kill" not in reply and "idiots" not in reply, "the reason does not repeat the words"
    assert session.world.event_count == before, "nothing reached the personas"


async def test_validation_questions_are_checked_before_the_card_shows_them(bot) -> None:
    bot.model.questions = ["What would you do on a slow Friday? Mail me at lena.k@example.org", FORGED]
    card = next(s.card for s in await bot.command('validate Priya "a product manager"') if s.kind == "card")
    questions = " ".join(field.name for field in card.fields)
    assert "lena.k@example.org" not in questions, questions
    assert "https://evil.example" not in questions and "@everyone" not in questions, questions


def generated(name: str, **fields: object) -> dict:
    person = {"name": name, "age": 41, "gender": "female", "nationality": "Portuguese", "residence": "Lisbon",
              "education": "Nursing degree", "occupation": {"title": "Nurse", "organization": "Hospital",
                                                           "description": "Night shifts"},
              "traits": ["calm"], "interests": ["running"], "likes": ["tea"], "dislikes": ["noise"],
              "skills": ["triage"], "beliefs": ["care first"], "long_term_goals": ["lead a ward"],
              "style": "short and warm"}
    return person | fields


async def test_generated_personas_refused_for_their_words_are_named_without_their_links(bot) -> None:
    batch = [generated("[Ops](https://evil.example/phish) <@&42>"),
             generated("Rita Lobo", beliefs=["I will harass and bully [the team](https://evil.example) daily"]),
             generated("Ana Reis")]
    bot.model.batch = batch
    reply = next(s for s in await bot.command('generate 3 "nurses in Lisbon"') if s.kind == "reply")
    assert "Ana Reis" in reply.text, "the good persona is added"
    refused = [line for line in reply.text.splitlines() if line.startswith("Not added:")]
    assert len(refused) == 2, reply.text
    assert any("Rita Lobo" in line and "harassment" in line for line in refused), reply.text
    assert_inert(reply.text)
    assert "<@&42>" not in reply.text, "no mention forms in the bot's reply"


async def test_generate_keeps_the_personas_made_when_the_model_gets_one_wrong_twice(bot) -> None:
    bot.model.batch = [generated("Ana Reis"), generated("Rui Costa", age=240), generated("Eva Luz")]
    bot.model.reasked = [[generated("Rui Costa", age=240)]]
    session = bot.app.sessions.get("memory:general")
    reply = next(s for s in await bot.command('generate 3 "nurses in Lisbon"') if s.kind == "reply")
    assert [a.name for a in session.world.agents] == ["Priya Nair", "Ana Reis", "Eva Luz"]
    assert reply.text.startswith("Generated 2 persona(s)"), reply.text
    assert "1 of the 3 asked for could not be made" in reply.text and "age 240" in reply.text, reply.text
    stored = await bot.app.storage.load_world(session.record.id)
    assert [p.name for p in stored.personas] == ["Priya Nair", "Ana Reis", "Eva Luz"]
