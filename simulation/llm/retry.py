"""Retries with exponential backoff for failures that may pass: rate limits, 5xx, timeouts, resets.

Only ``TransientLLMError`` is retried. Rejected requests, content-filter holds and invalid
structured output fail at once: repeating them costs money and gives the same answer.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
from collections.abc import Awaitable, Callable

from simulation.llm.base import ChatRequest, ChatResult, LanguageModel, ModelWrapper
from simulation.llm.errors import TransientLLMError

log = logging.getLogger(__name__)


class RetryingModel(ModelWrapper):
    """Retry transient failures up to ``max_retries`` times after the first attempt.

    The n-th wait is ``base_delay * 2**n``, capped at ``max_delay``, shortened by up to ``jitter``
    (a fraction) at random so that many callers do not retry in lockstep. A server's
    ``Retry-After`` is a floor for the wait, still capped at ``max_delay``.
    """

    def __init__(
        self,
        inner: LanguageModel,
        *,
        max_retries: int = 4,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        jitter: float = 0.25,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        super().__init__(inner)
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if not 0 <= jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")
        self.max_retries = max_retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.jitter = jitter
        self._sleep = sleep
        self._random = random
        #: Retries made so far, across all requests.
        self.retries = 0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        backoff = min(self.max_delay, self.base_delay * (2**attempt))
        wait = backoff * (1 - self.jitter * self._random())
        if retry_after is not None:
            wait = max(wait, retry_after)
        return min(wait, self.max_delay)

    async def complete(self, request: ChatRequest) -> ChatResult:
        attempt = 0
        while True:
            try:
                return await self.inner.complete(request)
            except TransientLLMError as error:
                if attempt >= self.max_retries:
                    if attempt:
                        error.add_note(f"gave up after {attempt + 1} attempts")
                    raise
                wait = self.delay(attempt, error.retry_after)
                log.warning(
                    "%s (retry %d of %d in %.2fs)", error, attempt + 1, self.max_retries, wait
                )
                await self._sleep(wait)
                attempt += 1
                self.retries += 1
