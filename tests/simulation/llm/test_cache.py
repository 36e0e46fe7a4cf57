"""The persistent response cache, in front of the real client and the fake server."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from simulation.llm.base import Attribution, ChatRequest, Message
from simulation.llm.cache import CachedModel, cache_key
from simulation.llm.errors import ServerError
from simulation.llm.openai_model import OpenAIModel


def ask(text: str = "Should we ship on Friday?", **fields: object) -> ChatRequest:
    return ChatRequest(
        messages=[
            Message(role="system", content="You are Priya, a release manager."),
            Message(role="user", content=text),
        ],
        **fields,
    )


def backend(server, model: str = "gpt-4o-mini") -> OpenAIModel:
    return OpenAIModel.openai(model=model, api_key="sk-test", base_url=server.base_url, timeout_s=2)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "cache" / "llm.sqlite3"


async def test_a_restarted_cache_answers_without_the_server(fake_openai, path):
    first = CachedModel(backend(fake_openai), path)
    original = await first.complete(ask())
    await first.aclose()
    assert len(fake_openai.requests) == 1 and original.cached is False

    fake_openai.requests.clear()
    second = CachedModel(backend(fake_openai), path)
    try:
        replay = await second.complete(ask())
    finally:
        await second.aclose()

    assert fake_openai.requests == []
    assert replay.text == original.text and replay.usage == original.usage
    assert replay.cached is True and replay.latency_s == 0


async def test_what_decides_the_answer_is_the_key_and_who_asked_is_not(fake_openai, path):
    model = CachedModel(backend(fake_openai), path)
    try:
        await model.complete(ask(attribution=Attribution(world="a", persona="Priya")))
        shared = await model.complete(ask(attribution=Attribution(world="b", persona="Priya")))
        await model.complete(ask(temperature=0.9))
        await model.complete(ask("Should we ship on Monday?"))
    finally:
        await model.aclose()

    assert shared.cached is True
    assert len(fake_openai.requests) == 3
    assert (model.hits, model.misses) == (1, 3)
    assert cache_key(ask(), "gpt-4o-mini") != cache_key(ask(), "gpt-4.1")


async def test_another_model_does_not_reuse_the_answers(fake_openai, path):
    first = CachedModel(backend(fake_openai, "gpt-4o-mini"), path)
    await first.complete(ask())
    await first.aclose()
    other = CachedModel(backend(fake_openai, "gpt-4.1"), path)
    try:
        result = await other.complete(ask())
    finally:
        await other.aclose()
    assert result.cached is False and len(fake_openai.requests) == 2


async def test_identical_concurrent_requests_reach_the_server_once(fake_openai, path):
    fake_openai.latency = 0.1
    model = CachedModel(backend(fake_openai), path)
    try:
        results = await asyncio.gather(*(model.complete(ask()) for _ in range(5)))
    finally:
        await model.aclose()

    assert len(fake_openai.requests) == 1
    assert len({r.text for r in results}) == 1
    assert sum(not r.cached for r in results) == 1


async def test_many_distinct_concurrent_requests_are_all_stored(fake_openai, path):
    model = CachedModel(backend(fake_openai), path)
    questions = [f"Question {n}?" for n in range(20)]
    try:
        await asyncio.gather(*(model.complete(ask(q)) for q in questions))
    finally:
        await model.aclose()
    fake_openai.requests.clear()

    replay = CachedModel(backend(fake_openai), path)
    try:
        results = await asyncio.gather(*(replay.complete(ask(q)) for q in questions))
    finally:
        await replay.aclose()
    assert fake_openai.requests == [] and all(r.cached for r in results)


async def test_failures_are_not_stored(fake_openai, path):
    fake_openai.fail("server_error")
    model = CachedModel(backend(fake_openai), path)
    try:
        with pytest.raises(ServerError):
            await model.complete(ask())
        result = await model.complete(ask())
    finally:
        await model.aclose()
    assert result.cached is False and len(fake_openai.requests) == 2


async def test_a_failure_reaches_every_concurrent_twin(fake_openai, path):
    fake_openai.latency = 0.05
    fake_openai.fail("server_error")
    model = CachedModel(backend(fake_openai), path)
    try:
        outcomes = await asyncio.gather(*(model.complete(ask()) for _ in range(3)), return_exceptions=True)
    finally:
        await model.aclose()
    assert all(isinstance(o, ServerError) for o in outcomes)
    assert len(fake_openai.requests) == 1


async def test_the_file_uses_write_ahead_logging(fake_openai, path):
    model = CachedModel(backend(fake_openai), path)
    await model.complete(ask())
    await model.aclose()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM llm_responses").fetchone()[0] == 1


async def test_a_twin_still_gets_an_answer_when_the_first_caller_gives_up(fake_openai, path):
    fake_openai.latency = 0.1
    model = CachedModel(backend(fake_openai), path)
    try:
        leader = asyncio.create_task(model.complete(ask()))
        await asyncio.sleep(0.02)
        twin = asyncio.create_task(model.complete(ask()))
        await asyncio.sleep(0.02)
        leader.cancel()
        result = await twin
    finally:
        await model.aclose()
    assert leader.cancelled()
    assert result.text.startswith("Priya here")
