"""Retries against the fake server: what is retried, how long it waits, and what is never retried."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import BaseModel

from simulation.llm.base import ChatRequest, Message
from simulation.llm.errors import (
    ContentFilteredError,
    ModelRequestError,
    ServerError,
    StructuredOutputError,
)
from simulation.llm.openai_model import OpenAIModel
from simulation.llm.retry import RetryingModel

REQUEST = ChatRequest(
    messages=[
        Message(role="system", content="You are Lena, a designer."),
        Message(role="user", content="Thoughts on the new logo?"),
    ]
)


class Opinion(BaseModel):
    text: str


class SleepLog:
    """Records each wait, then really waits it."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(seconds)


@pytest.fixture
async def backend(fake_openai):
    model = OpenAIModel.openai(
        model="gpt-4o-mini", api_key="sk-test", base_url=fake_openai.base_url, timeout_s=0.3
    )
    yield model
    await model.aclose()


def retrying(backend, sleep=None, **options) -> RetryingModel:
    options = {"max_retries": 3, "base_delay": 0.01, "max_delay": 2.0, "jitter": 0.0, **options}
    return RetryingModel(backend, sleep=sleep or SleepLog(), **options)


async def test_rate_limit_waits_at_least_retry_after_then_succeeds(backend, fake_openai):
    fake_openai.fail("rate_limit", retry_after=0.2)
    sleep = SleepLog()
    model = retrying(backend, sleep)

    started = time.perf_counter()
    result = await model.complete(REQUEST)

    assert result.text.startswith("Lena here")
    assert time.perf_counter() - started >= 0.2
    assert sleep.waits == [pytest.approx(0.2)]
    assert len(fake_openai.requests) == 2 and model.retries == 1


async def test_a_server_error_then_success(backend, fake_openai):
    fake_openai.fail("server_error", status=503)

    result = await retrying(backend).complete(REQUEST)

    assert result.text.startswith("Lena here") and len(fake_openai.requests) == 2


async def test_a_hang_past_the_timeout_then_success(backend, fake_openai):
    fake_openai.fail("hang")

    started = time.perf_counter()
    result = await retrying(backend).complete(REQUEST)

    assert result.text.startswith("Lena here")
    assert len(fake_openai.requests) == 2
    assert 0.3 <= time.perf_counter() - started < 2


async def test_a_connection_reset_then_success(backend, fake_openai):
    fake_openai.fail("reset")

    result = await retrying(backend).complete(REQUEST)

    assert result.text.startswith("Lena here") and len(fake_openai.requests) == 2


async def test_backoff_doubles_and_gives_up_after_max_retries(backend, fake_openai):
    fake_openai.fail("server_error", times=10)
    sleep = SleepLog()

    with pytest.raises(ServerError) as caught:
        await retrying(backend, sleep, max_retries=3).complete(REQUEST)

    assert len(fake_openai.requests) == 4
    assert sleep.waits == pytest.approx([0.01, 0.02, 0.04])
    assert "gave up after 4 attempts" in caught.value.__notes__[0]


@pytest.mark.parametrize(
    ("fault", "options", "error"),
    [
        ("content_filter", {}, ContentFilteredError),
        ("content_filter", {"stage": "completion"}, ContentFilteredError),
        ("error", {"status": 400, "message": "bad request"}, ModelRequestError),
    ],
)
async def test_holds_and_rejections_are_never_retried(backend, fake_openai, fault, options, error):
    fake_openai.fail(fault, times=5, **options)
    sleep = SleepLog()

    with pytest.raises(error):
        await retrying(backend, sleep).complete(REQUEST)

    assert len(fake_openai.requests) == 1 and sleep.waits == []


async def test_invalid_structured_output_is_not_retried_beyond_the_re_ask(backend, fake_openai):
    fake_openai.fail("malformed_json", times=5)
    sleep = SleepLog()

    with pytest.raises(StructuredOutputError):
        await retrying(backend, sleep).structured(REQUEST, Opinion)

    assert len(fake_openai.requests) == 2 and sleep.waits == []


def test_delay_grows_is_capped_jittered_and_floored_by_retry_after(backend):
    plain = RetryingModel(backend, base_delay=1, max_delay=10, jitter=0, random=lambda: 0.5)
    assert [plain.delay(n) for n in range(5)] == [1, 2, 4, 8, 10]

    jittered = RetryingModel(backend, base_delay=1, max_delay=10, jitter=0.5, random=lambda: 1.0)
    assert jittered.delay(2) == 2.0  # 4s shortened by half at most

    assert plain.delay(0, retry_after=3) == 3, "the server's wait is a floor"
    assert plain.delay(0, retry_after=60) == 10, "but never beyond max_delay"
    with pytest.raises(ValueError):
        RetryingModel(backend, jitter=2)
