"""Structured output over a real server: fallbacks, validation and the single re-ask."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from simulation.llm.base import ChatRequest, Message, StructuredMode
from simulation.llm.errors import StructuredOutputError
from simulation.llm.limiter import ConcurrencyLimitedModel
from simulation.llm.openai_model import OpenAIModel
from simulation.llm.retry import RetryingModel
from simulation.llm.tokens import count_request_tokens


class Action(BaseModel):
    kind: str
    content: str


class Turn(BaseModel):
    actions: list[Action]
    mood: str | None
    confidence: int


REQUEST = ChatRequest(
    messages=[
        Message(role="system", content="You are Omar, a backend engineer."),
        Message(role="user", content="The deploy failed. What do you do?"),
    ]
)


def as_openai(backend: OpenAIModel) -> OpenAIModel:
    """The fake answers as OpenAI does, which ignores a schema beside ``json_object``: so does
    discovery at api.openai.com."""
    backend.capabilities.object_schema = False
    return backend


@pytest.fixture
async def model(fake_openai):
    backend = as_openai(OpenAIModel.openai(model="gpt-4o-mini", api_key="sk-test", base_url=fake_openai.base_url))
    yield backend
    await backend.aclose()


def formats(server) -> list[str | None]:
    return [(r.body.get("response_format") or {}).get("type") for r in server.requests]


async def test_json_schema_reply_is_validated_into_the_model(model, fake_openai):
    turn, result = await model.structured(REQUEST, Turn)

    assert isinstance(turn, Turn) and turn.actions and turn.confidence == 1
    sent = fake_openai.requests[0].body["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Turn"
    assert sent["json_schema"]["strict"] is True
    # The server bills the schema as prompt tokens, and so do we.
    assert result.usage.prompt_tokens == count_request_tokens(
        fake_openai.requests[0].body["messages"], sent
    )


async def test_falls_back_to_json_mode_and_remembers_it(model, fake_openai):
    fake_openai.refuse_json_schema = True

    first, _ = await model.structured(REQUEST, Turn)
    second, _ = await model.structured(REQUEST, Turn)

    assert isinstance(first, Turn) and isinstance(second, Turn)
    # OpenAI's refusal names the json_schema type, so the non-strict variant is skipped.
    assert formats(fake_openai) == ["json_schema", "json_object", "json_object"]
    assert model.capabilities.structured_mode is StructuredMode.JSON_OBJECT
    assert fake_openai.requests[1].body["response_format"] == {"type": "json_object"}
    # Without json_schema the schema travels in the prompt.
    assert '"confidence"' in fake_openai.requests[1].body["messages"][-1]["content"]


async def test_falls_back_to_the_schema_in_the_prompt(model, fake_openai):
    fake_openai.refuse_json_schema = fake_openai.refuse_json_object = True

    turn, _ = await model.structured(REQUEST, Turn)
    await model.structured(REQUEST, Turn)

    assert isinstance(turn, Turn)
    # Each refusal names its type: one json_schema and one json_object try.
    assert formats(fake_openai) == ["json_schema", "json_object", None, None]
    assert model.capabilities.structured_mode is StructuredMode.PROMPT
    assert model.capabilities.refusals == 2
    assert any("now uses schema in the prompt" in note for note in model.capabilities.notes)
    assert '"confidence"' in fake_openai.requests[2].body["messages"][-1]["content"]


async def test_the_downgrade_is_shared_by_every_wrapper(fake_openai):
    backend = as_openai(OpenAIModel.openai(model="gpt-4o-mini", api_key="sk-test", base_url=fake_openai.base_url))
    stack = RetryingModel(ConcurrencyLimitedModel(backend, 2), max_retries=1, base_delay=0)
    fake_openai.refuse_json_schema = True
    try:
        await stack.structured(REQUEST, Turn)
        await backend.structured(REQUEST, Turn)
    finally:
        await stack.aclose()
    assert formats(fake_openai) == ["json_schema", "json_object", "json_object"]


async def test_a_malformed_reply_is_re_asked_once_with_the_error(model, fake_openai):
    fake_openai.fail("malformed_json")

    turn, _ = await model.structured(REQUEST, Turn)

    assert isinstance(turn, Turn)
    assert len(fake_openai.requests) == 2
    reask = fake_openai.requests[1].body["messages"]
    assert reask[-2]["role"] == "assistant" and "no json here" in reask[-2]["content"]
    assert "not valid JSON" in reask[-1]["content"] and "Turn" in reask[-1]["content"]


@pytest.mark.parametrize(
    ("fault", "complaint"),
    [
        ("malformed_json", "not valid JSON"),
        ("missing_fields", "Field required"),
        ("truncated", "cut off"),
    ],
)
async def test_two_bad_replies_give_a_structured_output_error(model, fake_openai, fault, complaint):
    fake_openai.fail(fault, times=2)

    with pytest.raises(StructuredOutputError) as caught:
        await model.structured(REQUEST, Turn)

    assert len(fake_openai.requests) == 2, "exactly one re-ask"
    error = caught.value
    assert error.schema_name == "Turn" and complaint in str(error) and error.raw
    assert complaint in fake_openai.requests[1].body["messages"][-1]["content"]


async def test_missing_fields_are_named_in_the_re_ask(model, fake_openai):
    fake_openai.fail("missing_fields")

    turn, _ = await model.structured(REQUEST, Turn)

    assert isinstance(turn, Turn)
    reask = fake_openai.requests[1].body["messages"][-1]["content"]
    assert "actions" in reask and "confidence" in reask


async def test_a_reply_in_a_code_fence_is_accepted(model, fake_openai):
    payload = {"actions": [{"kind": "TALK", "content": "Rolling back."}], "mood": None, "confidence": 3}
    fake_openai.script([f"Here you go:\n```json\n{json.dumps(payload)}\n```"])

    turn, _ = await model.structured(REQUEST, Turn)

    assert turn.actions[0].content == "Rolling back." and turn.confidence == 3


async def test_every_call_sends_the_same_schema_whatever_the_mode(model, fake_openai):
    """Calls share one schema per class: no mode and no client may leave a change in it."""
    for _ in range(2):
        await model.structured(REQUEST, Turn)
    fake_openai.refuse_json_schema = fake_openai.refuse_json_object = True
    for _ in range(2):
        await model.structured(REQUEST, Turn)
    sent = [r.body["response_format"]["json_schema"]["schema"] for r in fake_openai.requests[:2]]
    assert sent[0] == sent[1] and sent[0]["additionalProperties"] is False
    in_prompt = [r.body["messages"][-1]["content"] for r in fake_openai.requests if not r.body.get("response_format")]
    assert in_prompt == [in_prompt[0]] * 2 and in_prompt[0].endswith(json.dumps(sent[0], separators=(",", ":")))
