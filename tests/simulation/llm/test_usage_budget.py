"""Usage per world and persona, cost estimates, budgets and token counts."""

from __future__ import annotations

import pytest

from config.settings import LLMSettings
from simulation.llm.base import Attribution, ChatRequest, Message
from simulation.llm.budget import BudgetedModel, BudgetLimits
from simulation.llm.cache import CachedModel
from simulation.llm.errors import BudgetExceededError
from simulation.llm.tokens import count_request_tokens, count_tokens
from simulation.llm.usage import MeteredModel, Price, Pricing, UsageLedger, UsageTotals

GPT_4O_MINI = Price(0.15, 0.60)


def ask(persona: str, world: str | None, text: str = "How was the offsite?") -> ChatRequest:
    return ChatRequest(
        messages=[
            Message(role="system", content=f"You are {persona}, on the platform team."),
            Message(role="user", content=text),
        ],
        attribution=Attribution(world=world, persona=persona),
    )


async def test_usage_and_cost_are_attributed_per_world_and_persona(backend, fake_openai):
    ledger = UsageLedger()
    model = MeteredModel(backend, ledger)

    results = [
        await model.complete(ask("Ana", "office")),
        await model.complete(ask("Ben", "office")),
        await model.complete(ask("Ana", "office", "And the roadmap?")),
        await model.complete(ask("Ana", "lab")),
    ]

    ana = ledger.totals(world="office", persona="Ana")
    assert ana.calls == 2
    assert ana.prompt_tokens == results[0].usage.prompt_tokens + results[2].usage.prompt_tokens
    assert ana.completion_tokens == results[0].usage.completion_tokens + results[2].usage.completion_tokens
    # The server reports a dated snapshot; it is priced as its family.
    assert results[0].model == "gpt-4o-mini-2024-07-18"
    assert ana.cost_usd == pytest.approx(GPT_4O_MINI.cost(ana.prompt_tokens, ana.completion_tokens))
    assert ana.cost_usd > 0

    office = ledger.by_persona("office")
    assert set(office) == {"Ana", "Ben"} and office["Ben"].calls == 1
    assert ledger.totals(world="office").calls == 3
    assert ledger.totals(persona="Ana").calls == 3
    assert ledger.totals().calls == 4
    server_tokens = sum(
        count_request_tokens(r.body["messages"]) for r in fake_openai.requests
    )
    assert ledger.totals().prompt_tokens == server_tokens


async def test_cache_hits_are_counted_but_cost_nothing(backend, tmp_path):
    ledger = UsageLedger()
    model = MeteredModel(CachedModel(backend, tmp_path / "cache.sqlite3"), ledger)
    try:
        await model.complete(ask("Ana", "office"))
        hit = await model.complete(ask("Ana", "office"))
    finally:
        await model.aclose()

    totals = ledger.totals(world="office")
    assert hit.cached
    assert (totals.calls, totals.cached_calls, totals.billed_calls) == (2, 1, 1)
    first_cost = GPT_4O_MINI.cost(totals.prompt_tokens, totals.completion_tokens)
    assert totals.cost_usd == pytest.approx(first_cost)


async def test_the_ledger_survives_saving_with_a_world(backend):
    ledger = UsageLedger()
    model = MeteredModel(backend, ledger)
    await model.complete(ask("Ana", "office"))
    await model.complete(ask("Ben", "lab"))

    saved = ledger.to_dict(world="office")
    restored = UsageLedger.from_dict(saved)

    assert restored.totals(world="office") == ledger.totals(world="office")
    assert restored.totals(world="lab") == UsageTotals()
    assert UsageLedger.from_dict(ledger.to_dict()).totals() == ledger.totals()


def test_pricing_table_snapshots_unknown_models_and_settings():
    pricing = Pricing()
    assert pricing.price_for("gpt-4o") == Price(2.50, 10.00)
    assert pricing.price_for("gpt-4o-2024-08-06") == Price(2.50, 10.00)
    assert pricing.price_for("gpt-4o-mini-2024-07-18") == GPT_4O_MINI
    assert pricing.price_for("gpt-4.1-nano") == Price(0.10, 0.40)
    assert pricing.price_for("gpt-5-mini") == Price(0.25, 2.00)
    assert pricing.cost("gpt-4.1", 1_000_000, 1_000_000) == pytest.approx(10.0)
    assert pricing.cost("llama3.1:8b", 10_000, 10_000) == 0.0 and not pricing.is_known("llama3.1:8b")

    custom = Pricing.from_settings(LLMSettings(model="llama3.1", price_prompt_per_mtok=1, price_completion_per_mtok=2))
    assert custom.cost("llama3.1", 1_000_000, 500_000) == pytest.approx(2.0)
    half = Pricing.from_settings(LLMSettings(model="gpt-4o", price_prompt_per_mtok=1))
    assert half.price_for("gpt-4o") == Price(1, 10.00)


async def test_a_world_over_its_budget_stops_with_a_clear_message(backend, fake_openai):
    ledger = UsageLedger()
    expensive = Pricing(override=Price(10_000, 10_000))  # about $0.1 a call here
    model = BudgetedModel(MeteredModel(backend, ledger, expensive), ledger, BudgetLimits(max_cost_usd=0.5))

    calls = 0
    with pytest.raises(BudgetExceededError) as caught:
        while calls < 50:
            await model.complete(ask("Ana", "office"))
            calls += 1

    spent = ledger.totals(world="office")
    assert spent.cost_usd >= 0.5 and len(fake_openai.requests) == calls == spent.calls
    message = str(caught.value)
    assert message.startswith("world 'office' reached its budget of $0.50 (spent $")
    assert f"over {calls} calls" in message
    assert "TROUPE_LLM_BUDGET_USD" in message and "start a new world" in message
    assert caught.value.scope == "office"

    # Another world still has its own budget.
    await model.complete(ask("Ana", "lab"))
    assert len(fake_openai.requests) == calls + 1


async def test_per_world_limits_tokens_calls_and_the_global_scope(backend, fake_openai):
    ledger = UsageLedger()
    model = BudgetedModel(MeteredModel(backend, ledger), ledger, BudgetLimits(max_calls=2))
    model.set_limits("big", BudgetLimits(max_calls=3))
    model.set_limits("tokens", BudgetLimits(max_tokens=1))

    for _ in range(2):
        await model.complete(ask("Ana", None))
    with pytest.raises(BudgetExceededError, match="calls outside any world reached its limit of 2 model calls"):
        await model.complete(ask("Ana", None))

    for _ in range(3):
        await model.complete(ask("Ana", "big"))
    with pytest.raises(BudgetExceededError, match="world 'big'"):
        await model.complete(ask("Ana", "big"))

    await model.complete(ask("Ana", "tokens"))
    with pytest.raises(BudgetExceededError, match="budget of 1 tokens .*TROUPE_LLM_BUDGET_TOKENS"):
        await model.complete(ask("Ana", "tokens"))

    assert len(fake_openai.requests) == 6, "refused calls never reach the server"
    ledger.forget("big")
    await model.complete(ask("Ana", "big"))


def test_budget_limits_from_settings():
    limits = BudgetLimits.from_settings(LLMSettings(budget_usd=2.5, budget_tokens=100_000))
    assert limits == BudgetLimits(max_cost_usd=2.5, max_tokens=100_000)
    assert limits.describe() == "$2.50 / 100,000 tokens"
    assert BudgetLimits().unlimited


def test_token_counts():
    assert count_tokens("") == 0
    assert count_tokens("Hello world") == 2
    assert count_tokens("a <|endoftext|> marker is plain text") > 5
    sentence = "The quick brown fox jumps over the lazy dog. "
    # Texts past the encoder's single-call limit are counted in pieces, to the same total.
    assert count_tokens(sentence * 10_000) == pytest.approx(count_tokens(sentence * 1_000) * 10, rel=0.001)

    schema = {"type": "object", "properties": {"text": {"type": "string"}}}
    messages = [Message(role="user", content="Hello world"), {"role": "system", "content": "Hello world"}]
    assert count_request_tokens(messages) == 4
    with_schema = count_request_tokens(messages, {"type": "json_schema", "json_schema": {"name": "X", "schema": schema}})
    assert with_schema > 4
    assert count_request_tokens(messages, {"type": "json_object"}) == 4
