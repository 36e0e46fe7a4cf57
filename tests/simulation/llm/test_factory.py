"""The model stack built from settings: its layers, its startup line, and that it works end to end."""

from __future__ import annotations

import pytest

from config.settings import Settings
from simulation.llm.base import Attribution, ChatRequest, Message
from simulation.llm.budget import BudgetedModel
from simulation.llm.cache import CachedModel
from simulation.llm.errors import BudgetExceededError
from simulation.llm.factory import build_model
from simulation.llm.limiter import ConcurrencyLimitedModel
from simulation.llm.openai_model import OpenAIModel
from simulation.llm.retry import RetryingModel
from simulation.llm.usage import MeteredModel

REQUEST = ChatRequest(
    messages=[
        Message(role="system", content="You are Kofi, a data scientist."),
        Message(role="user", content="Is the dashboard right?"),
    ],
    attribution=Attribution(world="analytics", persona="Kofi"),
)


def layers(model) -> list[type]:
    out = []
    while model is not None:
        out.append(type(model))
        model = getattr(model, "inner", None)
    return out


def settings(tmp_path, **llm) -> Settings:
    return Settings(data_dir=tmp_path, llm={"api_key": "sk-test", "timeout_s": 2, **llm})


async def test_openai_stack_layers_and_a_call_end_to_end(fake_openai, tmp_path):
    stack = build_model(
        settings(tmp_path, model="gpt-4o-mini", base_url=fake_openai.base_url, concurrency=3, budget_usd=1.5)
    )
    try:
        first = await stack.model.complete(REQUEST)
        again = await stack.model.complete(REQUEST)
    finally:
        await stack.aclose()

    assert layers(stack.model) == [
        BudgetedModel, MeteredModel, CachedModel, RetryingModel, ConcurrencyLimitedModel, OpenAIModel
    ]
    assert stack.model.find(ConcurrencyLimitedModel).limit == 3
    assert stack.budget is stack.model
    assert first.text.startswith("Kofi here") and again.cached
    assert len(fake_openai.requests) == 1
    totals = stack.ledger.totals(world="analytics", persona="Kofi")
    assert (totals.calls, totals.cached_calls) == (2, 1) and totals.cost_usd > 0
    assert (tmp_path / "troupe.db").exists(), "the cache lives in the bot's database by default"
    assert not stack.model.is_demo
    line = stack.description
    assert "gpt-4o-mini" in line and fake_openai.base_url in line
    assert "troupe.db" in line and "3 requests at once" in line and "$1.50" in line


async def test_without_cache_and_with_retries_from_settings(fake_openai, tmp_path):
    stack = build_model(
        settings(tmp_path, model="gpt-4o-mini", base_url=fake_openai.base_url, cache=False,
                 max_retries=2, retry_base_delay_s=0.01)
    )
    fake_openai.fail("server_error", times=2)
    try:
        result = await stack.model.complete(REQUEST)
    finally:
        await stack.aclose()
    assert CachedModel not in layers(stack.model) and "no cache" in stack.description
    assert result.text.startswith("Kofi here") and len(fake_openai.requests) == 3


async def test_the_budget_from_settings_stops_a_world(fake_openai, tmp_path):
    stack = build_model(
        settings(tmp_path, model="gpt-4o-mini", base_url=fake_openai.base_url, cache=False, budget_tokens=10)
    )
    try:
        await stack.model.complete(REQUEST)
        with pytest.raises(BudgetExceededError, match="world 'analytics'"):
            await stack.model.complete(REQUEST)
    finally:
        await stack.aclose()
    assert len(fake_openai.requests) == 1


async def test_azure_settings_reach_the_deployment(fake_openai, tmp_path):
    stack = build_model(
        settings(tmp_path, azure_endpoint=fake_openai.azure_endpoint, azure_deployment="prod-4o", cache=False)
    )
    try:
        result = await stack.model.complete(REQUEST)
    finally:
        await stack.aclose()
    assert result.text.startswith("Kofi here")
    assert fake_openai.requests[0].path == "/openai/deployments/prod-4o/chat/completions"
    assert "Azure OpenAI" in stack.description and "prod-4o" in stack.description


async def test_without_a_model_configured_the_demo_model_answers_offline(tmp_path, monkeypatch):
    for name in ("TROUPE_LLM_MODEL", "TROUPE_LLM_API_KEY", "TROUPE_LLM_BASE_URL", "TROUPE_LLM_AZURE_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    stack = build_model(Settings(data_dir=tmp_path))
    try:
        result = await stack.model.complete(REQUEST)
    finally:
        await stack.aclose()

    assert stack.model.is_demo and result.model == "demo" and result.text
    assert CachedModel not in layers(stack.model) and RetryingModel not in layers(stack.model)
    assert stack.ledger.totals(world="analytics").calls == 1
    line = stack.description
    assert "offline demo model" in line
    assert "TROUPE_LLM_MODEL" in line and "TROUPE_LLM_API_KEY" in line
    assert "TROUPE_LLM_BASE_URL" in line and "Ollama" in line
    assert not (tmp_path / "llm-cache.sqlite3").exists()


async def test_configured_temperature_and_max_tokens_are_sent_and_keyed(fake_openai, tmp_path):
    from config.settings import Settings
    from simulation.llm.base import ChatRequest, Message
    from simulation.llm.factory import build_model

    def settings(temperature: float) -> Settings:
        return Settings(
            data_dir=tmp_path,
            llm={
                "model": "gpt-4o-mini",
                "base_url": fake_openai.base_url,
                "api_key": "sk-test",
                "temperature": temperature,
                "max_tokens": 300,
            },
        )

    request = ChatRequest(messages=[Message(role="user", content="hello")])
    for temperature in (0.2, 0.9, 0.2):
        stack = build_model(settings(temperature))
        await stack.model.complete(request)
        await stack.aclose()
    sent = [(r.body.get("temperature"), r.body.get("max_tokens")) for r in fake_openai.requests]
    assert sent == [(0.2, 300), (0.9, 300)], "a new temperature is a new request; the repeat is a cache hit"
