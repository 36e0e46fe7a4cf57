"""Enriching content for a simulation, and storytelling beats injected into a world."""

from __future__ import annotations

import json

import pytest

from simulation.enrichment import Enricher
from simulation.events import EventKind
from simulation.llm.demo import DemoModel
from simulation.llm.errors import StructuredOutputError
from simulation.storytelling import StoryBeat, Storyteller
from simulation.world import TinyWorld
from tests.support.worlds import people

PURPOSE = "Find out whether people would pay for premium delivery"


def world(model) -> TinyWorld:
    return TinyWorld("story", people(model), model=model)


def beat(**fields) -> str:
    return json.dumps({"kind": "message", "content": "What would you pay?", "target": None, "rationale": "r", **fields})


# -- enrichment -------------------------------------------------------------------------------


async def test_enriched_content_comes_back_without_remarks_and_is_cached(model, fake_openai):
    fake_openai.script(
        [
            json.dumps({"content": "  FreshBox delivers groceries in Austin for $4.99, from 3 March.  "}),
            json.dumps({"content": "FreshBox's founders, Ana and Joe, met at UT Austin."}),
        ]
    )
    cache: list[str] = []
    enricher = Enricher(model)

    first = await enricher.enrich("FreshBox delivers groceries.", "add the price and the launch date", context_cache=cache)
    second = await enricher.enrich("Who started FreshBox?", "name the founders", context_cache=cache)

    assert first == "FreshBox delivers groceries in Austin for $4.99, from 3 March."
    assert cache == [first, second]
    prompts = [r.body["messages"][1]["content"] for r in fake_openai.requests]
    assert "Requirements: add the price and the launch date" in prompts[0] and "Earlier material" not in prompts[0]
    assert "Earlier material" in prompts[1] and first in prompts[1], "later enrichments see earlier ones"


async def test_an_empty_enrichment_is_asked_again_then_fails(model, fake_openai):
    fake_openai.script([json.dumps({"content": "   "}), json.dumps({"content": ""})])

    with pytest.raises(StructuredOutputError) as caught:
        await Enricher(model).enrich("A short note.", "make it longer")

    assert "empty" in str(caught.value) and len(fake_openai.requests) == 2
    with pytest.raises(ValueError):
        await Enricher(model).enrich("   ", "anything")


async def test_an_enrichment_of_punctuation_only_is_asked_again(model, fake_openai):
    fake_openai.script([json.dumps({"content": "]["}), json.dumps({"content": "A short note, now with a price: 5 euros."})])

    assert await Enricher(model).enrich("A short note.", "add a price") == "A short note, now with a price: 5 euros."
    (reask,) = [m["content"] for m in fake_openai.requests[1].body["messages"] if "no words" in str(m["content"])]
    assert "content" in reask, "the model is told what was wrong"


async def test_demo_enrichment_keeps_the_content_and_answers_each_requirement():
    text = await Enricher(DemoModel()).enrich(
        "A new grocery delivery app launches in Austin.", "add pricing; add the launch date; mention the founders"
    )

    assert text.startswith("A new grocery delivery app launches in Austin.")
    assert "Price: €4.99 a month" in text and "Available from 1 March." in text, "what it can add, it adds"
    assert "Mention the founders: not worked in" in text, "what it cannot, it says so, never 'covered'"
    assert "covered" not in text
    assert "demo model" in text, "demo output says where it came from"
    quoted = await Enricher(DemoModel()).enrich("Try our app: it saves time.", "add a price and a testimonial")
    assert "Price:" in quoted and "\u201cIt gave me back an hour every day.\u201d" in quoted


# -- storytelling -----------------------------------------------------------------------------


async def test_a_beat_for_one_persona_is_delivered_to_that_persona(model, fake_openai):
    fake_openai.script([beat(content="Oscar, would you pay $5 a month for same-day delivery?", target="oscar")])
    w = world(model)
    await w.broadcast("Let's talk about online shopping.")
    teller = Storyteller(model, PURPOSE)

    proposed = await teller.propose(w)
    event = await teller.inject(w, proposed)

    assert proposed.target == "Oscar" and proposed.kind == "message"
    assert event.kind is EventKind.STIMULUS and event.target == "Oscar" and event.source == "narrator"
    assert event.content == "Oscar, would you pay $5 a month for same-day delivery?"
    assert w.get("Oscar").unread()[-1].content == event.content
    prompt = fake_openai.requests[0].body["messages"][1]["content"]
    assert f"Purpose: {PURPOSE}" in prompt and "«moderator»: «Let's talk about online shopping.»" in prompt


async def test_scenes_are_shown_and_unknown_targets_become_everyone(model, fake_openai):
    fake_openai.script(
        [
            beat(kind="scene", content="A rival launches free delivery for members."),
            beat(content="Would a free trial change your mind?", target="Somebody Else"),
        ]
    )
    w = world(model)
    teller = Storyteller(model, PURPOSE)

    scene = await teller.inject(w, await teller.propose(w))
    message_beat = await teller.propose(w)
    message = await teller.inject(w, message_beat)

    assert scene.type == "VISUAL" and scene.recipients == [a.name for a in w.agents]
    assert message_beat.target is None
    assert message.type == "CONVERSATION" and message.target is None and len(message.recipients) == 3


async def test_a_beat_that_repeats_an_event_is_asked_for_again_once(model, fake_openai):
    w = world(model)
    await w.broadcast("Would you pay for premium delivery?")
    fake_openai.script([beat(content="would you pay for  premium delivery?"), beat(content="What if it cost $2?")])

    proposed = await Storyteller(model, PURPOSE).propose(w)

    assert proposed.content == "What if it cost $2?"
    assert len(fake_openai.requests) == 2
    assert "repeats an earlier event" in fake_openai.requests[1].body["messages"][-1]["content"]


async def test_a_beat_without_content_twice_is_a_typed_error(model, fake_openai):
    fake_openai.script([beat(content=""), beat(content=" ")])

    with pytest.raises(StructuredOutputError):
        await Storyteller(model, PURPOSE).propose(world(model))


async def test_demo_storyteller_opens_on_the_purpose_then_turns_to_the_quiet_ones():
    model = DemoModel()
    w = world(model)
    teller = Storyteller(model, PURPOSE)

    opening = await teller.propose(w)
    await teller.inject(w, opening)
    await w.run(1)
    follow_up = await teller.propose(w)

    assert "find out whether people would pay for premium delivery" in opening.content
    assert opening.target is None
    said = {a.name: sum(1 for e in w.events if e.source == a.name and e.type == "TALK") for a in w.agents}
    assert follow_up.target == min(said, key=lambda n: (said[n], list(said).index(n)))
    event = await teller.inject(w, follow_up)
    assert event.target == follow_up.target
    again = await teller.propose(w)
    assert again.content != follow_up.content, "the demo storyteller never repeats a beat"
    assert isinstance(again, StoryBeat)


async def test_demo_storyteller_quotes_a_sentence_that_says_something():
    """Turning to the quiet ones, the beat quotes the latest speaker's first telling sentence, not
    "Agreed." or "Good question."."""
    model = DemoModel()
    w = world(model)
    await w.broadcast("Would you pay for premium delivery?")
    await w.say_for(w.agents[0].name, "Agreed. Same-day delivery matters when my kids need something for school.")

    proposed = await Storyteller(model, PURPOSE).propose(w)

    assert f'{w.agents[0].name} said: "Same-day delivery matters when my kids need something for school."' in proposed.content
