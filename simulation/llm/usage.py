"""What the model calls cost, per world and per persona.

``MeteredModel`` records every completion in a ``UsageLedger`` under the request's
``Attribution``. Tokens and cost count only what a server billed: cache hits add a call (and a
cached call) but no tokens and no cost.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from simulation.llm.base import Attribution, ChatRequest, ChatResult, LanguageModel, ModelWrapper

if TYPE_CHECKING:
    from config.settings import LLMSettings


@dataclass
class UsageTotals:
    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def billed_calls(self) -> int:
        """Calls that reached a server (not answered from the cache)."""
        return self.calls - self.cached_calls

    def add(self, other: UsageTotals) -> None:
        self.calls += other.calls
        self.cached_calls += other.cached_calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_usd += other.cost_usd

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UsageTotals:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


Key = tuple[str | None, str | None]
_NONE: Mapping[str | None, UsageTotals] = MappingProxyType({})


class UsageLedger:
    """In-memory usage per (world, persona); ``None`` stands for calls made outside any world/persona.

    Kept per world, so what one world's budget check or storage write reads costs the same with one
    world as with hundreds.
    """

    def __init__(self) -> None:
        self._worlds: dict[str | None, dict[str | None, UsageTotals]] = {}

    def _entry(self, world: str | None, persona: str | None) -> UsageTotals:
        return self._worlds.setdefault(world, {}).setdefault(persona, UsageTotals())

    def _items(self) -> Iterator[tuple[Key, UsageTotals]]:
        for world, personas in self._worlds.items():
            for persona, entry in personas.items():
                yield (world, persona), entry

    def record(
        self,
        attribution: Attribution | None,
        *,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cost_usd: float = 0.0,
        cached: bool = False,
    ) -> None:
        attribution = attribution or Attribution()
        self._entry(attribution.world, attribution.persona).add(
            UsageTotals(
                calls=1,
                cached_calls=int(cached),
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cost_usd=cost_usd,
            )
        )

    def totals(self, world: str | None = None, persona: str | None = None) -> UsageTotals:
        """Usage summed over every entry matching the given world and persona (``None`` = any)."""
        out = UsageTotals()
        worlds = [self._worlds.get(world, {})] if world is not None else list(self._worlds.values())
        for personas in worlds:
            for p, entry in personas.items():
                if persona is None or p == persona:
                    out.add(entry)
        return out

    def scope_totals(self, world: str | None) -> UsageTotals:
        """Usage of exactly this world; ``None`` means calls made outside any world."""
        out = UsageTotals()
        for entry in self._worlds.get(world, {}).values():
            out.add(entry)
        return out

    def entries(self, world: str | None) -> Mapping[str | None, UsageTotals]:
        """The live totals of one world per persona, for a caller that reads them at every step (not
        to be changed: ``by_persona`` gives copies)."""
        return self._worlds.get(world, _NONE)

    def by_persona(self, world: str | None) -> dict[str | None, UsageTotals]:
        """Usage of one world, per persona (``None`` for calls not made for a persona)."""
        out: dict[str | None, UsageTotals] = {}
        for persona, entry in self._worlds.get(world, {}).items():
            out.setdefault(persona, UsageTotals()).add(entry)
        return out

    def by_world(self) -> dict[str | None, UsageTotals]:
        out: dict[str | None, UsageTotals] = {}
        for (w, _), entry in self._items():
            out.setdefault(w, UsageTotals()).add(entry)
        return out

    def to_dict(self, world: str | None = None) -> dict[str, Any]:
        """A JSON-ready snapshot, of one world when ``world`` is given, for saving with it."""
        entries = [
            {"world": w, "persona": p, **entry.to_dict()}
            for (w, p), entry in self._items()
            if world is None or w == world
        ]
        return {"entries": entries}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UsageLedger:
        ledger = cls()
        ledger.merge(data)
        return ledger

    def merge(self, data: Mapping[str, Any]) -> None:
        """Add a saved snapshot (``to_dict``) to this ledger, e.g. when a saved world is resumed."""
        for item in data.get("entries", []):
            self._entry(item.get("world"), item.get("persona")).add(UsageTotals.from_dict(item))

    def forget(self, world: str | None) -> None:
        """Drop a world's usage (its budget starts again)."""
        self._worlds.pop(world, None)


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    prompt_per_mtok: float
    completion_per_mtok: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.prompt_per_mtok + completion_tokens * self.completion_per_mtok
        ) / 1_000_000


#: Standard (non-batch, uncached-input) list prices of common OpenAI models, USD per million tokens.
BUILTIN_PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "o3": Price(2.00, 8.00),
    "o3-mini": Price(1.10, 4.40),
    "o4-mini": Price(1.10, 4.40),
    "gpt-5": Price(1.25, 10.00),
    "gpt-5-mini": Price(0.25, 2.00),
    "gpt-5-nano": Price(0.05, 0.40),
}


class Pricing:
    """Prices by model name; dated snapshots (``gpt-4o-2024-08-06``) use their family's price.

    ``override`` (from settings) prices every model; otherwise unknown models cost 0, which
    is right for local servers and keeps estimates honest elsewhere (``is_known`` says which).
    """

    def __init__(
        self, table: Mapping[str, Price] | None = None, *, override: Price | None = None
    ) -> None:
        self.table = dict(BUILTIN_PRICES if table is None else table)
        self.override = override

    @classmethod
    def from_settings(cls, llm: LLMSettings) -> Pricing:
        prompt, completion = llm.price_prompt_per_mtok, llm.price_completion_per_mtok
        if prompt is None and completion is None:
            return cls()
        known = cls().price_for(llm.model or "") or Price(0.0, 0.0)
        return cls(
            override=Price(
                known.prompt_per_mtok if prompt is None else prompt,
                known.completion_per_mtok if completion is None else completion,
            )
        )

    def price_for(self, model: str) -> Price | None:
        if self.override is not None:
            return self.override
        name = model.rsplit("/", 1)[-1].lower()
        if name in self.table:
            return self.table[name]
        family = [k for k in self.table if name.startswith(k + "-")]
        return self.table[max(family, key=len)] if family else None

    def is_known(self, model: str) -> bool:
        return self.price_for(model) is not None

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        price = self.price_for(model)
        return price.cost(prompt_tokens, completion_tokens) if price else 0.0


class MeteredModel(ModelWrapper):
    """Records each completion's tokens and estimated cost under the request's attribution."""

    def __init__(
        self, inner: LanguageModel, ledger: UsageLedger, pricing: Pricing | None = None
    ) -> None:
        super().__init__(inner)
        self.ledger = ledger
        self.pricing = pricing or Pricing()

    async def complete(self, request: ChatRequest) -> ChatResult:
        result = await self.inner.complete(request)
        if result.cached:
            self.ledger.record(request.attribution, cached=True)
        else:
            self.ledger.record(
                request.attribution,
                prompt_tokens=result.usage.prompt_tokens,
                completion_tokens=result.usage.completion_tokens,
                cost_usd=self.pricing.cost(
                    self._priced_model(result),
                    result.usage.prompt_tokens,
                    result.usage.completion_tokens,
                ),
            )
        return result

    def _priced_model(self, result: ChatResult) -> str:
        """The model a server reports (an Azure deployment reports what it runs), else ours."""
        return result.model if self.pricing.is_known(result.model) else self.name
