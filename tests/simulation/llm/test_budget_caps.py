"""Each spending cap stops a world exactly when it is reached: below it a call goes out, at it or
above it none does, and a cap of zero allows no paid call at all."""

from __future__ import annotations

import pytest

from simulation.llm.base import Attribution, ChatRequest, ChatResult, LanguageModel, Message, Usage
from simulation.llm.budget import BudgetedModel, BudgetLimits
from simulation.llm.errors import BudgetExceededError
from simulation.llm.usage import MeteredModel, Price, Pricing, UsageLedger


class Server(LanguageModel):
    """A model server that bills 1,000 prompt and 250 completion tokens a call, and counts calls."""

    name = "priced-model"

    def __init__(self) -> None:
        self.calls = 0

    async def complete(self, request: ChatRequest) -> ChatResult:
        self.calls += 1
        return ChatResult(text="Fine, thanks.", model=self.name, usage=Usage(prompt_tokens=1000, completion_tokens=250))


def ask(world: str | None = "office") -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content="How was the offsite?")],
                       attribution=Attribution(world=world, persona="Ana"))


def spent(ledger: UsageLedger, *, calls: int = 1, cost: float = 0.0, tokens: int = 0, cached: int = 0,
          world: str | None = "office") -> None:
    """Record earlier usage of ``world``: ``calls`` billed calls sharing ``cost`` and ``tokens``."""
    for i in range(calls):
        ledger.record(Attribution(world=world, persona="Ana"), prompt_tokens=tokens if i == 0 else 0,
                      cost_usd=cost if i == 0 else 0.0)
    for _ in range(cached):
        ledger.record(Attribution(world=world, persona="Ana"), cached=True)


#: (limits, earlier usage below the cap, at the cap, above the cap, what the refusal says)
CAPS = {
    "cost": (BudgetLimits(max_cost_usd=0.5), {"cost": 0.25}, {"cost": 0.5}, {"cost": 0.75},
             "its budget of $0.50 (spent $0.50 over 1 calls); raise it with TROUPE_LLM_BUDGET_USD"),
    "tokens": (BudgetLimits(max_tokens=5000), {"tokens": 4999}, {"tokens": 5000}, {"tokens": 5001},
               "its budget of 5,000 tokens (used 5,000 over 1 calls); raise it with TROUPE_LLM_BUDGET_TOKENS"),
    "calls": (BudgetLimits(max_calls=3), {"calls": 2}, {"calls": 3}, {"calls": 4},
              "its limit of 3 model calls; raise the limit"),
}


@pytest.mark.parametrize("cap", sorted(CAPS))
async def test_below_the_cap_a_call_goes_out(cap):
    limits, below, _, _, _ = CAPS[cap]
    ledger, server = UsageLedger(), Server()
    spent(ledger, **below)
    model = BudgetedModel(server, ledger, limits)
    assert model.reached("office") is None
    await model.complete(ask())
    assert server.calls == 1


@pytest.mark.parametrize("cap", sorted(CAPS))
async def test_at_the_cap_no_call_goes_out_and_the_refusal_says_which_cap(cap):
    limits, _, at, _, reason = CAPS[cap]
    ledger, server = UsageLedger(), Server()
    spent(ledger, **at)
    model = BudgetedModel(server, ledger, limits)
    with pytest.raises(BudgetExceededError) as caught:
        await model.complete(ask())
    assert server.calls == 0
    assert caught.value.reason == reason and caught.value.scope == "office"
    assert str(caught.value) == f"world 'office' reached {reason}, or start a new world"


@pytest.mark.parametrize("cap", sorted(CAPS))
async def test_above_the_cap_no_call_goes_out(cap):
    limits, _, _, above, _ = CAPS[cap]
    ledger, server = UsageLedger(), Server()
    spent(ledger, **above)
    with pytest.raises(BudgetExceededError):
        await BudgetedModel(server, ledger, limits).complete(ask())
    assert server.calls == 0


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        (BudgetLimits(max_cost_usd=0), "its budget of $0.00 (spent $0.00 over 0 calls)"),
        (BudgetLimits(max_tokens=0), "its budget of 0 tokens (used 0 over 0 calls)"),
        (BudgetLimits(max_calls=0), "its limit of 0 model calls"),
    ],
)
async def test_a_zero_cap_allows_no_paid_call_at_all(limits, reason):
    server = Server()
    with pytest.raises(BudgetExceededError) as caught:
        await BudgetedModel(server, UsageLedger(), limits).complete(ask())
    assert server.calls == 0 and caught.value.reason.startswith(reason)


@pytest.mark.parametrize(
    ("limits", "calls_made"),
    [
        (BudgetLimits(max_cost_usd=0.5), 2),  # $0.25 a call
        (BudgetLimits(max_cost_usd=0.6), 3),
        (BudgetLimits(max_tokens=2500), 2),  # 1,250 tokens a call
        (BudgetLimits(max_tokens=2501), 3),
        (BudgetLimits(max_calls=2), 2),
        (BudgetLimits(max_cost_usd=10, max_tokens=3750, max_calls=100), 3),  # the first cap reached stops it
        (BudgetLimits(max_cost_usd=0.75, max_tokens=10**6, max_calls=100), 3),
        (BudgetLimits(max_cost_usd=10, max_tokens=10**6, max_calls=1), 1),
    ],
)
async def test_a_world_makes_exactly_the_calls_its_caps_allow(limits, calls_made):
    ledger, server = UsageLedger(), Server()
    priced = Pricing(override=Price(200, 200))  # 1,250 tokens at $200 a million: $0.25 a call
    model = BudgetedModel(MeteredModel(server, ledger, priced), ledger, limits)
    with pytest.raises(BudgetExceededError):
        for _ in range(10):
            await model.complete(ask())
    assert server.calls == calls_made == ledger.totals(world="office").calls


async def test_answers_from_the_cache_count_toward_no_cap():
    ledger, server = UsageLedger(), Server()
    spent(ledger, calls=2, cached=5)
    await BudgetedModel(server, ledger, BudgetLimits(max_calls=3)).complete(ask())
    assert server.calls == 1


async def test_each_world_and_calls_outside_any_world_have_their_own_caps():
    ledger, server = UsageLedger(), Server()
    model = BudgetedModel(server, ledger, BudgetLimits(max_calls=1), per_world={"lab": BudgetLimits(max_calls=2)})
    spent(ledger, calls=1, world="office")
    spent(ledger, calls=1, world="lab")
    with pytest.raises(BudgetExceededError, match="^world 'office' reached its limit of 1 model calls"):
        await model.complete(ask("office"))
    await model.complete(ask("lab"))
    await model.complete(ask(None))
    spent(ledger, calls=1, world=None)
    with pytest.raises(BudgetExceededError, match="^calls outside any world reached its limit of 1 model calls") as caught:
        await model.complete(ask(None))
    assert caught.value.scope is None
    model.set_limits(None, BudgetLimits())
    await model.complete(ask(None))
    assert server.calls == 3
    assert model.limits_for("lab") == BudgetLimits(max_calls=2) and model.limits_for("park") == BudgetLimits(max_calls=1)


async def test_without_caps_nothing_is_refused():
    ledger, server = UsageLedger(), Server()
    spent(ledger, calls=1000, cost=1e6, tokens=10**9)
    model = BudgetedModel(server, ledger)
    assert model.reached("office") is None and model.limits_for("office").unlimited
    await model.complete(ask())
    assert server.calls == 1


@pytest.mark.parametrize(
    ("limits", "unlimited", "described"),
    [
        (BudgetLimits(), True, "no limit"),
        (BudgetLimits(max_cost_usd=0), False, "$0.00"),
        (BudgetLimits(max_cost_usd=0.005), False, "$0.0050"),
        (BudgetLimits(max_cost_usd=0.01), False, "$0.01"),
        (BudgetLimits(max_cost_usd=1234.5), False, "$1,234.50"),
        (BudgetLimits(max_tokens=0), False, "0 tokens"),
        (BudgetLimits(max_calls=0), False, "0 calls"),
        (BudgetLimits(max_cost_usd=2.5, max_tokens=100_000, max_calls=1500), False, "$2.50 / 100,000 tokens / 1,500 calls"),
    ],
)
def test_caps_are_described_as_a_person_reads_them(limits, unlimited, described):
    assert limits.unlimited is unlimited
    assert limits.describe() == described


def test_a_cap_below_a_cent_is_shown_in_fractions_of_a_cent():
    ledger = UsageLedger()
    spent(ledger, cost=0.0125)
    reason = BudgetedModel(Server(), ledger, BudgetLimits(max_cost_usd=0.005)).reached("office")
    assert reason is not None and reason.startswith("its budget of $0.0050 (spent $0.01 over 1 calls)")
