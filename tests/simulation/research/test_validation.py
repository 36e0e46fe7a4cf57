"""Persona validation: an interview on a copy of the persona, a judged score, and drift checks."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from simulation.agent import TinyPerson
from simulation.llm.demo import DemoModel
from simulation.llm.errors import StructuredOutputError
from simulation.memory import Episode
from simulation.persona import load_persona
from simulation.validation import PersonaValidator
from tests.support.paths import AGENTS
from tests.support.turns import TurnRule

EXPECTED = "An architect who loves sustainable, minimalist design and dislikes clutter"


def oscar(model) -> TinyPerson:
    return TinyPerson(load_persona(AGENTS / "Oscar.agent.json"), model)


class Rule(TurnRule):
    """Persona turns from the shared rule; validation requests get the scripted JSON by kind."""

    def __init__(self, **replies: object) -> None:
        super().__init__()
        self.replies = replies

    def __call__(self, body: dict) -> str:
        system = body["messages"][0]["content"]
        for prefix, kind in (("You prepare a short interview", "questions"), ("You judge whether", "judge"), ("You check whether", "drift")):
            if system.startswith(prefix):
                reply = self.replies[kind]
                return reply.pop(0) if isinstance(reply, list) else json.dumps(reply)
        return super().__call__(body)


async def test_the_persona_is_interviewed_through_its_turns_and_the_judge_scores_it(model, fake_openai):
    fake_openai.responder = Rule(
        questions={"questions": ["What do you design?", "What annoys you at work?"]},
        judge={"score": 0.8, "justification": "Talks like an architect who values sustainability."},
    )
    person = oscar(model)
    person.listen("Good morning!", "Lisa")
    before = person.state().model_dump_json()

    result = await PersonaValidator(model).validate(person, EXPECTED, n_questions=2)

    assert result.score == 0.8 and result.passed
    assert result.justification.startswith("Talks like an architect")
    assert [t.question for t in result.transcript] == ["What do you design?", "What annoys you at work?"]
    # Each answer came from a real agent turn, which heard the question addressed to it.
    assert result.transcript[0].answer == "Oscar replies to <[09:00] interviewer (to you): What do you design?>"
    assert person.state().model_dump_json() == before, "the interview happened on a copy"
    judge = fake_openai.requests[-1].body["messages"][1]["content"]
    assert f"Expectations: {EXPECTED}" in judge and "A: Oscar replies to" in judge and "Architect" in judge
    assert result.model_name == "gpt-4o-mini-2024-07-18" and result.disclaimer


async def test_given_questions_skip_the_question_writer(model, fake_openai):
    fake_openai.responder = Rule(judge={"score": 0.3, "justification": "Generic answers."})

    result = await PersonaValidator(model).validate(oscar(model), EXPECTED, questions=["Who are you?"])

    assert [t.question for t in result.transcript] == ["Who are you?"] and not result.passed
    systems = [r.body["messages"][0]["content"] for r in fake_openai.requests]
    assert not any(s.startswith("You prepare a short interview") for s in systems)


async def test_an_interview_spends_no_call_on_folding_the_copys_memory(model, fake_openai):
    """The copy is thrown away after the interview: consolidating its memory would be paid for nothing."""
    from simulation.memory import MemoryConfig
    from tests.support.turns import kind_of

    fake_openai.responder = Rule(judge={"score": 0.7, "justification": "Fine."})
    person = TinyPerson(load_persona(AGENTS / "Oscar.agent.json"), model, memory=MemoryConfig(window=2, batch=1))
    for n in range(3):
        person.listen(f"Update number {n}", "Lisa")

    result = await PersonaValidator(model).validate(person, EXPECTED, questions=["Who are you?", "What do you do?"])

    assert len(result.transcript) == 2
    assert [kind_of(r.body) for r in fake_openai.requests].count("consolidate") == 0
    assert person.memory_work is None


async def test_a_score_outside_0_to_1_is_re_asked_then_refused(model, fake_openai):
    fake_openai.responder = Rule(
        judge=[json.dumps({"score": 8, "justification": "x"}), json.dumps({"score": 0.7, "justification": "ok"})]
    )
    result = await PersonaValidator(model).validate(oscar(model), EXPECTED, questions=["Who are you?"])
    assert result.score == 0.7
    assert "must be between 0 and 1" in fake_openai.requests[-1].body["messages"][-1]["content"]

    fake_openai.responder = Rule(
        judge=[json.dumps({"score": 8, "justification": "x"}), json.dumps({"score": -1, "justification": "x"})]
    )
    with pytest.raises(StructuredOutputError):
        await PersonaValidator(model).validate(oscar(model), EXPECTED, questions=["Who are you?"])


async def test_drift_reads_recent_actions_and_reports_the_judges_findings(model, fake_openai):
    fake_openai.responder = Rule(
        drift={"consistency": 0.2, "drifted": True, "findings": ["Now praises ornate, cluttered rooms."]}
    )
    person = oscar(model)
    for i in range(25):
        person.episodic.add(Episode(step=i, time=datetime(2025, 1, 6), kind="action", type="TALK", content=f"line {i}"))

    report = await PersonaValidator(model).drift(person, recent_n=5)

    assert report.drifted and report.consistency == 0.2 and report.actions_read == 5
    assert report.findings == ["Now praises ornate, cluttered rooms."]
    prompt = fake_openai.requests[0].body["messages"][1]["content"]
    assert "(says) line 24" in prompt and "line 19" not in prompt and "line 20" in prompt


async def test_drift_with_nothing_to_read_makes_no_call(model, fake_openai):
    report = await PersonaValidator(model).drift(oscar(model))

    assert report.consistency is None and not report.drifted and fake_openai.requests == []


async def test_demo_validator_scores_matching_expectations_above_contradicting_ones():
    model = DemoModel()
    person = oscar(model)
    validator = PersonaValidator(model)

    fits = await validator.validate(person, EXPECTED)
    clashes = await validator.validate(person, "A chef who loves fast food and cluttered, ornate spaces")

    assert len(fits.transcript) == 3 and all(t.answer and t.answer != "(no answer)" for t in fits.transcript)
    assert fits.score > 0.5 > clashes.score
    assert "cluttered" in clashes.justification
    assert fits.model_name == "demo"


async def test_demo_drift_notices_words_the_persona_would_never_use():
    model = DemoModel()
    person = oscar(model)
    person.listen("Oscar, what matters in a building?", "Lisa", target="Oscar")
    await person.act()
    validator = PersonaValidator(model)
    assert not (await validator.drift(person)).drifted

    for text in ("Crypto yachts forever, lambo or bust!", "Gimme bling, bling, bling.", "Yolo moonshot tokens!!!"):
        person.episodic.add(Episode(step=1, time=datetime(2025, 1, 6), kind="action", type="TALK", content=text))
    report = await validator.drift(person, recent_n=4)

    assert report.drifted and report.consistency < 0.5
    assert any("Crypto yachts" in f for f in report.findings)


async def test_demo_validator_reads_a_dislike_in_context():
    """Priya dislikes "roadmap promises made to prospects" but owns the roadmap: the README's example
    expectation of her is consistent, not contradicted."""
    from simulation.agent import TinyPerson
    from simulation.persona import find_bundled_persona

    model = DemoModel()
    priya = TinyPerson(find_bundled_persona("Priya Nair"), model)
    result = await PersonaValidator(model).validate(priya, "a pragmatic product manager who protects the roadmap")
    assert result.score >= 0.6 and "roadmap" in result.justification.split("Borne out:")[1].split(".")[0]
    assert "Contradicted" not in result.justification
    clash = await PersonaValidator(model).validate(priya, "someone who loves last-minute scope changes")
    assert clash.score < result.score
