"""Extraction into schemas (model) and reduction of the event log (rules), with CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from pydantic import BaseModel

from simulation.events import EventKind
from simulation.extraction import ExtractionError, ResultsExtractor, ResultsReducer, to_csv
from simulation.llm.demo import DemoModel
from simulation.llm.errors import StructuredOutputError
from simulation.world import TinyWorld
from tests.support.turns import TurnRule
from tests.support.worlds import people


class Decision(BaseModel):
    decision: str
    votes_for: int
    concerns: list[str]


def world(model) -> TinyWorld:
    return TinyWorld("extract", people(model), model=model)


def is_extraction(body: dict) -> bool:
    return body["messages"][0]["content"].startswith("You extract structured data")


def subject_of(body: dict) -> str | None:
    match = re.search(r"^Persona: ([^,\n]+)", body["messages"][1]["content"], re.M)
    return match.group(1) if match else None


async def discussed(model, fake_openai, responder) -> TinyWorld:
    rule = TurnRule()
    fake_openai.responder = lambda body: responder(body) if is_extraction(body) else rule(body)
    w = world(model)
    await w.broadcast("Should we buy the robot vacuum for the office?")
    await w.run(1)
    return w


async def test_one_object_from_a_whole_world_with_a_pydantic_schema(model, fake_openai):
    reply = {"decision": "buy the robot vacuum", "votes_for": 2, "concerns": ["noise", "price"]}
    w = await discussed(model, fake_openai, lambda body: json.dumps(reply))

    result = await ResultsExtractor(model).extract(w, Decision, "Count only explicit votes.")

    assert result.value == Decision(**reply)
    assert not result.per_agent and list(result.records) == ["extract"]
    request = [r for r in fake_openai.requests if is_extraction(r.body)][0].body
    assert request["response_format"]["json_schema"]["name"] == "Decision"
    prompt = request["messages"][1]["content"]
    assert "moderator: Should we buy the robot vacuum for the office?" in prompt
    assert "Oscar replies to" in prompt and "Instructions: Count only explicit votes." in prompt
    assert json.loads(result.to_json())["records"]["extract"]["votes_for"] == 2
    assert result.disclaimer == f"Simulated answers from {result.model_name}; they may not reflect what real people think."


async def test_per_persona_field_names_give_a_table(model, fake_openai):
    stances = {"Lisa Carter": "for", "Oscar": "against", "Marcos Almeida": "=WEBSERVICE(\"https://evil.example\")"}

    def responder(body: dict) -> str:
        name = subject_of(body)
        return json.dumps({"stance": stances[name], "favourite colour": None if name == "Oscar" else "blue"})

    w = await discussed(model, fake_openai, responder)

    result = await ResultsExtractor(model).extract(w, ["stance", "favourite colour"], per_agent=True)

    assert list(result.records) == ["Lisa Carter", "Oscar", "Marcos Almeida"]
    rows = list(csv.DictReader(io.StringIO(result.to_csv())))
    note = result.disclaimer
    assert rows == [
        {"persona": "Lisa Carter", "stance": "for", "favourite colour": "blue", "note": note},
        {"persona": "Oscar", "stance": "against", "favourite colour": "", "note": note},
        # A formula a persona wrote is a spreadsheet's text, not a call to whoever it names.
        {"persona": "Marcos Almeida", "stance": "'=WEBSERVICE(\"https://evil.example\")", "favourite colour": "blue",
         "note": note},
    ]
    # Each persona's extraction reads its own memory, which holds what it said.
    oscar = next(r.body for r in fake_openai.requests if is_extraction(r.body) and subject_of(r.body) == "Oscar")
    assert "You: Oscar replies to" in oscar["messages"][1]["content"]
    assert ResultsReducer.tally(result, "stance") == {"for": 1, "against": 1, '=WEBSERVICE("https://evil.example")': 1}


async def test_a_json_schema_is_enforced_and_one_failing_persona_is_reported(model, fake_openai):
    schema = {
        "type": "object",
        "properties": {
            "stance": {"type": "string", "enum": ["for", "against", "undecided"]},
            "confidence": {"type": "integer", "description": "1-5"},
        },
        "required": ["stance", "confidence"],
    }

    def responder(body: dict) -> str:
        if subject_of(body) == "Marcos Almeida":
            return json.dumps({"stance": "maybe?", "confidence": 3})  # not in the enum, every time
        return json.dumps({"stance": "for", "confidence": 4})

    w = await discussed(model, fake_openai, responder)

    result = await ResultsExtractor(model).extract(w, schema, per_agent=True)

    assert list(result.records) == ["Lisa Carter", "Oscar"]
    assert "Marcos Almeida" in result.failed and "stance" in result.failed["Marcos Almeida"]
    assert json.loads(result.to_json())["failed"].keys() == {"Marcos Almeida"}
    sent = next(r.body for r in fake_openai.requests if is_extraction(r.body))
    assert sent["response_format"]["json_schema"]["schema"]["properties"]["stance"]["enum"] == ["for", "against", "undecided"]


async def test_a_single_extraction_that_never_validates_raises(model, fake_openai):
    w = await discussed(model, fake_openai, lambda body: "I think they mostly agreed.")

    with pytest.raises(StructuredOutputError):
        await ResultsExtractor(model).extract(w, Decision)

    assert sum(is_extraction(r.body) for r in fake_openai.requests) == 2, "one re-ask"


@pytest.mark.parametrize(
    "schema",
    [[], ["a", "a"], {"type": "object", "properties": {}}, {"type": "object", "properties": {"x": {"type": "object"}}}, 42],
)
async def test_unusable_schemas_are_refused_before_any_call(model, fake_openai, schema):
    with pytest.raises(ExtractionError):
        await ResultsExtractor(model).extract(world(model), schema)
    assert fake_openai.requests == []


async def test_reducer_counts_and_tables_the_log_without_a_model(model, fake_openai):
    w = await discussed(model, fake_openai, lambda body: "{}")
    calls = len(fake_openai.requests)

    assert ResultsReducer.counts(w, by="kind") == {"action": 6, "stimulus": 1}
    assert ResultsReducer.counts(w) == {"THINK": 3, "TALK": 3, "CONVERSATION": 1}
    assert ResultsReducer.counts_by_persona(w)["Oscar"] == {"THINK": 1, "TALK": 1}
    table = ResultsReducer.persona_table(w)
    assert [row["persona"] for row in table] == ["Lisa Carter", "Oscar", "Marcos Almeida"]
    assert table[1]["messages"] == 1 and table[1]["last_said"].startswith("Oscar replies to")
    assert table[1]["words"] == len(table[1]["last_said"].split())
    reducer = ResultsReducer().add_rule("TALK", lambda e: {"mentions_vacuum": "vacuum" in e.content})
    rows = reducer.reduce(w, persona="Oscar")
    assert [(r["persona"], r["mentions_vacuum"]) for r in rows] == [("Oscar", True)]
    assert ResultsReducer.tally(w.events, "source")["Lisa Carter"] == 2
    lines = to_csv(table).splitlines()
    assert lines[0] == "persona,messages,thoughts,words,first_step,last_step,last_said" and len(lines) == 4
    assert len(fake_openai.requests) == calls, "the reducer never calls the model"


async def test_demo_extraction_reads_persona_facts_and_their_own_words():
    model = DemoModel()
    w = world(model)
    await w.broadcast("Which would you rather buy for your home: a $300 smart speaker or a $300 robot vacuum? Why?")
    await w.run(1)

    result = await ResultsExtractor(model).extract(w, ["age", "occupation", "opinion"], per_agent=True)

    for agent in w.agents:
        record = result.records[agent.name].model_dump(by_alias=True)
        assert record["age"] == str(agent.spec.age)
        assert record["occupation"] == agent.spec.occupation_title
        said = [e.content for e in w.events if e.source == agent.name and e.type == "TALK"]
        assert record["opinion"] in said
    topic = await ResultsExtractor(model).extract(w, {"type": "object", "properties": {"topic": {"type": "string"}}})
    assert "smart speaker" in topic.value.topic
    assert result.model_name == "demo"


async def test_one_persona_is_extracted_from_its_own_memory(model, fake_openai):
    reply = {"decision": "wait for a sale", "votes_for": 0, "concerns": ["price"]}
    w = await discussed(model, fake_openai, lambda body: json.dumps(reply))
    oscar = w.get("Oscar")

    result = await ResultsExtractor(model).extract(oscar, Decision)

    assert result.per_agent and result.value.decision == "wait for a sale"
    assert result.rows() == [{"persona": "Oscar", "decision": "wait for a sale", "votes_for": 0, "concerns": ["price"]}]
    assert f"persona,decision,votes_for,concerns,note\nOscar,wait for a sale,0,price,{result.disclaimer}\n" == result.to_csv()
    prompt = [r for r in fake_openai.requests if is_extraction(r.body)][0].body["messages"][1]["content"]
    assert prompt.startswith("Persona: Oscar, 30, Architect") and "What Oscar lived through:" in prompt


async def test_demo_extraction_never_gives_a_persona_someone_elses_words():
    """After a round in which everyone spoke, each persona's reasons and yes/no come from its own lines."""
    model = DemoModel()
    w = world(model)
    await w.broadcast("Would you pay 5 euros a month for premium?")
    await w.run(2)
    schema = {"type": "object", "properties": {
        "would_pay": {"type": "boolean"},
        "reasons": {"type": "array", "items": {"type": "string"}},
    }}
    result = await ResultsExtractor(model).extract(w, schema, per_agent=True)
    for agent in w.agents:
        said = [e.content for e in w.events if e.source == agent.name and e.kind is EventKind.ACTION]
        record = result.records[agent.name]
        reasons = record["reasons"] if isinstance(record, dict) else record.model_dump()["reasons"]
        assert reasons and all(any(r in line or line in r for line in said) for r in reasons), (agent.name, reasons, said)
