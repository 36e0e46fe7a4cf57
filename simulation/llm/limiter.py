"""A cap on requests in flight, shared by every world that uses the same model stack.

Many personas speak at once; without a cap a busy world opens dozens of connections and turns
a provider's rate limit into a storm of 429s. Within the cap, calls someone waits on (a persona's
turn, a summary) go before background work (memory folds): when many personas fold their memories
at once, their replies are not held up behind the folds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from simulation.llm.base import ChatRequest, ChatResult, LanguageModel, ModelWrapper

#: The share of the cap that background calls may hold at once (at least one call).
BACKGROUND_SHARE = 0.25
#: While both kinds wait, a background call (within its share) starts after this many calls someone
#: waits on: under a steady load, background work goes slower but never stops.
FOREGROUND_RUN = 3


class ConcurrencyLimitedModel(ModelWrapper):
    """At most ``limit`` calls to ``inner`` at a time; the rest wait their turn in order.

    Background calls (``ChatRequest.background``) hold at most ``background_share`` of the cap, and
    while other calls wait only one of them starts for every ``FOREGROUND_RUN`` of those: a storm of
    them is spread out instead of crowding the calls someone waits on, and a steady load of those
    slows background work without stopping it. When several processes share one deployment's limit,
    each takes its share of it (``share_among``): the calls in flight across the deployment stay
    within ``limit``.
    """

    def __init__(self, inner: LanguageModel, limit: int, *, background_share: float = BACKGROUND_SHARE) -> None:
        super().__init__(inner)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if not 0 < background_share <= 1:
            raise ValueError("background_share must be more than 0 and at most 1")
        self.limit = limit
        #: Calls this process may have in flight: ``limit``, or its share of it.
        self.cap = limit
        self.background_share = background_share
        #: Calls waiting for a slot, in order: those someone waits on, and background ones.
        self._queues: dict[bool, deque[asyncio.Future[None]]] = {False: deque(), True: deque()}
        #: Calls running now (of which background ones), and the most that ever ran at once.
        self.in_flight = 0
        self.background_in_flight = 0
        self.peak = 0
        #: Calls someone waits on started since a background call last did, while one could have.
        self._passed_over = 0

    @property
    def waiting(self) -> int:
        """Calls waiting for a slot."""
        return len(self._queues[False]) + len(self._queues[True])

    @property
    def background_cap(self) -> int:
        """The most background calls in flight at once."""
        return max(1, int(self.cap * self.background_share))

    async def share_among(self, processes: int) -> None:
        """Take this process's share of the limit, ``processes`` sharing it (at least one call)."""
        self.cap = max(1, self.limit // max(1, processes))
        self._start_waiting()

    async def complete(self, request: ChatRequest) -> ChatResult:
        background = request.background
        queue = self._queues[background]
        slot = asyncio.get_running_loop().create_future()
        queue.append(slot)
        self._start_waiting()  # (a free slot starts it at once: awaiting a done future does not yield)
        try:
            await slot
        except asyncio.CancelledError:
            if slot.done() and not slot.cancelled():
                self._release(background)  # given a slot as it was cancelled: hand it on
            else:
                with contextlib.suppress(ValueError):  # (unless a release already dropped it)
                    queue.remove(slot)
            raise
        try:
            return await self.inner.complete(request)
        finally:
            self._release(background)

    def _take(self, background: bool) -> None:
        self.in_flight += 1
        self.background_in_flight += background
        self.peak = max(self.peak, self.in_flight)

    def _release(self, background: bool) -> None:
        self.in_flight -= 1
        self.background_in_flight -= background
        self._start_waiting()

    def _start_waiting(self) -> None:
        """Give free slots to waiting calls, each kind in order: those someone waits on first, but a
        background call within its share after every ``FOREGROUND_RUN`` of them, so it never starves."""
        foreground, background = self._queues[False], self._queues[True]
        while self.in_flight < self.cap:
            background_may = bool(background) and self.background_in_flight < self.background_cap
            if background_may and (not foreground or self._passed_over >= FOREGROUND_RUN):
                slot, kind = background.popleft(), True
            elif foreground:
                slot, kind = foreground.popleft(), False
            else:
                return
            if slot.done():
                continue  # cancelled while it waited
            self._passed_over = 0 if kind else self._passed_over + background_may
            self._take(kind)
            slot.set_result(None)
