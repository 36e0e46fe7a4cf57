"""Builds the model stack the settings describe, in the one order that makes each layer correct.

Outermost first: budget (refuse before spending) -> metering (count what each call cost, cache
hits free) -> configured sampling defaults (so they are part of the cache key) -> cache (replays never reach the network) -> retry (each retry waits for a free
slot) -> concurrency limit -> backend. The offline demo model skips cache and retry: it is
instant and never fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from config.settings import Settings
from simulation.llm.base import LanguageModel
from simulation.llm.budget import BudgetedModel, BudgetLimits
from simulation.llm.cache import CachedModel
from simulation.llm.capabilities import SqliteProfileStore
from simulation.llm.defaults import RequestDefaultsModel
from simulation.llm.limiter import ConcurrencyLimitedModel
from simulation.llm.retry import RetryingModel
from simulation.llm.usage import MeteredModel, Pricing, UsageLedger

if TYPE_CHECKING:
    from simulation.llm.openai_model import OpenAIModel

DEMO_HINT = (
    "set TROUPE_LLM_MODEL and TROUPE_LLM_API_KEY, or TROUPE_LLM_BASE_URL for an "
    "OpenAI-compatible server such as Ollama"
)


@dataclass
class ModelStack:
    """The model every world talks to, the ledger it records usage in, and a line for startup."""

    model: LanguageModel
    ledger: UsageLedger
    description: str
    #: The budget layer, for per-world limits (``set_limits``).
    budget: BudgetedModel | None = None

    async def aclose(self) -> None:
        await self.model.aclose()


def build_model(settings: Settings, *, ledger: UsageLedger | None = None) -> ModelStack:
    """The configured model wrapped in budget, metering, cache, retry and concurrency layers."""
    llm = settings.llm
    ledger = ledger if ledger is not None else UsageLedger()
    limits = BudgetLimits.from_settings(llm)

    if llm.resolved_provider == "demo":
        from simulation.llm.demo import DemoModel

        backend: LanguageModel = ConcurrencyLimitedModel(DemoModel(), llm.concurrency)
        budget = BudgetedModel(MeteredModel(backend, ledger, Pricing()), ledger, limits)
        description = f"offline demo model: replies are composed without a language model; {DEMO_HINT}"
        return ModelStack(budget, ledger, description, budget)

    from simulation.llm.openai_model import OpenAIModel  # the client's import is slow; the demo needs none

    server = OpenAIModel.from_settings(llm)
    capabilities = server.capabilities
    # What discovery learns of this server is kept beside the response cache (the bot's database
    # unless configured elsewhere), so a restart starts from it.
    capabilities.store = SqliteProfileStore(settings.llm_cache_path)
    capabilities.configured_context_tokens = llm.context_tokens
    layer: LanguageModel = ConcurrencyLimitedModel(server, llm.concurrency)
    layer = RetryingModel(
        layer,
        max_retries=llm.max_retries,
        base_delay=llm.retry_base_delay_s,
        max_delay=llm.retry_max_delay_s,
    )
    if llm.cache:
        layer = CachedModel(layer, settings.llm_cache_path)
    if llm.temperature is not None or llm.max_tokens is not None:
        layer = RequestDefaultsModel(layer, temperature=llm.temperature, max_tokens=llm.max_tokens)
    pricing = Pricing.from_settings(llm)
    budget = BudgetedModel(MeteredModel(layer, ledger, pricing), ledger, limits)
    return ModelStack(budget, ledger, _describe(settings, server, pricing, limits), budget)


def _describe(
    settings: Settings, server: OpenAIModel, pricing: Pricing, limits: BudgetLimits
) -> str:
    llm = settings.llm
    where = "Azure OpenAI" if server.azure else (
        "OpenAI" if llm.base_url is None else "OpenAI-compatible server"
    )
    parts = [f"model {server.name} via {where} at {server.endpoint}"]
    parts.append(f"cache {settings.llm_cache_path}" if llm.cache else "no cache")
    parts.append(f"up to {llm.concurrency} requests at once")
    if llm.context_tokens:
        parts.append(f"prompts up to {llm.context_tokens:,} tokens")
    if llm.base_url is None and not server.azure and not pricing.is_known(server.name):
        parts.append("cost unknown (set TROUPE_LLM_PRICE_PROMPT_PER_MTOK to estimate it)")
    if not limits.unlimited:
        parts.append(f"budget {limits.describe()} per world")
    return "; ".join(parts)
