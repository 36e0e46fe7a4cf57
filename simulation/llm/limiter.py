"""A cap on requests in flight, shared by every world that uses the same model stack.

Many personas speak at once; without a cap a busy world opens dozens of connections and turns
a provider's rate limit into a storm of 429s.
"""

from __future__ import annotations

import asyncio

from simulation.llm.base import ChatRequest, ChatResult, LanguageModel, ModelWrapper


class ConcurrencyLimitedModel(ModelWrapper):
    """At most ``limit`` calls to ``inner`` at a time; the rest wait their turn in order.

    When several processes share one deployment's limit, each takes its share of it
    (``share_among``): the calls in flight across the deployment stay within ``limit``.
    """

    def __init__(self, inner: LanguageModel, limit: int) -> None:
        super().__init__(inner)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        #: Calls this process may have in flight: ``limit``, or its share of it.
        self.cap = limit
        self._turns = asyncio.Condition()
        #: Calls running now, calls waiting for a slot, and the most that ever ran at once.
        self.in_flight = 0
        self.waiting = 0
        self.peak = 0

    async def share_among(self, processes: int) -> None:
        """Take this process's share of the limit, ``processes`` sharing it (at least one call)."""
        async with self._turns:
            self.cap = max(1, self.limit // max(1, processes))
            self._turns.notify_all()

    async def complete(self, request: ChatRequest) -> ChatResult:
        async with self._turns:
            self.waiting += 1
            try:
                await self._turns.wait_for(lambda: self.in_flight < self.cap)
            finally:
                self.waiting -= 1
            self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await self.inner.complete(request)
        finally:
            async with self._turns:
                self.in_flight -= 1
                self._turns.notify(1)
