"""A busy bot keeps its event loop responsive: fair CPU turns, and garbage collection at quiet times."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import Awaitable, Callable

from bots import collector as collector_module
from bots.collector import QuietCollector
from simulation.fairness import MOST_A_PASS, SLICE_S, fair_turn, fair_yield, share_of


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def _timer_lateness(work: Callable[[], Awaitable[object]]) -> float:
    """While ``work()`` runs, how late does a 2 ms timer fire at worst?"""
    worst = 0.0

    async def ticker() -> None:
        nonlocal worst
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.002)
            worst = max(worst, loop.time() - before - 0.002)

    gc.collect()  # what earlier tests left is collected now, not in a pause measured below
    tick = asyncio.ensure_future(ticker())
    await asyncio.sleep(0.01)
    await work()
    await asyncio.sleep(0.01)  # the ticker wakes from the stall and notes it before it is stopped
    tick.cancel()
    await asyncio.gather(tick, return_exceptions=True)
    return worst


async def _worst_lateness(workers: int, work_s: float, *, fair: bool) -> tuple[float, int]:
    """Start ``workers`` tasks that each burn ``work_s`` of CPU at once; how late does a 2 ms timer fire?"""
    done = 0

    async def worker() -> None:
        nonlocal done
        if fair:
            await fair_turn()
        _spin(work_s)
        done += 1

    worst = await _timer_lateness(lambda: asyncio.gather(*(worker() for _ in range(workers))))
    return worst, done


async def test_fair_turns_keep_timers_running_while_hundreds_of_tasks_want_the_cpu() -> None:
    unfair, done = await _worst_lateness(150, 0.002, fair=False)
    assert done == 150 and unfair > 0.2, unfair  # one pass of the loop ran every task: 300 ms without a timer
    passes = share_of(asyncio.get_running_loop()).passes
    fair, done = await _worst_lateness(150, 0.002, fair=True)
    assert done == 150  # the same work gets done
    assert fair < 0.1, f"a timer waited {fair * 1000:.0f} ms"
    assert share_of(asyncio.get_running_loop()).passes - passes > 5


async def test_costly_turns_after_cheap_ones_do_not_run_together() -> None:
    """A pass that let many cheap tasks through must not let as many costly ones through next."""
    cheap, done = await _worst_lateness(400, 0.0001, fair=True)
    costly, done_costly = await _worst_lateness(60, 0.004, fair=True)
    assert done == 400 and done_costly == 60
    assert cheap < 0.05 and costly < 0.05, f"a timer waited {max(cheap, costly) * 1000:.0f} ms"


async def test_cheap_turns_go_through_several_a_pass_and_costly_ones_one_a_pass() -> None:
    """A pass of the loop costs a poll of every socket: cheap turns share passes, costly ones do not."""
    share = share_of(asyncio.get_running_loop())
    await asyncio.sleep(0.02)  # let any earlier busy stretch end
    passes = share.passes
    cheap, done = await _worst_lateness(400, 0.0001, fair=True)
    assert done == 400 and cheap < 0.05
    assert share.passes - passes < 400 / 4, "cheap turns went through one a pass"
    await asyncio.sleep(0.02)
    passes = share.passes
    costly, done = await _worst_lateness(20, SLICE_S * 0.6, fair=True)
    assert done == 20 and costly < 0.05
    assert share.passes - passes >= 15, "turns longer than half a slice went through together"


async def test_costly_turns_right_after_cheap_ones_go_through_fewer_and_fewer_a_pass() -> None:
    share = share_of(asyncio.get_running_loop())
    await asyncio.sleep(0.02)
    passes_of_costly: list[int] = []

    async def worker(cost: float, costly: bool) -> None:
        await fair_turn()
        if costly:
            passes_of_costly.append(share.passes)
        _spin(cost)

    await asyncio.gather(*(worker(0.00005, False) for _ in range(600)), *(worker(0.004, True) for _ in range(30)))
    together = [passes_of_costly.count(p) for p in sorted(set(passes_of_costly))]
    assert max(together) <= MOST_A_PASS, together
    assert len(together) >= 10, f"30 costly turns went through in {len(together)} passes: {together}"


async def test_a_fair_turn_costs_nothing_on_an_idle_loop_and_cancelled_waiters_lose_their_place() -> None:
    loop = asyncio.get_running_loop()
    share = share_of(loop)
    await asyncio.sleep(0.02)  # let any earlier busy stretch end
    started = time.perf_counter()
    await fair_turn()
    assert time.perf_counter() - started < SLICE_S
    _spin(SLICE_S * 2)  # now the loop has been busy past its slice: the next turns queue
    first = asyncio.ensure_future(share.turn())
    second = asyncio.ensure_future(share.turn())
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.wait_for(second, 1)  # the cancelled one did not block the queue
    assert share.waiting == 0


async def test_a_fair_yield_lets_ready_work_go_first_but_never_a_crowd_at_once() -> None:
    order: list[str] = []

    async def post() -> None:
        order.append("post")

    async def turn_end() -> None:
        asyncio.ensure_future(post())
        await fair_yield()
        order.append("next reply")

    await asyncio.sleep(0.02)  # an idle loop: a fair turn would not yield at all
    await turn_end()
    assert order == ["post", "next reply"]

    async def resumed() -> None:
        await fair_yield()
        _spin(0.001)

    worst = await _timer_lateness(lambda: asyncio.gather(*(resumed() for _ in range(200))))  # one commit woke them
    assert worst < 0.05, f"a timer waited {worst * 1000:.0f} ms"


class _Cycle:
    def __init__(self) -> None:
        self.me = self


async def test_the_collector_freezes_long_lived_objects_and_reclaims_frozen_garbage_when_quiet() -> None:
    collector = QuietCollector(quiet_s=0.05)
    collector.install()
    try:
        assert gc.get_freeze_count() > 0  # start-up state is frozen
        garbage = _Cycle()
        probe = weakref.ref(garbage)
        collector.quiet()  # nothing in flight: freeze what lives now (the cycle too) ...
        del garbage
        gc.collect()
        assert probe() is not None  # ... so an ordinary collection no longer walks it
        collector.busy()  # work arrived: the complete collection waits
        await asyncio.sleep(0.1)
        assert collector.complete_collections == 0 and probe() is not None
        collector.quiet()
        await asyncio.sleep(0.2)
        assert collector.complete_collections == 1
        assert probe() is None  # reclaimed once the bot was quiet
    finally:
        collector.uninstall()
    if collector_module._installed == 0:  # no bot left running in this process
        assert gc.get_freeze_count() == 0


async def test_survivors_of_a_young_collection_are_frozen_so_no_later_collection_walks_them() -> None:
    """What a bot keeps in flight survives young collections; frozen as each ends, it is never
    walked again by the middle and full ones, which used to stall the loop for 60–160 ms."""
    collector = QuietCollector()
    collector.install()
    try:
        in_flight = [_Cycle() for _ in range(1000)]
        frozen = gc.get_freeze_count()
        gc.collect(0)
        assert gc.get_freeze_count() >= frozen + len(in_flight)
        assert not gc.get_objects(generation=1) and not gc.get_objects(generation=2)
        garbage = weakref.ref(in_flight[0])
        del in_flight
        gc.collect(1)
        assert garbage() is not None, "a cycle that died frozen waits for the complete collection"
    finally:
        collector.uninstall()


async def test_survivors_of_a_full_collection_are_frozen_as_it_ends() -> None:
    before = gc.get_threshold()
    collector = QuietCollector()
    collector.install()
    try:
        survivors = [_Cycle() for _ in range(1000)]
        frozen = gc.get_freeze_count()
        gc.collect()  # a full collection: what it leaves alive is frozen by the time it returns
        assert gc.get_freeze_count() >= frozen + len(survivors)
        assert gc.get_count()[0] < 100 and not gc.get_objects(generation=2)
    finally:
        collector.uninstall()
    if collector_module._installed == 0:  # the process's own settings come back with the last bot
        assert gc.get_threshold() == before


async def test_while_work_is_in_flight_young_objects_are_collected_on_a_timer_not_only_by_count() -> None:
    """Deaths of frozen objects count against the young generation's threshold: under load it grew
    to three times its size before a collection came, and that collection stalled the loop. While
    the bot is busy one comes every ``YOUNG_EVERY_S`` however few objects were counted."""
    collections: list[int] = []

    def counted(phase: str, info: dict) -> None:
        if phase == "stop":
            collections.append(info["generation"])

    collector = QuietCollector()
    collector.install()
    gc.callbacks.append(counted)
    try:
        collector.busy()
        in_flight = [_Cycle() for _ in range(1000)]  # far below the count that triggers a collection
        frozen = gc.get_freeze_count()
        await asyncio.sleep(collector_module.YOUNG_EVERY_S * 3)
        assert collections, "young collections ran while busy"
        assert gc.get_freeze_count() >= frozen + len(in_flight), "and froze what they found alive"
        collector.quiet()
        collections.clear()
        await asyncio.sleep(collector_module.YOUNG_EVERY_S * 3)
        assert collections == [], "a quiet bot runs no timed collections"
        del in_flight
    finally:
        gc.callbacks.remove(counted)
        collector.uninstall()
