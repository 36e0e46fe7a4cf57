"""Garbage collection that does not stall the event loop.

CPython's collections walk every tracked object of the generations they collect. A bot with a
thousand personas in flight keeps ~20,000 young objects alive at any moment (requests, responses,
coroutines); with the default scheme they are promoted and walked again by every middle and full
collection, which then pause the whole process for 60–160 ms (a full one for 150–250 ms), during
which no heartbeat, typing indicator or post goes out. So what survives any collection is frozen
(``gc.freeze``): every collection walks only what was allocated since the last one, and while work
is in flight one runs at least every ``YOUNG_EVERY_S``, so each stays short. Objects freed by their
reference count go as always; only garbage cycles among frozen objects wait, and the bot makes
few: 0.01–0.14 objects a persona turn over 1,000-persona rounds, 0.8 a model call (failed calls'
tracebacks) when a fifth of the calls fail, which left memory where the old scheme did. They are
reclaimed by a complete collection run once the bot has been quiet for a while, when a pause costs
nobody anything, or at the latest every ``max_interval_s`` under unbroken load.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

#: Seconds without work after which the complete collection runs.
QUIET_S = 20.0
#: The longest a complete collection waits for a quiet moment.
MAX_INTERVAL_S = 600.0
#: How often the time since the last complete collection is checked.
POLL_S = 1.0
#: Collection thresholds while installed. A young collection after 20,000 new objects instead of
#: 700: a bot allocates a few hundred objects a persona turn, most of which die young, by their
#: reference count, if a collection does not catch them in flight. A young collection then takes
#: 10–40 ms, well inside a heartbeat (5,000 made each shorter but cost the event loop a quarter more
#: CPU a turn). With every collection's survivors frozen, the middle and full ones find nothing
#: older than the young one they follow.
THRESHOLDS = (20_000, 10, 5)
#: While work is in flight, a young collection at least this often. The count that triggers one is
#: allocations minus deallocations, frozen objects' included: when a round's objects die as the next
#: round's are born, the young generation grows to three times the threshold before the count
#: reaches it, and a collection of it took 40–50 ms. On a timer it walks what 50 ms of work left
#: alive: at most 11–23 ms, for a tenth more collecting in all.
YOUNG_EVERY_S = 0.05

_installed = 0
_saved_thresholds: tuple[int, ...] = gc.get_threshold()


class QuietCollector:
    """Freezes the survivors of every collection; reclaims frozen garbage when the bot is quiet."""

    def __init__(self, *, quiet_s: float = QUIET_S, max_interval_s: float = MAX_INTERVAL_S) -> None:
        self.quiet_s = quiet_s
        self.max_interval_s = max_interval_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poll: asyncio.TimerHandle | None = None
        self._quiet: asyncio.TimerHandle | None = None
        self._young: asyncio.TimerHandle | None = None
        self._last_complete = time.monotonic()
        #: Complete collections run so far (for tests and logs).
        self.complete_collections = 0

    def install(self) -> None:
        """Freeze what start-up built and watch for collections from now on."""
        global _installed, _saved_thresholds
        self._loop = asyncio.get_running_loop()
        _installed += 1
        if _installed == 1:
            _saved_thresholds = gc.get_threshold()
            gc.set_threshold(*THRESHOLDS)
            gc.collect()
            gc.freeze()
        gc.callbacks.append(self._on_collection)
        self._poll = self._loop.call_later(POLL_S, self._check)

    def uninstall(self) -> None:
        global _installed
        if self._loop is None:
            return
        for handle in (self._poll, self._quiet, self._young):
            if handle is not None:
                handle.cancel()
        if self._on_collection in gc.callbacks:
            gc.callbacks.remove(self._on_collection)
        self._loop = None
        _installed -= 1
        if _installed == 0:
            gc.unfreeze()
            gc.set_threshold(*_saved_thresholds)

    def busy(self) -> None:
        """Work arrived: a pending complete collection waits for the next quiet moment, and young
        collections run every ``YOUNG_EVERY_S`` until the bot is quiet again."""
        if self._quiet is not None:
            self._quiet.cancel()
            self._quiet = None
        if self._young is None and self._loop is not None:
            self._young = self._loop.call_later(YOUNG_EVERY_S, self._collect_young)

    def _collect_young(self) -> None:
        assert self._loop is not None
        gc.collect(0)
        self._young = self._loop.call_later(YOUNG_EVERY_S, self._collect_young)

    def quiet(self) -> None:
        """No work is in flight: what lives now is the bots' state, so freeze it (a pointer move, no
        pause), and collect completely if it stays quiet for ``quiet_s``."""
        if self._young is not None:
            self._young.cancel()
            self._young = None
        if self._loop is None or self._quiet is not None:
            return
        gc.freeze()
        self._quiet = self._loop.call_later(self.quiet_s, self._collect_completely)

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        # Runs as a collection ends, in whichever thread triggered it. Every object of the
        # generations it collected is one of its survivors, and the older ones were frozen by the
        # collections before: so every tracked object is, and freezing them leaves the next
        # collection only what is allocated after this one.
        # (A freeze only moves list heads; CPython touches no generation list after this callback.)
        if phase == "stop":
            gc.freeze()

    def _check(self) -> None:
        if self._loop is None:
            return
        if time.monotonic() - self._last_complete > self.max_interval_s:
            self._collect_completely()
        self._poll = self._loop.call_later(POLL_S, self._check)

    def _collect_completely(self) -> None:
        self._quiet = None
        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        self._last_complete = time.monotonic()
        self.complete_collections += 1
        log.debug("complete garbage collection: %d unreachable objects in %.0f ms",
                  found, (time.perf_counter() - started) * 1000)
