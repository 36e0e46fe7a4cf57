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
