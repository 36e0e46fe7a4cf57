"""How long the retry wrapper waits and how often it tries, from its defaults to its limits, and
the clear errors for settings it cannot use."""

from __future__ import annotations

import pytest

from simulation.llm.base import ChatRequest, ChatResult, LanguageModel, Message
from simulation.llm.errors import ServerError
from simulation.llm.retry import RetryingModel

REQUEST = ChatRequest(messages=[Message(role="user", content="Thoughts on the new logo?")])


class Flaky(LanguageModel):
    """Fails with a 5xx ``failures`` times, then answers; counts the calls."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def complete(self, request: ChatRequest) -> ChatResult:
        self.calls += 1
        if self.calls <= self.failures:
            raise ServerError("503 from the model server", status=503)
        return ChatResult(text="Bold.", model="m")


class Waits:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


async def test_by_default_four_retries_wait_one_two_four_and_eight_seconds():
    waits, server = Waits(), Flaky(failures=10)
    model = RetryingModel(server, sleep=waits, random=lambda: 0.0)
    with pytest.raises(ServerError) as caught:
        await model.complete(REQUEST)
    assert waits.seconds == [1.0, 2.0, 4.0, 8.0] and server.calls == 5
    assert "gave up after 5 attempts" in caught.value.__notes__


async def test_by_default_jitter_shortens_a_wait_by_up_to_a_quarter():
    waits = Waits()
    await RetryingModel(Flaky(failures=2), sleep=waits, random=lambda: 1.0).complete(REQUEST)
    assert waits.seconds == [0.75, 1.5]
    waits = Waits()
    await RetryingModel(Flaky(failures=1), sleep=waits, random=lambda: 0.5).complete(REQUEST)
    assert waits.seconds == [0.875]


async def test_by_default_no_wait_is_longer_than_a_minute():
    waits = Waits()
    model = RetryingModel(Flaky(failures=4), sleep=waits, random=lambda: 0.0, base_delay=16)
    await model.complete(REQUEST)
    assert waits.seconds == [16.0, 32.0, 60.0, 60.0]
    assert model.delay(3, retry_after=90) == 60.0


async def test_retries_are_counted_across_requests():
    server = Flaky(failures=1)
    model = RetryingModel(server, sleep=Waits(), random=lambda: 0.0)
    await model.complete(REQUEST)
    server.calls, server.failures = 0, 1
    await model.complete(REQUEST)
    assert model.retries == 2


async def test_no_retries_and_full_jitter_are_allowed():
    server = Flaky(failures=1)
    with pytest.raises(ServerError) as caught:
        await RetryingModel(server, max_retries=0, sleep=Waits()).complete(REQUEST)
    assert server.calls == 1 and not getattr(caught.value, "__notes__", None)
    waits = Waits()
    await RetryingModel(Flaky(failures=1), jitter=1, sleep=waits, random=lambda: 0.5).complete(REQUEST)
    assert waits.seconds == [0.5]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_retries": -1}, "max_retries must be >= 0"),
        ({"jitter": 1.5}, "jitter must be between 0 and 1"),
        ({"jitter": -0.1}, "jitter must be between 0 and 1"),
    ],
)
def test_settings_it_cannot_use_are_refused_with_what_is_allowed(options, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        RetryingModel(Flaky(failures=0), **options)
