"""The concurrency cap, observed from the server side."""

from __future__ import annotations

import asyncio
import time

import pytest

from simulation.llm.base import ChatRequest, Message
from simulation.llm.limiter import ConcurrencyLimitedModel


class CountingResponder:
    """Holds each reply a moment and notes how many requests the server handles at once."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.now = 0
        self.peak = 0

    async def __call__(self, body: dict) -> str:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(self.hold)
        finally:
            self.now -= 1
        return "ok"


def ask(n: int) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=f"request {n}")])


async def test_no_more_than_the_limit_reach_the_server_at_once(backend, fake_openai):
    fake_openai.responder = responder = CountingResponder(0.1)
    model = ConcurrencyLimitedModel(backend, 2)

    started = time.perf_counter()
    results = await asyncio.gather(*(model.complete(ask(n)) for n in range(6)))

    assert [r.text for r in results] == ["ok"] * 6
    assert responder.peak == 2 and model.peak == 2
    assert time.perf_counter() - started >= 0.3, "six calls, two at a time, 0.1s each"
    assert model.in_flight == 0 and model.waiting == 0


async def test_a_failing_call_frees_its_slot(backend, fake_openai):
    fake_openai.fail("server_error", times=3)
    model = ConcurrencyLimitedModel(backend, 1)

    outcomes = await asyncio.gather(*(model.complete(ask(n)) for n in range(4)), return_exceptions=True)

    assert sum(isinstance(o, Exception) for o in outcomes) == 3
    assert model.in_flight == 0 and len(fake_openai.requests) == 4


def test_the_limit_must_be_positive(backend):
    with pytest.raises(ValueError):
        ConcurrencyLimitedModel(backend, 0)


async def test_processes_sharing_a_limit_each_take_their_share(backend, fake_openai):
    """Two processes under one deployment's limit of 4: each runs 2 at once, so the server never
    sees more than 4; when the other leaves, this one takes the whole limit again."""
    fake_openai.responder = responder = CountingResponder(0.1)
    model = ConcurrencyLimitedModel(backend, 4)
    await model.share_among(2)
    await asyncio.gather(*(model.complete(ask(n)) for n in range(6)))
    assert responder.peak == 2 and model.peak == 2

    waiting = [asyncio.ensure_future(model.complete(ask(n))) for n in range(8)]
    await asyncio.sleep(0.05)
    assert model.in_flight == 2 and model.waiting == 6
    await model.share_among(1)  # the other process stopped: waiting calls start at once
    await asyncio.sleep(0.02)
    assert model.in_flight == 4
    await asyncio.gather(*waiting)
    assert responder.peak == 4


async def test_a_share_is_never_less_than_one_call(backend, fake_openai):
    fake_openai.responder = CountingResponder(0.01)
    model = ConcurrencyLimitedModel(backend, 2)
    await model.share_among(5)
    assert (await model.complete(ask(1))).text == "ok"
    assert model.cap == 1


def fold(n: int) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=f"fold {n}")], background=True)


class OrderNoting:
    """Notes the order in which requests reach the server; each is held until released."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.release = asyncio.Event()

    async def __call__(self, body: dict) -> str:
        self.order.append(body["messages"][0]["content"])
        await self.release.wait()
        return "ok"


async def test_turns_go_before_background_work_that_waited_longer(backend, fake_openai):
    """A fold storm queued first: the personas' turns queued after it still reach the server first,
    and the folds never hold more than their share of the limit."""
    fake_openai.responder = server = OrderNoting()
    model = ConcurrencyLimitedModel(backend, 4)
    folds = [asyncio.ensure_future(model.complete(fold(n))) for n in range(6)]
    await asyncio.sleep(0.05)
    assert model.background_in_flight == 1 and model.waiting == 5, "a quarter of 4: one fold at a time"

    turns = [asyncio.ensure_future(model.complete(ask(n))) for n in range(5)]
    await asyncio.sleep(0.05)
    assert model.in_flight == 4 and model.waiting == 7, "three turns start, two wait, ahead of five folds"
    server.release.set()
    await asyncio.gather(*folds, *turns)

    assert server.order[0] == "fold 0"
    assert server.order[1:6] == [f"request {n}" for n in range(5)], server.order
    assert server.order[6:] == [f"fold {n}" for n in range(1, 6)]
    assert model.in_flight == model.background_in_flight == model.waiting == 0


async def test_background_work_uses_idle_slots_up_to_its_share(backend, fake_openai):
    fake_openai.responder = responder = CountingResponder(0.05)
    model = ConcurrencyLimitedModel(backend, 8)
    await asyncio.gather(*(model.complete(fold(n)) for n in range(6)))
    assert responder.peak == 2 and model.peak == 2, "a quarter of 8"

    model = ConcurrencyLimitedModel(backend, 1)
    assert (await model.complete(fold(1))).text == "ok", "a limit of one still lets background work through"


async def test_a_call_cancelled_while_it_waits_gives_up_its_place(backend, fake_openai):
    fake_openai.responder = server = OrderNoting()
    model = ConcurrencyLimitedModel(backend, 1)
    first = asyncio.ensure_future(model.complete(ask(0)))
    await asyncio.sleep(0.02)
    gone = asyncio.ensure_future(model.complete(ask(1)))
    later = asyncio.ensure_future(model.complete(fold(2)))
    await asyncio.sleep(0.02)
    gone.cancel()
    server.release.set()
    await asyncio.gather(first, later)

    assert gone.cancelled()
    assert server.order == ["request 0", "fold 2"]
    assert model.in_flight == model.waiting == 0


async def test_a_call_cancelled_just_as_it_was_given_a_slot_hands_it_on(backend, fake_openai):
    fake_openai.responder = server = OrderNoting()
    server.release.set()
    model = ConcurrencyLimitedModel(backend, 1)
    first = asyncio.ensure_future(model.complete(ask(0)))
    await asyncio.sleep(0)
    given = asyncio.ensure_future(model.complete(ask(1)))
    after = asyncio.ensure_future(model.complete(ask(2)))
    await asyncio.sleep(0)
    assert model.waiting == 2
    await first  # its slot goes to the next call, which is cancelled before it runs
    given.cancel()
    assert (await after).text == "ok"
    assert given.cancelled() and model.in_flight == model.waiting == 0


async def test_background_work_goes_on_under_a_steady_load_of_turns(backend, fake_openai):
    """Turns always waiting: a fold still starts after every few turns instead of waiting for a lull
    that never comes (memories would go unfolded and prompts grow)."""
    order: list[str] = []

    async def responder(body: dict) -> str:
        order.append(body["messages"][0]["content"])
        await asyncio.sleep(0.01)
        return "ok"

    fake_openai.responder = responder
    model = ConcurrencyLimitedModel(backend, 2)
    turns = [asyncio.ensure_future(model.complete(ask(n))) for n in range(30)]
    await asyncio.sleep(0)
    folds = [asyncio.ensure_future(model.complete(fold(n))) for n in range(3)]
    await asyncio.gather(*turns, *folds)

    places = [order.index(f"fold {n}") for n in range(3)]
    assert places == sorted(places) and places[-1] < 20, order
    assert all(later - earlier >= 4 for earlier, later in zip(places, places[1:])), "one fold per three turns"
