"""Polls: one answer per persona in its own voice, re-asks, abstentions, tallies and the chart."""

from __future__ import annotations

import io
import json

import pytest
from matplotlib import _pylab_helpers
from matplotlib.image import imread
from pydantic import ValidationError

from config.settings import Settings
from simulation.agent import TinyPerson
from simulation.llm.demo import DemoModel
from simulation.llm.errors import BudgetExceededError
from simulation.llm.factory import build_model
from simulation.persona import PersonaSpec
from simulation.polls import (
    ABSTAIN,
    Poll,
    build_chart,
    chart_data,
    render_chart,
    run_poll,
)
from simulation.world import TinyWorld
from tests.fakes.openai_server import persona_name
from tests.support.worlds import people

POLL = Poll(question="Which would you buy for your home?", options=["Smart speaker", "Robot vacuum", "Neither"])


def world(model) -> TinyWorld:
    return TinyWorld("poll", people(model), model=model)


def answer(choice: str, reason: str = "It saves me time.") -> str:
    return json.dumps({"choice": choice, "reason": reason})


async def test_every_persona_answers_in_its_own_voice_and_the_tally_adds_up(model, fake_openai):
    choices = {"Lisa Carter": "Smart speaker", "Oscar": "Robot vacuum", "Marcos Almeida": "Robot vacuum"}
    fake_openai.responder = lambda body: answer(choices[persona_name(body)], f"{persona_name(body)}'s reason")
    w = world(model)
    await w.broadcast("We are talking about gadgets for the home.")

    result = await run_poll(w, POLL)

    assert [(a.persona, a.choice) for a in result.answers] == list(choices.items())
    assert result.answers[1].reason == "Oscar's reason"
    assert result.tally() == {"Smart speaker": 1, "Robot vacuum": 2, "Neither": 0}
    assert result.winner() == "Robot vacuum"
    assert result.model_name == "gpt-4o-mini-2024-07-18"
    assert result.disclaimer == "Simulated answers from gpt-4o-mini-2024-07-18; they may not reflect what real people think."
    oscar = next(r.body for r in fake_openai.requests if persona_name(r.body) == "Oscar")
    system, user = oscar["messages"][0]["content"], oscar["messages"][1]["content"]
    assert "Architect" in system, "the persona's own spec is in the prompt"
    assert "We are talking about gadgets for the home." in user, "and what it heard"
    assert POLL.question in user and "- Robot vacuum" in user
    schema = oscar["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["choice"]["enum"] == POLL.options


async def test_answering_a_poll_leaves_memories_untouched(model, fake_openai):
    fake_openai.responder = lambda body: answer("Neither")
    w = world(model)
    await w.broadcast("Hello everyone.")
    before = [len(a.episodic.episodes) for a in w.agents]

    await run_poll(w.agents, POLL, model)

    assert [len(a.episodic.episodes) for a in w.agents] == before
    assert all(a.has_unread() for a in w.agents), "the broadcast is still unread"


async def test_a_choice_that_is_not_an_option_is_asked_again_once(model, fake_openai):
    fake_openai.script([answer("A tablet"), answer("robot vacuum.")])
    person = world(model).agents[0]

    result = await run_poll([person], POLL, model)

    assert result.answers[0].choice == "Robot vacuum", "near-miss spelling matches the option"
    assert len(fake_openai.requests) == 2
    reask = fake_openai.requests[1].body["messages"][-1]["content"]
    assert "'A tablet' is not one of the options" in reask and "Smart speaker; Robot vacuum; Neither" in reask


async def test_two_invalid_choices_are_recorded_as_an_abstention(model, fake_openai):
    def responder(body: dict) -> str:
        reasked = len(body["messages"]) > 2
        name = persona_name(body)
        if name == "Lisa Carter":
            return answer("Smart speaker" if reasked else "A tablet")
        if name == "Oscar":
            return answer("Both, honestly")
        return answer("2")  # by number

    fake_openai.responder = responder

    result = await run_poll(world(model), POLL)

    assert [a.choice for a in result.answers] == ["Smart speaker", None, "Robot vacuum"]
    oscar = result.answers[1]
    assert oscar.abstained and oscar.raw_choice == "Both, honestly" and "not an option" in oscar.reason
    assert sum(persona_name(r.body) == "Oscar" for r in fake_openai.requests) == 2, "asked again once only"
    assert result.tally() == {"Smart speaker": 1, "Robot vacuum": 1, "Neither": 0, ABSTAIN: 1}


async def test_malformed_replies_twice_make_that_persona_abstain(model, fake_openai):
    fake_openai.fail("malformed_json", times=2)
    person = world(model).agents[1]

    result = await run_poll([person], POLL, model)

    assert result.answers[0].abstained and result.answers[0].reason == "could not answer in the required shape"
    assert result.tally()[ABSTAIN] == 1 and result.winner() is None


def test_a_poll_needs_distinct_options():
    with pytest.raises(ValidationError):
        Poll(question="Pick one", options=["Yes", "yes!"])
    with pytest.raises(ValidationError):
        Poll(question="Pick one", options=["Only"])
    assert POLL.match("b") == "Robot vacuum" and POLL.match("3") == "Neither" and POLL.match("tablet") is None


async def test_the_chart_is_a_png_whose_bars_are_the_tally(model, fake_openai):
    fake_openai.script([answer("Robot vacuum"), answer("Robot vacuum"), answer("nope"), answer("nope")])
    result = await run_poll(world(model), POLL)
    figures_before = _pylab_helpers.Gcf.get_num_fig_managers()

    png = render_chart(result)
    figure = build_chart(result)

    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    pixels = imread(io.BytesIO(png), format="png")
    assert pixels.shape[0] > 200 and pixels.shape[1] > 400
    data = chart_data(result)
    assert dict(zip(data.labels, data.values)) == result.tally() == {
        "Smart speaker": 0,
        "Robot vacuum": 2,
        "Neither": 0,
        ABSTAIN: 1,
    }
    bars = figure.axes[0].patches
    assert [bar.get_width() for bar in bars] == data.values
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == data.labels
    assert _pylab_helpers.Gcf.get_num_fig_managers() == figures_before, "no pyplot figures left behind"


async def test_demo_personas_pick_the_option_their_likes_point_to():
    model = DemoModel()
    coffee = PersonaSpec.from_data({"name": "Cora Brew", "preferences": {"likes": ["Freshly brewed coffee every morning."]}})
    runner = PersonaSpec.from_data(
        {"name": "Ravi Stride", "preferences": {"likes": ["A gym membership and morning workouts."], "dislikes": ["Coffee breath."]}}
    )
    people = [TinyPerson(coffee, model), TinyPerson(runner, model)]
    poll = Poll(question="Which perk should the office offer?", options=["Gym membership", "Coffee subscription"])

    result = await run_poll(people, poll)
    again = await run_poll(people, poll)

    assert [a.choice for a in result.answers] == ["Coffee subscription", "Gym membership"]
    assert [a.reason for a in result.answers] == [a.reason for a in again.answers]
    assert all(a.reason for a in result.answers)
    assert result.model_name == "demo" and result.disclaimer.startswith("Simulated answers from the offline demo model;")


async def test_demo_poll_agrees_with_what_personas_said_in_the_conversation():
    model = DemoModel()
    w = world(model)
    await w.broadcast("Which would you rather buy for your home: a $300 smart speaker or a $300 robot vacuum? Why?")
    await w.run(1)
    said = {e.source: e.content.casefold() for e in w.events if e.type == "TALK"}

    result = await run_poll(w, POLL)

    for a in result.answers:
        picked = said[a.persona]
        first = min((picked.find(o.casefold()), o) for o in POLL.options if o.casefold() in picked)[1]
        assert a.choice == first, f"{a.persona} said {picked!r} but voted {a.choice}"
        assert a.reason.startswith("Like I said:")


@pytest.mark.parametrize("options", [["yes", "no", "later"], ["yes", "no"]])
async def test_demo_poll_votes_as_personas_answered_the_same_question_in_the_channel(options):
    """Someone who answered "Should we ship on Friday?" with "Not yet" does not vote yes on "Ship on
    Friday?" a moment later: "Not yet" and "I'd hold off" are votes for later (or no), "Honestly, no"
    for no, and "I'd say yes" for yes."""
    def expected(said: str) -> str:
        if said.startswith(("Yes", "I'd say yes")):
            return "yes"
        if said.startswith(("Not yet", "I'd hold off")):
            return "later" if "later" in options else "no"
        assert said.startswith("Honestly, no"), said
        return "no"

    votes: set[str] = set()
    for question in ("Should we move the launch to March?", "Should we ship on Friday?", "Can we drop the free tier?",
                     "Should the team work from the office on Mondays?"):
        w = world(DemoModel())
        await w.broadcast(question)
        await w.run(1)
        said = {e.source: e.content for e in w.events if e.type == "TALK"}
        result = await run_poll(w, Poll(question=question.split(" ", 2)[2], options=options))
        for a in result.answers:
            assert a.choice == expected(said[a.persona]), f"{a.persona} said {said[a.persona]!r} but voted {a.choice}"
            votes.add(a.choice)
    assert len(votes) >= 2, votes


async def test_a_spent_budget_stops_the_poll_instead_of_counting_abstentions(fake_openai, tmp_path):
    settings = Settings(
        data_dir=tmp_path,
        llm={"model": "gpt-4o-mini", "base_url": fake_openai.base_url, "api_key": "sk-test", "cache": False,
             "max_retries": 0, "timeout_s": 5, "budget_tokens": 1},
    )
    stack = build_model(settings)
    fake_openai.responder = lambda body: answer("Neither")
    w = world(stack.model)
    try:
        # The first call on a new server goes alone (it finds the structured-output mode) and spends
        # past the cap: the next persona's call is refused and the poll stops, counting no abstention.
        with pytest.raises(BudgetExceededError):
            await run_poll(w, POLL)
    finally:
        await stack.aclose()
    assert len(fake_openai.requests) == 1


async def test_demo_poll_does_not_take_words_about_another_question_as_a_vote():
    """After a pricing question answered "Yes, I think so" or "Not yet", a poll on shipping on Friday is
    not answered "Like I said: …" with those words, and "no" is never read into "not"."""
    from simulation.polls import Poll

    model = DemoModel()
    w = world(model)
    await w.broadcast("Would you pay 5 euros a month for premium?")
    await w.run(1)
    result = await run_poll(w, Poll(question="Ship on Friday?", options=["yes", "no", "later"]))
    assert not [a for a in result.answers if a.reason.startswith("Like I said:")], [a.reason for a in result.answers]
