"""Several Troupe workers on one PostgreSQL database: each channel is run by one of them, whichever
worker the platform hands an event to; a stopped worker's channels go on at once elsewhere, and a
worker that lost its channel cannot write over the one that took it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adapters.memory import MemoryAdapter
from bots.doctor import run_checks
from bots.storage import StaleOwnerError
from config.settings import Settings
from simulation.events import EventKind
from tests.support.postgres import PASSWORD, create_database
from tests.support.testbot import TestBot, start_bot
from tests.support.waiting import until

CHANNEL = "memory:general"


def settings(tmp_path: Path, url: str, name: str, lease_s: float = 30) -> Settings:
    return Settings(data_dir=tmp_path / name, llm={"provider": "demo"}, database_url=url, lease_s=lease_s)



def heard(bot: TestBot) -> list[str]:
    session = bot.app.sessions.get(CHANNEL)
    return [e.content for e in session.world.events if e.kind is EventKind.STIMULUS] if session else []


def persona_posts(adapter: MemoryAdapter) -> list[str]:
    return [p.identity for p in adapter.posts()]


@pytest.fixture
async def two_workers(tmp_path, postgres_url):
    first = await start_bot(settings(tmp_path, postgres_url, "first"))
    await first.command("start Team room")
    await first.command("persona add Priya Nair")
    second = await start_bot(settings(tmp_path, postgres_url, "second"))
    try:
        yield first, second
    finally:
        for bot in (second, first):
            await bot.app.stop()


async def test_an_event_that_reaches_the_other_worker_is_answered_by_the_channels_owner(two_workers):
    first, second = two_workers
    assert first.app.ownership.holds(CHANNEL) and not second.app.ownership.holds(CHANNEL)
    before = len(first.adapter.posts())
    second.adapter.push_message("Priya, what do you think of the plan?")
    await until(lambda: len(first.adapter.posts()) > before)
    assert heard(first) == ["Priya, what do you think of the plan?"]
    assert second.adapter.posts() == [] and second.app.sessions.get(CHANNEL) is None
    await first.app.wait_idle()
    assert await first.app.storage.inbox_pending() == [], "settled by the owner"
    # A command reaching the other worker runs there too, on the owner's world.
    second.adapter.push_command("pause")
    await until(lambda: first.app.sessions.get(CHANNEL).paused)


async def test_a_stopped_worker_hands_its_channel_over_at_once(two_workers):
    first, second = two_workers
    await first.app.stop()
    waited = await until(lambda: second.app.ownership.holds(CHANNEL))
    assert waited < 5, "handed over, not left until the 30-second lease expires"
    await second.say("Priya, are you still there?")
    await until(lambda: persona_posts(second.adapter) == ["Priya Nair"])
    assert heard(second) == ["Priya, are you still there?"]


async def test_the_platforms_pace_holds_across_a_handover(tmp_path, postgres_url):
    """The worker that takes a channel over waits the platform's interval after the other's last
    post, as one process would, rather than posting the instant it holds the channel."""
    interval = 1.5
    first = await start_bot(settings(tmp_path, postgres_url, "first"))
    second = await start_bot(settings(tmp_path, postgres_url, "second"))
    for bot in (first, second):
        bot.adapter.post_interval_s = interval
    try:
        await first.command("start Team room")
        await first.command("persona add Priya Nair")
        await first.say("Priya, one word on the plan?")
        await until(lambda: persona_posts(first.adapter) == ["Priya Nair"])
        await first.app.stop()
        await until(lambda: second.app.ownership.holds(CHANNEL))
        second.adapter.push_message("Priya, and now?")
        await until(lambda: persona_posts(second.adapter) == ["Priya Nair"])
        gap = (second.adapter.posts()[0].at - first.adapter.posts()[-1].at).total_seconds()
        assert gap >= interval * 0.95, f"posted {gap:.2f} s after the other worker's post"
    finally:
        for bot in (second, first):
            await bot.app.stop()


async def test_a_worker_that_stalls_past_its_lease_loses_the_channel_and_cannot_write_to_it(tmp_path, postgres_url):
    first = await start_bot(settings(tmp_path, postgres_url, "first", lease_s=1))
    second = await start_bot(settings(tmp_path, postgres_url, "second", lease_s=1))
    try:
        await first.command("start Team room")
        await first.command("persona add Priya Nair")
        stalled = first.app.sessions.get(CHANNEL)
        first.app.ownership._loop_task.cancel()  # it stops renewing, as a process paused for long would
        await until(lambda: second.app.ownership.holds(CHANNEL), timeout=10)
        await second.say("Priya, who runs this channel now?")
        await until(lambda: persona_posts(second.adapter) == ["Priya Nair"])
        assert not first.app.ownership.holds(CHANNEL)
        # The stalled worker wakes and writes what it still holds: refused, nothing of it stored.
        with pytest.raises(StaleOwnerError):
            await stalled.hear(first.adapter.user("ana"), "a late message", "late-1")
        stored = await second.app.storage.read_events(stalled.record.id)
        assert "a late message" not in [e.content for e in stored]
    finally:
        for bot in (second, first):
            await bot.app.stop()


async def test_a_message_sent_while_the_database_restarts_is_answered_once_it_is_back(tmp_path, stoppable_postgres_server):
    """The database is down for longer than the worker's lease: the worker waits for it instead of
    stopping, posts nothing meanwhile, then keeps its channel and answers what it heard."""
    server = stoppable_postgres_server
    bot = await start_bot(settings(tmp_path, await create_database(server), "only", lease_s=1))
    try:
        await bot.command("start Team room")
        await bot.command("persona add Priya Nair")
        await asyncio.to_thread(server.stop)
        bot.adapter.push_message("Priya, are you still there?")
        await until(lambda: not bot.app.ownership.holds(CHANNEL), timeout=5)  # its lease ran out meanwhile
        assert persona_posts(bot.adapter) == []
        await asyncio.to_thread(server.start)
        await until(lambda: persona_posts(bot.adapter) == ["Priya Nair"], timeout=15)
        assert heard(bot) == ["Priya, are you still there?"]
        assert bot.app.failure is None and bot.app.ownership.holds(CHANNEL)
    finally:
        await bot.app.stop()


async def test_doctor_lists_the_workers_and_the_channels_each_runs(two_workers, postgres_url, tmp_path):
    first, second = two_workers
    checks = {c.name: c for c in await run_checks(settings(tmp_path, postgres_url, "doctor"), timeout_s=2)}
    assert checks["database"].ok and "1 channel(s) with a world" in checks["database"].detail
    workers = checks["workers"]
    assert workers.ok and workers.detail.startswith("2 running: "), workers.detail
    assert f"{first.app.ownership.id} on " in workers.detail and f"): {CHANNEL}" in workers.detail
    assert f"{second.app.ownership.id} on " in workers.detail and "no channels" in workers.detail
    assert PASSWORD not in workers.detail + checks["database"].detail


async def test_doctor_says_when_a_channel_is_run_by_nobody(tmp_path, postgres_url):
    bot = await start_bot(settings(tmp_path, postgres_url, "only"))
    await bot.command("start Team room")
    bot.app.ownership._loop_task.cancel()
    await bot.app.storage.release_leases(bot.app.ownership.id)  # as if its lease had run out
    try:
        checks = {c.name: c for c in await run_checks(settings(tmp_path, postgres_url, "doctor"), timeout_s=2)}
        assert checks["workers"].ok is False and f"nobody runs {CHANNEL}" in checks["workers"].detail
    finally:
        await bot.app.stop()
    checks = {c.name: c for c in await run_checks(settings(tmp_path, postgres_url, "doctor"), timeout_s=2)}
    assert checks["workers"].ok is None and "no Troupe worker runs" in checks["workers"].detail


async def test_a_worlds_budget_holds_whichever_worker_runs_it(tmp_path, postgres_url):
    """What a world spent on the first worker counts on the second: the world stops at its budget
    there, not after spending a whole budget again."""
    budget = 12_000

    def budgeted(name: str) -> Settings:
        return Settings(data_dir=tmp_path / name, llm={"provider": "demo", "budget_tokens": budget},
                        database_url=postgres_url)

    def spent(bot: TestBot, world_id: str) -> int:
        return sum(t.prompt_tokens + t.completion_tokens for t in bot.app.stack.ledger.by_persona(world_id).values())

    first = await start_bot(budgeted("first"))
    await first.command("start Team room")
    await first.command("persona add Priya Nair")
    await first.command("persona add Henrik Lindqvist")
    world_id = first.app.sessions.get(CHANNEL).record.id
    for n in range(40):
        await first.say(f"Question {n}: is the budget realistic?")
        if spent(first, world_id) > budget * 2 // 3:
            break
    on_first = spent(first, world_id)
    assert budget // 2 < on_first < budget, on_first
    second = await start_bot(budgeted("second"))
    try:
        await first.app.stop()  # hands the channel over
        await until(lambda: second.app.sessions.get(CHANNEL) is not None)
        paused: list[str] = []
        for n in range(40):
            sent = await second.say(f"Still there, question {n}?")
            paused += [s.text for s in sent if "is paused" in s.text]
            if paused:
                break
        assert paused and f"reached its budget of {budget:,} tokens" in paused[0], paused
        on_second = spent(second, world_id) - on_first
        assert on_second < budget - on_first + budget // 4, (on_first, on_second)
    finally:
        await second.app.stop()
