"""Fair turns at the CPU for a busy event loop.

asyncio runs every ready callback before it looks at its sockets and timers again. When hundreds
of channels become ready together (a group commit settling 200 writes, 1,000 persona turns
starting at once), one pass of the loop can run for seconds, and platform heartbeats, typing
indicators and a moderator's ``pause`` wait behind it.

Code about to spend a slice of CPU (building a prompt, parsing a reply, verifying a post) awaits
``fair_turn()``. While the loop has been busy for less than ``SLICE_S`` it returns at once, so an
idle bot pays nothing. Past that, the task queues and is let through in a later pass, after the loop
has polled its sockets and run its timers. Queued tasks go through a few a pass: one more each
pass while passes stay under half a slice, half as many after a longer one, never more than
``MOST_A_PASS``. What one task does before its next await can cost anything from 0.1 ms to a few
ms, so the cap bounds a pass after cheap tasks gave way to costly ones (a batch sized on the last
pass's tasks alone once ran 64 costly ones, 180 ms, in one pass); and letting one through a pass
spent a pass (~20 µs, most of it polling the sockets) on every fair turn of a busy bot.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque

__all__ = ["MOST_A_PASS", "SLICE_S", "FairShare", "fair_turn", "fair_yield", "share_of"]

#: How long the loop may run queued work before it polls sockets and timers again.
SLICE_S = 0.01
#: The most queued tasks let through in one pass of the loop.
MOST_A_PASS = 8


class FairShare:
    """The CPU turns of one event loop; see the module docstring."""

    def __init__(self, loop: asyncio.AbstractEventLoop, slice_s: float = SLICE_S) -> None:
        self._loop = loop
        self.slice_s = slice_s
        #: When the current busy stretch began; None while the loop has had a chance to breathe.
        self._busy_since: float | None = None
        self._waiters: deque[asyncio.Future[None]] = deque()
        #: How many queued tasks the next pass lets through, and when the last pass let some through.
        self._batch = 1
        self._let_at: float | None = None
        #: Passes that let queued tasks through (for tests and benchmarks).
        self.passes = 0

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def turn(self) -> None:
        """Return when this task may use the CPU for a while without starving the loop."""
        now = time.perf_counter()
        if self._busy_since is None:
            self._busy_since = now
            self._loop.call_soon(self._next_pass)
            return
        if not self._waiters and now - self._busy_since < self.slice_s:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    async def yield_turn(self) -> None:
        """Let the tasks already ready run first, then wait for a turn as ``turn`` does when busy.

        For a task that just started work another task should do before it goes on (a post it
        spawned): it always yields, yet never lets a crowd of such tasks through in one pass.
        """
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        if self._busy_since is None:  # else a pass that lets the next waiter through is scheduled
            self._busy_since = time.perf_counter()
            self._loop.call_soon(self._next_pass)
        await waiter

    def _next_pass(self) -> None:
        """Runs in the loop's next pass, so its sockets and timers were served since the last one."""
        now = time.perf_counter()
        if self._let_at is not None:  # the tasks let through last time ran in the pass that just ended
            if now - self._let_at > self.slice_s / 2:
                self._batch = max(1, self._batch // 2)
            elif self._batch < MOST_A_PASS:
                self._batch += 1
        let = 0
        while self._waiters and let < self._batch:
            waiter = self._waiters.popleft()
            if not waiter.done():  # a cancelled task gave up its place
                waiter.set_result(None)
                let += 1
        if let:
            self._busy_since = self._let_at = now
            self.passes += 1
            self._loop.call_soon(self._next_pass)
        else:
            self._busy_since = self._let_at = None
            self._batch = 1


_shares: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FairShare] = weakref.WeakKeyDictionary()


def share_of(loop: asyncio.AbstractEventLoop) -> FairShare:
    """The CPU turns of ``loop`` (made on first use, gone with the loop)."""
    share = _shares.get(loop)
    if share is None:
        share = _shares[loop] = FairShare(loop)
    return share


async def fair_turn() -> None:
    """Wait for this task's fair turn at the CPU of the running loop (at once when it is not busy)."""
    await share_of(asyncio.get_running_loop()).turn()


async def fair_yield() -> None:
    """Let the ready tasks of the running loop go first, then take a fair turn (``yield_turn``)."""
    await share_of(asyncio.get_running_loop()).yield_turn()
