"""Conversation summaries: overview, positions, and quotes checked against the real event text."""

from __future__ import annotations

import json

from simulation.llm.demo import DemoModel
from simulation.summary import Summarizer
from simulation.world import TinyWorld
from tests.support.turns import TurnRule
from tests.support.worlds import people


def world(model, names=("Lisa", "Oscar")) -> TinyWorld:
    return TinyWorld("summary", people(model, names), model=model)


class Rule(TurnRule):
    """Agent turns from the shared rule; a summary request gets ``self.summary``."""

    summary: dict | None = None

    def __call__(self, body: dict) -> str:
        if body["messages"][0]["content"].startswith("You summarise"):
            return json.dumps(self.summary)
        return super().__call__(body)


async def talked(model, fake_openai, rounds: int = 2) -> tuple[TinyWorld, Rule]:
    rule = Rule()
    fake_openai.responder = rule
    w = world(model)
    await w.broadcast("Should the office switch to a four-day week?")
    await w.run(rounds)
    return w, rule


def talks(w: TinyWorld, source: str):
    return [e for e in w.events if e.type == "TALK" and e.source == source]


async def test_quotes_are_checked_against_the_events_they_name(model, fake_openai):
    w, rule = await talked(model, fake_openai)
    lisa1, lisa2 = talks(w, "Lisa Carter")[:2]
    assert "Oscar: Oscar replies to" in lisa2.content and "Oscar:" not in lisa1.content
    oscar1 = talks(w, "Oscar")[0]
    exact = lisa1.content.split(" replies", 1)[0] + " replies"  # "Lisa Carter replies"
    rule.summary = {
        "overview": "They debated a four-day week.",
        "key_points": ["Lisa and Oscar both replied.", "  "],
        "positions": [
            {
                "persona": "Lisa",  # a first name is resolved to the full name
                "stance": "Open to it.",
                "quotes": [
                    {"event_id": lisa1.id, "text": exact},
                    # Right words, wrong message: re-pointed to where they are.
                    {"event_id": oscar1.id, "text": "Oscar: Oscar replies to"},
                    # Different case and spacing: replaced by the exact words.
                    {"event_id": lisa1.id, "text": "  LISA   carter REPLIES "},
                    {"event_id": lisa1.id, "text": "I will quit if this happens"},
                ],
            },
            {"persona": "Oscar", "stance": "Sceptical.", "quotes": [{"event_id": 999, "text": "four-day weeks ruin projects"}]},
            {"persona": "Zed Nobody", "stance": "Invented.", "quotes": [{"event_id": oscar1.id, "text": "Oscar replies"}]},
        ],
    }

    summary = await Summarizer(model).summarize(w)

    assert summary.overview == "They debated a four-day week."
    assert summary.key_points == ["Lisa and Oscar both replied."]
    assert [p.persona for p in summary.positions] == ["Lisa Carter", "Oscar"], "nobody who did not speak"
    lisa = summary.position_of("Lisa Carter")
    assert [(q.event_id, q.text) for q in lisa.quotes] == [
        (lisa1.id, exact),
        (lisa2.id, "Oscar: Oscar replies to"),
    ]
    by_id = {e.id: e for e in w.events}
    for position in summary.positions:
        for quote in position.quotes:
            event = by_id[quote.event_id]
            assert quote.text in event.content and event.source == position.persona
    assert summary.position_of("Oscar").quotes == []
    dropped = {q.text for q in summary.dropped_quotes}
    assert dropped == {"I will quit if this happens", "four-day weeks ruin projects", "Oscar replies"}
    assert summary.model_name == "gpt-4o-mini-2024-07-18" and "they may not reflect" in summary.disclaimer


async def test_the_prompt_lists_event_ids_and_no_thoughts(model, fake_openai):
    w, rule = await talked(model, fake_openai, rounds=1)
    rule.summary = {"overview": "o", "key_points": [], "positions": []}

    await Summarizer(model).summarize(w)

    prompt = fake_openai.requests[-1].body["messages"][1]["content"]
    talk = talks(w, "Oscar")[0]
    assert f"[#{talk.id}] Oscar: {talk.content}" in prompt
    assert "[#1] moderator: Should the office switch to a four-day week?" in prompt
    assert "considers" not in prompt, "thoughts stay private"


async def test_since_event_id_limits_what_is_summarised_and_quotable(model, fake_openai):
    w, rule = await talked(model, fake_openai, rounds=2)
    early, late = talks(w, "Oscar")[0], talks(w, "Oscar")[-1]
    rule.summary = {
        "overview": "Later part.",
        "key_points": [],
        "positions": [
            {
                "persona": "Oscar",
                "stance": "s",
                "quotes": [{"event_id": early.id, "text": early.content}, {"event_id": late.id, "text": late.content}],
            }
        ],
    }

    summary = await Summarizer(model).summarize(w, since_event_id=early.id)

    prompt = fake_openai.requests[-1].body["messages"][1]["content"]
    assert f"[#{early.id}]" not in prompt and f"[#{late.id}]" in prompt
    assert [q.event_id for q in summary.position_of("Oscar").quotes] == [late.id]
    assert summary.since_event_id == early.id and summary.last_event_id == w.events[-1].id


async def test_nothing_said_means_no_model_call(model, fake_openai):
    w = world(model)
    await w.broadcast("Anyone there?")

    summary = await Summarizer(model).summarize(w)

    assert fake_openai.requests == []
    assert "nothing to summarise" in summary.overview and summary.positions == []
    assert summary.disclaimer


async def test_a_summary_that_never_fits_the_schema_gives_its_overview_in_words(model, fake_openai):
    w, _ = await talked(model, fake_openai, rounds=1)
    fake_openai.responder = None
    fake_openai.fail("missing_fields", times=2)
    fake_openai.script(["The group leaned towards the vacuum."])

    summary = await Summarizer(model).summarize(w)

    assert summary.overview == ("The group leaned towards the vacuum. (could not answer in the required shape: "
                                "no stances or quotes)")
    assert summary.positions == [] and summary.key_points == []


async def test_demo_summary_quotes_the_actual_words():
    model = DemoModel()
    w = world(model, ("Lisa", "Oscar", "Marcos"))
    await w.broadcast("Which would you rather buy for your home: a $300 smart speaker or a $300 robot vacuum? Why?")
    await w.run(2)

    summary = await Summarizer(model).summarize(w)

    speakers = {e.source for e in w.events if e.type == "TALK"}
    assert {p.persona for p in summary.positions} == speakers
    by_id = {e.id: e for e in w.events}
    for position in summary.positions:
        assert position.quotes and position.stance
        for quote in position.quotes:
            assert quote.text in by_id[quote.event_id].content
            assert by_id[quote.event_id].source == position.persona
    assert summary.dropped_quotes == []
    assert "smart speaker" in summary.overview
    assert summary.model_name == "demo"
