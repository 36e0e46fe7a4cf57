"""Focus groups driven through the world's own stimuli and steps, with progress, probes and a summary."""

from __future__ import annotations

import json
import re

import pytest

from simulation.events import EventKind
from simulation.focus_group import FocusGroup
from simulation.llm.demo import DemoModel
from simulation.world import TinyWorld, WorldError
from tests.support.turns import TurnRule
from tests.support.worlds import people

QUESTION = "Would you pay $5 a month for faster delivery?"


def world(model) -> TinyWorld:
    return TinyWorld("focus", people(model), model=model)


class Rule(TurnRule):
    """Persona turns from the shared rule; the summary quotes each speaker's first line exactly."""

    def __call__(self, body: dict) -> str:
        if body["messages"][0]["content"].startswith("You summarise"):
            lines = re.findall(r"^\[#(\d+)\] ([^:(]+?)(?: \(to [^)]*\))?: (.*)$", body["messages"][1]["content"], re.M)
            speakers = body["messages"][1]["content"].split("Personas who spoke: ", 1)[1].splitlines()[0].split(", ")
            positions = []
            for name in speakers:
                event_id, _, text = next(line for line in lines if line[1] == name)
                positions.append({"persona": name, "stance": "weighs it", "quotes": [{"event_id": int(event_id), "text": text[:40]}]})
            return json.dumps({"overview": f"{len(lines)} lines", "key_points": ["price matters"], "positions": positions})
        return super().__call__(body)


async def test_rounds_go_through_world_events_with_progress_probes_and_a_summary(model, fake_openai):
    fake_openai.responder = Rule()
    w = world(model)
    await w.broadcast("Earlier chat that the summary must leave out.")
    progress: list[str] = []
    group = FocusGroup(
        w,
        QUESTION,
        rounds=2,
        on_progress=lambda p: progress.append(p.text),
        between_rounds=lambda k: "What if it were $2?" if k == 1 else None,
    )

    turns = [turn async for turn in group]
    report = group.report

    assert [(t.round, t.persona) for t in turns] == [
        (1, "Lisa Carter"), (1, "Oscar"), (1, "Marcos Almeida"),
        (2, "Lisa Carter"), (2, "Oscar"), (2, "Marcos Almeida"),
    ]
    assert progress[:2] == ["round 1/2: Lisa is thinking", "round 1/2: Lisa answered"]
    assert "round 2/2: the moderator asks: What if it were $2?" in progress
    assert progress[-2:] == ["summarising the focus group", "focus group finished"]
    # Round 1 asks the question, round 2 the probe; each prompt is a moderator event aimed at one persona.
    first = turns[0].events[0]
    assert first.kind is EventKind.STIMULUS and first.source == "moderator" and first.target == "Lisa Carter"
    assert first.content == "Lisa, would you pay $5 a month for faster delivery?"
    assert turns[4].prompt == "Oscar, what if it were $2?"
    # Persona answers are ordinary world events, in log order.
    for turn in turns:
        assert [e.source for e in turn.events if e.type == "TALK"] == [turn.persona]
        assert turn.said == [e.content for e in turn.events if e.type == "TALK"]
    assert [e.id for t in turns for e in t.events] == [e.id for e in w.events[1:]], "everything after the earlier chat"
    # One model call per turn, plus the summary, which leaves out what came before the group.
    assert len(fake_openai.requests) == 7
    summary_prompt = fake_openai.requests[-1].body["messages"][1]["content"]
    assert "Earlier chat" not in summary_prompt and "[#2] moderator (to Lisa Carter): Lisa, would you" in summary_prompt
    assert [p.persona for p in report.summary.positions] == ["Lisa Carter", "Oscar", "Marcos Almeida"]
    assert report.probes == ["What if it were $2?"] and report.unasked_probes == []
    assert report.answers_of("Oscar") == turns[1].said + turns[4].said
    assert report.model_name == "gpt-4o-mini-2024-07-18"
    assert report.disclaimer == "Simulated answers from gpt-4o-mini-2024-07-18; they may not reflect what real people think."


async def test_a_probe_queued_mid_round_is_asked_next_round_and_a_late_one_in_one_more(model, fake_openai):
    fake_openai.responder = Rule()
    group = FocusGroup(world(model), QUESTION, rounds=2, personas=["Marcos", "Lisa Carter"])

    async for turn in group:
        if turn.round == 1 and turn.persona == "Marcos Almeida":
            group.probe("Would a free trial change that?")
        if turn.round == 2 and turn.persona == "Lisa Carter":
            group.probe("And if it were a yearly plan?")

    assert [t.persona for t in group.turns[:2]] == ["Marcos Almeida", "Lisa Carter"], "the order given"
    assert [t.prompt for t in group.turns[2:4]] == ["Marcos, would a free trial change that?", "Lisa, would a free trial change that?"]
    # A probe that came during the last round is asked in one more round, not dropped.
    assert [t.prompt for t in group.turns[4:]] == ["Marcos, and if it were a yearly plan?", "Lisa, and if it were a yearly plan?"]
    assert group.report.rounds == 3 and group.report.unasked_probes == []


async def test_a_callers_stepper_is_used_and_failing_progress_hooks_do_not_stop_the_group(model, fake_openai):
    fake_openai.responder = Rule()
    w = world(model)
    stepped: list[list[str]] = []

    async def step(agents):
        stepped.append([a.name for a in agents])
        return await w.step(only=agents)

    def broken(progress):
        raise RuntimeError("status message could not be edited")

    report = await FocusGroup(w, QUESTION, rounds=1, step=step, on_progress=broken).run()

    assert stepped == [["Lisa Carter"], ["Oscar"], ["Marcos Almeida"]]
    assert len(report.turns) == 3 and report.summary.positions


async def test_misuse_is_refused(model):
    w = world(model)
    with pytest.raises(WorldError):
        FocusGroup(w, QUESTION, personas=["Nobody"])
    with pytest.raises(ValueError):
        FocusGroup(w, QUESTION, rounds=0)
    group = FocusGroup(w, QUESTION)
    group.__aiter__()
    with pytest.raises(RuntimeError):
        group.__aiter__()


async def test_demo_focus_group_every_persona_answers_and_is_summarised():
    model = DemoModel()
    w = world(model)

    report = await FocusGroup(w, QUESTION, rounds=2).run()

    round_one = [t for t in report.turns if t.round == 1]
    assert all(t.said for t in round_one), "every persona answers the question put to it"
    assert len({t.said[0] for t in round_one}) == 3
    assert {p.persona for p in report.summary.positions} == {a.name for a in w.agents}
    by_id = {e.id: e for e in w.events}
    assert all(q.text in by_id[q.event_id].content for p in report.summary.positions for q in p.quotes)
    assert report.model_name == "demo" and report.summary.disclaimer == report.disclaimer


@pytest.mark.parametrize("question", ["Would you pay 5 euros a month for premium?", "Should we ship on Friday?",
                                      "Can we drop the free tier?"])
async def test_demo_focus_group_second_round_reacts_to_someone_by_name_consistently(question):
    """Asked where they agree or disagree, demo personas name another one of the group, and say they
    agree only with someone who answered the first round the way they did."""
    w = world(DemoModel())

    report = await FocusGroup(w, question, rounds=2).run()

    first = {t.persona: t.said[0] for t in report.turns if t.round == 1}
    goes = {name: line.startswith(("Yes", "I'd say yes")) for name, line in first.items()}
    for turn in (t for t in report.turns if t.round == 2):
        reply = turn.said[0]
        named = [n for n in first if n != turn.persona and n.split()[0] in reply]
        assert len(named) == 1, (turn.persona, reply)
        if reply.startswith("I'm with"):
            assert goes[named[0]] == goes[turn.persona], (turn.persona, reply, first)
        else:
            assert reply.startswith("I see it differently from"), reply
            assert goes[named[0]] != goes[turn.persona], (turn.persona, reply, first)
            assert ("go ahead" in reply) == goes[turn.persona], reply


async def test_later_rounds_name_who_was_heard_and_a_group_of_one_is_not_asked_about_others():
    """Round 2 asks "Lisa, you've heard Oscar and Marcos now…"; demo answers react only to those named,
    never to someone outside the group; a one-persona group is asked what it would add instead."""
    w = world(DemoModel())
    await w.broadcast("Should we ship on Friday?")
    await w.run(1)  # everyone speaks before the focus group

    trio = await FocusGroup(w, "Would you pay 5 euros a month for premium?", rounds=2, personas=["Lisa", "Oscar"]).run()
    later = [t for t in trio.turns if t.round == 2]
    assert [t.prompt for t in later] == [
        "Lisa, you've heard Oscar now. Where do you agree or disagree, and why?",
        "Oscar, you've heard Lisa now. Where do you agree or disagree, and why?",
    ]
    assert all("Marcos" not in line for t in later for line in t.said), [t.said for t in later]

    alone = await FocusGroup(w, "Is our pricing fair?", rounds=2, personas=["Lisa"]).run()
    second = next(t for t in alone.turns if t.round == 2)
    assert second.prompt == "Lisa, thinking it over, what would you add to your answer, and why?"
    assert not any(name in line for line in second.said for name in ("Oscar", "Marcos")), second.said
