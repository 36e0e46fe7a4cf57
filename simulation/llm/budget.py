"""Spending caps per world, so a runaway simulation stops instead of draining an account.

The check happens before each call, against what the ledger has recorded: calls already in
flight when a limit is reached still finish, so spending can pass a cap by at most the
concurrency limit's worth of calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from simulation.llm.base import ChatRequest, ChatResult, LanguageModel, ModelWrapper
from simulation.llm.errors import BudgetExceededError
from simulation.llm.usage import UsageLedger, UsageTotals

if TYPE_CHECKING:
    from config.settings import LLMSettings


@dataclass(frozen=True)
class BudgetLimits:
    """Caps on billed usage; ``None`` means no cap. Cache hits count toward none of them."""

    max_cost_usd: float | None = None
    max_tokens: int | None = None
    max_calls: int | None = None

    @classmethod
    def from_settings(cls, llm: LLMSettings) -> BudgetLimits:
        return cls(max_cost_usd=llm.budget_usd, max_tokens=llm.budget_tokens)

    @property
    def unlimited(self) -> bool:
        return self.max_cost_usd is None and self.max_tokens is None and self.max_calls is None

    def describe(self) -> str:
        parts = []
        if self.max_cost_usd is not None:
            parts.append(_usd(self.max_cost_usd))
        if self.max_tokens is not None:
            parts.append(f"{self.max_tokens:,} tokens")
        if self.max_calls is not None:
            parts.append(f"{self.max_calls:,} calls")
        return " / ".join(parts) if parts else "no limit"

    def exceeded(self, used: UsageTotals) -> str | None:
        """Which limit ``used`` has reached, described for a person; None when within all."""
        spent = f"over {used.billed_calls:,} calls"
        if self.max_cost_usd is not None and used.cost_usd >= self.max_cost_usd:
            return (
                f"its budget of {_usd(self.max_cost_usd)} (spent {_usd(used.cost_usd)} {spent}); "
                "raise it with TROUPE_LLM_BUDGET_USD"
            )
        if self.max_tokens is not None and used.total_tokens >= self.max_tokens:
            return (
                f"its budget of {self.max_tokens:,} tokens (used {used.total_tokens:,} {spent}); "
                "raise it with TROUPE_LLM_BUDGET_TOKENS"
            )
        if self.max_calls is not None and used.billed_calls >= self.max_calls:
            return f"its limit of {self.max_calls:,} model calls; raise the limit"
        return None


class BudgetedModel(ModelWrapper):
    """Refuses calls for a world that has reached its limits, with ``BudgetExceededError``.

    Calls without a world are checked against a global scope with the default limits.
    """

    def __init__(
        self,
        inner: LanguageModel,
        ledger: UsageLedger,
        default_limits: BudgetLimits | None = None,
        per_world: Mapping[str | None, BudgetLimits] | None = None,
    ) -> None:
        super().__init__(inner)
        self.ledger = ledger
        self.default_limits = default_limits or BudgetLimits()
        self._per_world: dict[str | None, BudgetLimits] = dict(per_world or {})

    def set_limits(self, world: str | None, limits: BudgetLimits) -> None:
        """Give one world (or, with ``None``, calls outside any world) its own limits."""
        self._per_world[world] = limits

    def limits_for(self, world: str | None) -> BudgetLimits:
        return self._per_world.get(world, self.default_limits)

    def reached(self, world: str | None) -> str | None:
        """Which of ``world``'s limits its usage has reached (see ``BudgetLimits.exceeded``), if any."""
        limits = self.limits_for(world)
        if limits.unlimited:
            return None
        return limits.exceeded(self.ledger.scope_totals(world))

    def check(self, world: str | None) -> None:
        """Raise ``BudgetExceededError`` if ``world`` may not make another call."""
        reason = self.reached(world)
        if reason is None:
            return
        who = f"world {world!r}" if world is not None else "calls outside any world"
        raise BudgetExceededError(
            f"{who} reached {reason}, or start a new world", scope=world, reason=reason
        )

    async def complete(self, request: ChatRequest) -> ChatResult:
        self.check(request.attribution.world)
        return await self.inner.complete(request)


def _usd(amount: float) -> str:
    """Dollars with cents, or with enough digits to show sub-cent amounts."""
    return f"${amount:,.2f}" if amount == 0 or amount >= 0.01 else f"${amount:.4f}"
