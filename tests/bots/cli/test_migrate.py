"""``troupe migrate --to URL``: a SQLite database moved into PostgreSQL, whole, and the bot carries on
there; a target that is not empty, a file in use and a bad URL are refused with nothing changed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from adapters.memory import MemoryAdapter
from bots.cli import main
from config.settings import Settings
from simulation.events import EventKind
from tests.support.postgres import PASSWORD
from tests.support.testbot import start_bot


async def a_conversation(here: Path) -> tuple[MemoryAdapter, int]:
    """A bot on the SQLite file that talked and stopped: its platform, and its event count."""
    bot = await start_bot(Settings(data_dir=here / "data", llm={"provider": "demo"}))
    try:
        await bot.command("start Team room")
        await bot.command("persona add Priya Nair")
        await bot.say("Priya, what do you make of the plan?")
        return bot.adapter, len(bot.app.sessions.get("memory:general").world.events)
    finally:
        await bot.app.stop()


async def migrate(url: str) -> int:
    """``troupe migrate --to URL``, as from a shell (its own event loop, in a thread of its own)."""
    return await asyncio.to_thread(main, ["migrate", "--to", url])


async def test_a_moved_database_carries_on_in_postgresql_with_its_numbers(here, postgres_url, capsys):
    adapter, events = await a_conversation(here)
    sqlite_file = here / "data" / "troupe.db"
    before = sqlite_file.read_bytes()
    assert await migrate(postgres_url) == 0
    out = capsys.readouterr().out
    assert "Moved" in out and "worlds 1," in out and "TROUPE_DATABASE_URL" in out and PASSWORD not in out
    assert sqlite_file.read_bytes() == before, "the SQLite file is left as it was"

    db = await asyncpg.connect(postgres_url)
    try:
        posted = await db.fetch("SELECT id, platform_message_id FROM outbox ORDER BY id")
    finally:
        await db.close()
    assert posted and [r["platform_message_id"] for r in posted] == [p.message_id for p in adapter.posts()]

    platform = MemoryAdapter()
    platform.history = list(adapter.history)
    bot = await start_bot(Settings(data_dir=here / "elsewhere", llm={"provider": "demo"}, database_url=postgres_url),
                          platform)
    try:
        world = bot.app.sessions.get("memory:general").world
        assert len(world.events) == events and [a.name for a in world.agents] == ["Priya Nair"]
        await bot.say("Priya, and now?")
        stimuli = [e.content for e in world.events if e.kind is EventKind.STIMULUS]
        assert stimuli == ["Priya, what do you make of the plan?", "Priya, and now?"]
        entries = await bot.app.storage.outbox_entries(world.id)
        assert entries[-1].id > max(r["id"] for r in posted), "new posts are numbered after the moved ones"
        assert platform.posts(), "the persona answers on PostgreSQL"
    finally:
        await bot.app.stop()


async def test_a_target_that_holds_worlds_is_refused_and_left_alone(here, postgres_url, capsys):
    await a_conversation(here)
    assert await migrate(postgres_url) == 0
    capsys.readouterr()
    assert await migrate(postgres_url) == 1
    err = capsys.readouterr().out
    assert "already holds 1 world(s)" in err and "empty database" in err
    db = await asyncpg.connect(postgres_url)
    try:
        assert await db.fetchval("SELECT count(*) FROM worlds") == 1
    finally:
        await db.close()


async def test_a_database_in_use_or_missing_and_a_bad_url_are_refused(here, postgres_url, capsys):
    assert await migrate(postgres_url) == 1
    assert "no database at" in capsys.readouterr().out
    await a_conversation(here)
    running = await start_bot(Settings(data_dir=here / "data", llm={"provider": "demo"}))
    try:
        assert await migrate(postgres_url) == 1
        assert "in use by a running Troupe process: stop it first" in capsys.readouterr().out
    finally:
        await running.app.stop()
    assert await migrate("mysql://somewhere/troupe") == 1
    assert "is not a PostgreSQL URL" in capsys.readouterr().out


async def test_a_moved_database_keeps_its_branches_sharing_their_parents_history(here, postgres_url):
    bot = await start_bot(Settings(data_dir=here / "data", llm={"provider": "demo"}))
    try:
        await bot.command("start Team room")
        await bot.command("persona add Priya Nair")
        await bot.say("Priya, what do you make of the plan?")
        sent = await bot.command("fork cheaper")
        thread = next(s.thread for s in sent if s.thread is not None)
        await bot.say("Priya, and if it cost half?", thread=thread)
        branch = bot.app.branches.named("memory:general", "cheaper")
        events = [e.model_dump() for e in branch.world.events]
        adapter = bot.adapter
    finally:
        await bot.app.stop()
    assert await migrate(postgres_url) == 0

    platform = MemoryAdapter()
    platform.history = list(adapter.history)
    bot = await start_bot(Settings(data_dir=here / "elsewhere", llm={"provider": "demo"}, database_url=postgres_url),
                          platform)
    try:
        moved = bot.app.branches.named("memory:general", "cheaper")
        assert moved is not None and [e.model_dump() for e in moved.world.events] == events
        assert moved.record.fork_event < len(events) and moved.record.thread == thread
    finally:
        await bot.app.stop()
