"""A cap on requests in flight, shared by every world that uses the same model stack.

Many personas speak at once; without a cap a busy world opens dozens of connections and turns
a provider's rate limit into a storm of 429s.
"""

from __future__ import annotations

import asyncio

from simulation.llm.base import ChatRequest, ChatResult, LanguageModel, ModelWrapper


class ConcurrencyLimitedModel(ModelWrapper):
    """At most ``limit`` calls to ``inner`` at a time; the rest wait their turn in order."""

    def __init__(self, inner: LanguageModel, limit: int) -> None:
        super().__init__(inner)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._semaphore = asyncio.Semaphore(limit)
        #: Calls running now, calls waiting for a slot, and the most that ever ran at once.
        self.in_flight = 0
        self.waiting = 0
        self.peak = 0

    async def complete(self, request: ChatRequest) -> ChatResult:
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await self.inner.complete(request)
        finally:
            self.in_flight -= 1
            self._semaphore.release()
