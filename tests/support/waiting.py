"""Waiting in a test for something another task, thread or process does."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

#: How often the condition is read: often enough for timings in tenths of a second, rarely enough
#: that a condition reading a database adds no load worth speaking of.
EVERY_S = 0.05


async def until(condition: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0,
                what: str = "the condition", *, every: float = EVERY_S) -> float:
    """Until ``condition()`` holds (a function, or a coroutine function that reads a database, say);
    how long that took. Fails the test, naming ``what`` it waited for, after ``timeout`` seconds."""
    started = time.monotonic()
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(every)
