"""Real servers' ways with structured output and context windows, through the real openai client.

The fake answers as each server does (``flavor``): how it refuses a ``response_format``, what it does
with a prompt past its window. Every persona must still answer, a new server must cost at most one
refused request, and what was learned must outlive a restart.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import BaseModel

from simulation.actions import ActionType
from simulation.agent import TinyPerson
from simulation.events import EventKind
from simulation.llm.base import ChatRequest, Message
from simulation.llm.capabilities import (
    SqliteProfileStore,
    StructuredMode,
    after_refusal,
)
from simulation.llm.errors import ContextLengthExceededError
from simulation.llm.limiter import ConcurrencyLimitedModel
from simulation.llm.openai_model import OpenAIModel
from simulation.llm.retry import RetryingModel
from simulation.persona import PersonaSpec
from simulation.prompts import WORDS_RULES
from simulation.world import WORDS_ONLY_NOTICE, TinyWorld
from tests.fakes.openai_server import FakeOpenAIServer, Reply

REQUEST = ChatRequest(messages=[Message(role="user", content="How do you feel about the deploy?")])


class Mood(BaseModel):
    mood: str
    confidence: int


def backend(server: FakeOpenAIServer, store: SqliteProfileStore | None = None) -> OpenAIModel:
    if server.flavor == "azure_old":
        model = OpenAIModel.azure_openai(azure_endpoint=server.azure_endpoint, azure_deployment="gpt-4o-mini",
                                         api_version="2024-06-01", api_key="test-key")
    else:
        model = OpenAIModel.openai(model="smollm2", base_url=server.base_url)
    model.capabilities.store = store
    return model


def stack(server: FakeOpenAIServer) -> RetryingModel:
    """Retries on: a refusal must not be taken for a passing fault and retried."""
    return RetryingModel(ConcurrencyLimitedModel(backend(server), 4), max_retries=4, base_delay=0)


def formats(server: FakeOpenAIServer) -> list[str | None]:
    kinds = []
    for r in server.requests:
        rf = r.body.get("response_format")
        kinds.append(None if rf is None else rf["type"] + ("+schema" if "schema" in rf else ""))
    return kinds


def person(model, name: str = "Priya Nair") -> TinyPerson:
    spec = PersonaSpec.from_data({"name": name, "age": 34, "occupation": "Product manager"}, source="test")
    return TinyPerson(spec, model, world_name="Team room")


# -- reading refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tried", "refusal", "following"),
    [
        # llama-cpp-python: pydantic's literal error, at HTTP 500, naming what it takes.
        (StructuredMode.JSON_SCHEMA_STRICT,
         "1 validation error: {'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text' or "
         "'json_object'\", 'input': 'json_schema'}", StructuredMode.JSON_OBJECT_SCHEMA),
        # OpenAI, for a model without structured outputs: the type is named, so no non-strict try.
        (StructuredMode.JSON_SCHEMA_STRICT,
         "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
         StructuredMode.JSON_OBJECT_SCHEMA),
        # Older Azure API versions.
        (StructuredMode.JSON_SCHEMA_STRICT,
         "response_format value as json_schema is enabled only for api versions 2024-08-01-preview and later",
         StructuredMode.JSON_OBJECT_SCHEMA),
        # A server that only minds the strict flag.
        (StructuredMode.JSON_SCHEMA_STRICT, "strict mode is not supported", StructuredMode.JSON_SCHEMA),
        # LM Studio refuses json_object: straight to the schema in the prompt.
        (StructuredMode.JSON_OBJECT_SCHEMA, "'response_format.type' must be 'json_schema' or 'text'",
         StructuredMode.PROMPT),
        # A schema key nobody expected: plain json_object is next.
        (StructuredMode.JSON_OBJECT_SCHEMA, "Additional properties are not allowed ('schema' was unexpected)",
         StructuredMode.JSON_OBJECT),
        (StructuredMode.JSON_OBJECT, "response_format is not supported", StructuredMode.PROMPT),
        (StructuredMode.PROMPT, "anything", None),
    ],
)
def test_a_refusal_is_read_to_skip_what_it_rules_out(tried, refusal, following):
    assert after_refusal(tried, refusal) is following


# -- discovery on each server ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flavor", "mode", "refused"),
    [
        ("openai", StructuredMode.JSON_SCHEMA_STRICT, 0),
        # Azure ignores a schema beside json_object: that rung is skipped for it.
        ("azure_old", StructuredMode.JSON_OBJECT, 1),
        ("llama_cpp_python", StructuredMode.JSON_OBJECT_SCHEMA, 1),
        ("llama_cpp", StructuredMode.JSON_SCHEMA_STRICT, 0),
        ("ollama", StructuredMode.JSON_SCHEMA_STRICT, 0),
        ("vllm", StructuredMode.JSON_SCHEMA_STRICT, 0),
        ("lmstudio", StructuredMode.JSON_SCHEMA_STRICT, 0),
    ],
)
async def test_each_server_gets_a_valid_reply_for_at_most_one_refusal(flavor, mode, refused):
    async with FakeOpenAIServer(flavor=flavor) as server:
        model = stack(server)
        try:
            value, _ = await model.structured(REQUEST, Mood)
        finally:
            await model.aclose()
    assert isinstance(value, Mood)
    assert model.capabilities.structured_mode is mode
    assert model.capabilities.refusals == refused
    assert len(server.requests) == 1 + refused, "a refusal is never retried as a passing fault"


async def test_llama_cpp_python_gets_its_grammar_mode_after_one_500():
    async with FakeOpenAIServer(flavor="llama_cpp_python") as server:
        model = stack(server)
        try:
            await model.structured(REQUEST, Mood)
        finally:
            await model.aclose()
    assert formats(server) == ["json_schema", "json_object+schema"]
    sent = server.requests[1].body
    assert sent["response_format"]["schema"]["required"] == ["mood", "confidence"]
    # The grammar holds the reply to the schema: the prompt does not carry it as well.
    assert all("JSON schema" not in m["content"] for m in sent["messages"])


async def test_lm_studio_refusing_json_object_goes_to_the_prompt_at_once():
    async with FakeOpenAIServer(flavor="lmstudio") as server:
        model = stack(server)
        model.capabilities.structured_mode = StructuredMode.JSON_OBJECT_SCHEMA
        try:
            value, _ = await model.structured(REQUEST, Mood)
        finally:
            await model.aclose()
    assert isinstance(value, Mood)
    assert formats(server) == ["json_object+schema", None]
    assert model.capabilities.structured_mode is StructuredMode.PROMPT
    assert '"confidence"' in server.requests[1].body["messages"][-1]["content"]


@pytest.mark.parametrize("status", [400, 422, 500, 501])
async def test_a_refusal_naming_response_format_is_recognised_at_any_status(fake_openai, status):
    fake_openai.flavor = "llama_cpp"  # takes json_object with a schema
    fake_openai.fail("error", status=status, message="Unsupported value: response_format.type 'json_schema'")
    model = stack(fake_openai)
    try:
        value, _ = await model.structured(REQUEST, Mood)
    finally:
        await model.aclose()
    assert isinstance(value, Mood)
    assert formats(fake_openai) == ["json_schema", "json_object+schema"], "moved on at once, never retried"


async def test_a_plain_server_fault_is_still_retried(fake_openai):
    fake_openai.fail("error", status=500, message="CUDA out of memory", type="server_error")
    model = stack(fake_openai)
    try:
        await model.structured(REQUEST, Mood)
    finally:
        await model.aclose()
    assert formats(fake_openai) == ["json_schema", "json_schema"]
    assert model.capabilities.structured_mode is StructuredMode.JSON_SCHEMA_STRICT


async def test_personas_asking_at_once_cost_one_refusal_between_them():
    async with FakeOpenAIServer(flavor="llama_cpp_python") as server:
        model = stack(server)
        try:
            results = await asyncio.gather(*(model.structured(REQUEST, Mood) for _ in range(5)))
        finally:
            await model.aclose()
    assert len(results) == 5
    assert formats(server).count("json_schema") == 1
    assert formats(server).count("json_object+schema") == 5


async def test_what_was_discovered_outlives_a_restart(tmp_path):
    store = SqliteProfileStore(tmp_path / "troupe.db")
    async with FakeOpenAIServer(flavor="llama_cpp_python") as server:
        first = backend(server, store)
        await first.structured(REQUEST, Mood)
        await first.aclose()
        server.requests.clear()

        restarted = backend(server, store)
        await restarted.structured(REQUEST, Mood)
        await restarted.aclose()
    assert formats(server) == ["json_object+schema"], "no second discovery"
    assert restarted.capabilities.refusals == 0
    # Another model on the same server is discovered on its own.
    other = OpenAIModel.openai(model="qwen2.5", base_url=server.base_url)
    other.capabilities.store = store
    await other.capabilities.ready()
    assert other.capabilities.structured_mode is StructuredMode.JSON_SCHEMA_STRICT


async def test_a_damaged_profile_costs_only_a_rediscovery(tmp_path, caplog):
    store = SqliteProfileStore(tmp_path / "troupe.db")
    async with FakeOpenAIServer(flavor="llama_cpp_python") as server:
        model = backend(server, store)
        await store.save_model_profile(model.capabilities.key, {"structured_mode": "no such mode"})
        value, _ = await model.structured(REQUEST, Mood)
        await model.aclose()
    assert isinstance(value, Mood)
    assert "could not read the remembered profile" in caplog.text
    assert json.loads(json.dumps(await store.load_model_profile(model.capabilities.key)))["structured_mode"] == (
        "json_object_schema"
    )


async def test_a_mode_the_server_ignores_is_left_after_three_invalid_replies(fake_openai):
    """A server may take ``json_object`` with a schema and ignore the schema (Ollama, vLLM)."""
    model = backend(fake_openai)
    model.capabilities.structured_mode = StructuredMode.JSON_OBJECT_SCHEMA
    fake_openai.script([Reply('{"response": "fine"}')] * 6)
    for _ in range(3):
        with pytest.raises(Exception, match="gave no valid Mood"):
            await model.structured(REQUEST, Mood)
    assert model.capabilities.structured_mode is StructuredMode.JSON_OBJECT
    value, _ = await model.structured(REQUEST, Mood)
    await model.aclose()
    assert isinstance(value, Mood)
    assert '"confidence"' in fake_openai.requests[-1].body["messages"][-1]["content"], "the schema is in the prompt now"


# -- a persona always answers -------------------------------------------------------------------------


async def test_a_model_without_a_valid_turn_answers_in_words(fake_openai):
    model = backend(fake_openai)
    priya = person(model)
    priya.listen("Smart speaker or robot vacuum?", "moderator")
    state_before = priya.cognitive_state.model_copy()
    fake_openai.script([Reply('{"actions": [{"type": "DONE", "content": "x", "target": null}]}')] * 2
                       + [Reply('Priya Nair: "The vacuum, it saves me an hour a week."\nTomasz: The speaker.')])

    result = await priya.act()
    await model.aclose()

    assert result.words_only
    assert [(a.type, a.content) for a in result.actions] == [(ActionType.TALK, "The vacuum, it saves me an hour a week.")]
    assert priya.cognitive_state == state_before
    words = fake_openai.requests[2].body
    assert "response_format" not in words and WORDS_RULES in words["messages"][0]["content"]
    assert words["max_tokens"] <= 200


async def test_the_moderator_is_told_once_per_world_that_the_model_gives_words_only(fake_openai):
    model = backend(fake_openai)
    world = TinyWorld("Team room", [person(model), person(model, "Henrik Lindqvist")], model=model)
    fake_openai.responder = lambda body: (
        '{"actions": [{"type": "DONE", "content": "", "target": null}], "cognitive_state": '
        '{"goals": "", "attention": "", "emotions": ""}}' if body.get("response_format") else "I'd wait a month."
    )
    await world.broadcast("Should we ship on Friday?", source="moderator")
    await world.step()
    await world.broadcast("And on Monday?", source="moderator")
    await world.step()
    await world.settle()
    await model.aclose()

    notices = [e for e in world.events if e.kind is EventKind.NOTICE]
    assert [e.type for e in notices] == [WORDS_ONLY_NOTICE]
    assert "gives words but no thoughts" in notices[0].content and "gpt-4o-mini" in notices[0].content
    talks = [e for e in world.events if e.type == "TALK"]
    assert {e.source for e in talks} == {"Priya Nair", "Henrik Lindqvist"} and len(talks) == 4


async def test_after_three_words_only_turns_turns_ask_for_words_at_once(fake_openai):
    model = backend(fake_openai)
    priya = person(model)
    fake_openai.responder = lambda body: "not json" if body.get("response_format") else "Sounds good to me."
    for _ in range(3):
        priya.listen("Thoughts?", "moderator")
        assert (await priya.act()).words_only
    assert model.capabilities.words_only
    fake_openai.requests.clear()
    priya.listen("Anything else?", "moderator")
    result = await priya.act()
    await model.aclose()
    assert result.words_only and len(fake_openai.requests) == 1


# -- context windows -----------------------------------------------------------------------------------


def long_history(agent: TinyPerson, moments: int = 50) -> None:
    for i in range(moments):
        agent.listen(f"Point {i}: the rollout plan needs another review of the database migration, " * 4, "Henrik")


async def turn_after_long_history(server: FakeOpenAIServer, *, configured: int | None = None):
    """One turn of a persona with a long history: its result, the model, and the turn requests sent
    (memory consolidation's are left out)."""
    model = backend(server)
    model.capabilities.configured_context_tokens = configured
    priya = person(model)
    long_history(priya)
    result = await priya.act()
    await priya.settle()
    await model.aclose()
    turns = [r for r in server.requests if r.body["messages"][0]["content"].startswith("You are")]
    return result, model, turns


@pytest.mark.parametrize("flavor", ["openai", "llama_cpp_python", "lmstudio"])
async def test_a_prompt_past_the_window_is_shrunk_and_retried_once(flavor):
    async with FakeOpenAIServer(flavor=flavor, context_tokens=2500) as server:
        result, model, turns = await turn_after_long_history(server)
    assert result.actions
    assert model.capabilities.learned_context_tokens == 2500
    assert len(turns) == 2 + model.capabilities.refusals, "one context refusal, one smaller try"
    smaller = turns[-1].body["messages"][1]["content"]
    assert "Point 49" in smaller, "the newest moment stays"
    assert "Point 0:" not in smaller


async def test_a_configured_cap_fits_the_prompt_before_sending(fake_openai):
    fake_openai.context_tokens = 2500
    result, _, turns = await turn_after_long_history(fake_openai, configured=2500)
    assert result.actions and len(turns) == 1, "no refusal: it fit up front"


async def test_when_even_the_smallest_prompt_does_not_fit_the_user_is_told_what_to_raise(fake_openai):
    fake_openai.flavor, fake_openai.context_tokens = "llama_cpp_python", 120
    model = backend(fake_openai)
    priya = person(model)
    priya.listen("Hello?", "moderator")
    with pytest.raises(ContextLengthExceededError) as caught:
        await priya.act()
    await model.aclose()
    message = str(caught.value)
    assert "does not fit the model's context window of 120 tokens" in message
    assert "--n_ctx" in message and "TROUPE_LLM_CONTEXT_TOKENS" in message
    assert priya.has_unread(), "nothing was lost: the question waits"


# -- research on a weak model ---------------------------------------------------------------------------


async def test_a_poll_on_a_weak_model_names_who_could_not_answer_and_keeps_the_rest(fake_openai):
    from simulation.polls import Poll, run_poll
    from tests.fakes.openai_server import persona_name

    model = backend(fake_openai)
    world = TinyWorld("Team room", [person(model), person(model, "Henrik Lindqvist")], model=model)
    fake_openai.responder = lambda body: (
        "yes, probably" if persona_name(body) == "Henrik Lindqvist" else json.dumps({"choice": "yes", "reason": "It pays off."})
    )
    result = await run_poll(world, Poll(question="Buy the vacuum?", options=["yes", "no"]))
    await model.aclose()
    answers = {a.persona: (a.choice, a.reason) for a in result.answers}
    assert answers == {"Priya Nair": ("yes", "It pays off."),
                       "Henrik Lindqvist": (None, "could not answer in the required shape")}


async def test_a_summary_on_a_weak_model_gives_its_overview_in_words(fake_openai):
    from simulation.summary import Summarizer

    model = backend(fake_openai)
    world = TinyWorld("Team room", [person(model)], model=model)
    fake_openai.responder = lambda body: (
        "We talked about vacuums." if body.get("response_format") is None and "summarise" in body["messages"][0]["content"]
        else "I'd buy the vacuum." if body.get("response_format") is None else "no json"
    )
    await world.broadcast("Vacuum or speaker?")
    await world.step()
    summary = await Summarizer(model).summarize(world)
    await world.settle()
    await model.aclose()
    assert summary.overview.startswith("We talked about vacuums.")
    assert "could not answer in the required shape" in summary.overview
    assert summary.positions == []


@pytest.mark.parametrize("flavor", ["llama_cpp", "vllm"])
async def test_a_server_that_reports_its_window_has_prompts_fitted_before_any_refusal(flavor):
    async with FakeOpenAIServer(flavor=flavor, context_tokens=2500) as server:
        result, model, turns = await turn_after_long_history(server)
    assert result.actions
    assert model.capabilities.learned_context_tokens == 2500
    assert len(turns) == 1, "fitted up front from the server's own figure"


async def test_doctor_reports_the_structured_mode_and_the_context_window(tmp_path):
    from bots.doctor import check_model
    from config.settings import Settings

    async with FakeOpenAIServer(flavor="llama_cpp_python") as server:
        settings = Settings(data_dir=tmp_path, llm={"base_url": server.base_url, "model": "smollm2"})
        check = await check_model(settings)
    assert check.ok is True
    assert "structured output: json_object with schema (grammar-constrained) (1 form refused)" in check.detail
    assert "context window not reported by the server (set TROUPE_LLM_CONTEXT_TOKENS" in check.detail

    async with FakeOpenAIServer(flavor="llama_cpp", context_tokens=8192) as server:
        settings = Settings(data_dir=tmp_path, llm={"base_url": server.base_url, "model": "smollm2"})
        check = await check_model(settings)
    assert "structured output: json_schema (strict)" in check.detail
    assert "context window 8,192 tokens" in check.detail


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        ('Priya Nair: I would buy the vacuum.\nTomasz Kowalski: me too', "I would buy the vacuum."),
        ('"I like it."', "I like it."),
        ('{"actions": [{"type": "THINK", "content": "hmm"}, {"type": "TALK", "content": "Sure thing."}]}', "Sure thing."),
        ("Moderator: which one?\n**Priya Nair:** The speaker, for music.", "The speaker, for music."),
        ("Hey team: I think we wait.", "Hey team: I think we wait."),
        ("[09:15] «moderator»: which one?", ""),
        ("[09:13] [09:28] I think so.\n[09:16] «Henrik Lindqvist»: me too", "I think so."),
        ("I'd take the vacuum. It saves time. And the", "I'd take the vacuum. It saves time."),
        ("…", ""),
        ("Henrik Lindqvist: You're the one who asked.", ""),  # a line given to another, even one not heard yet
        ("I'd say we", "I'd say we…"),
    ],
)
def test_words_are_taken_from_what_a_small_model_wraps_them_in(reply, words):
    from simulation.words import spoken_words

    cut_off = reply.endswith(("And the", "…", "we"))
    assert spoken_words(reply, "Priya Nair", ["Tomasz Kowalski", "Henrik Lindqvist", "moderator"], cut_off=cut_off) == words
