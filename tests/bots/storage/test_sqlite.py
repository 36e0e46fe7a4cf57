"""The SQLite storage: channel binding, atomic step writes, the outbox, migrations, crash safety."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bots.storage.base import (
    MemoryWrite,
    OutboxEntry,
    OutboxStatus,
    PersonaRecord,
    StepWrite,
    StorageError,
    UsageRow,
    WorldRecord,
    WorldStatus,
)
from bots.storage.sqlite import MIGRATIONS, SQLiteStorage, schema
from simulation.agent import AgentState
from simulation.events import Event, EventKind
from simulation.llm.base import ChatRequest, Message
from simulation.llm.cache import CachedModel
from simulation.llm.openai_model import OpenAIModel
from simulation.memory import Episode, EpisodicMemory
from tests.support.paths import ROOT

T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


# -- helpers ----------------------------------------------------------------------------------


def world(id: str = "w1", channel: str = "console:main", **fields: object) -> WorldRecord:
    return WorldRecord(id=id, channel_key=channel, name=f"World {id}", **fields)


def persona(name: str, position: int = 0) -> PersonaRecord:
    return PersonaRecord(name=name, spec={"name": name, "age": 30}, identity={"name": name}, position=position)


def event(id: int, source: str = "Oscar", content: str | None = None, **fields: object) -> Event:
    return Event(
        id=id,
        kind=EventKind.ACTION,
        step=id,
        time=T0,
        source=source,
        type="TALK",
        content=content or f"message {id}",
        **fields,
    )


def memory(name: str = "Oscar", episodes: int = 3, unread_from: int = 0) -> AgentState:
    eps = [
        Episode(step=i, time=T0, kind="stimulus", type="CONVERSATION", content=f"heard {i}", source="Lisa", event_id=i)
        for i in range(episodes)
    ]
    # A memory comes back with its persona record's spec: the one ``persona`` stores.
    return AgentState(persona=persona(name).spec, episodic=EpisodicMemory(episodes=eps), unread_from=unread_from)


def entry(world_id: str, event_id: int, channel: str = "console:main", text: str | None = None) -> OutboxEntry:
    return OutboxEntry(
        world_id=world_id,
        channel_key=channel,
        event_id=event_id,
        persona="Oscar",
        identity={"name": "Oscar"},
        text=text or f"message {event_id}",
        verdict={"level": "ok"},
    )


def step(world_id: str, first: int, *, count: int = 1, channel: str = "console:main", **fields: object) -> StepWrite:
    """``count`` events from ``first`` on, the last one carried by an outbox entry."""
    ids = list(range(first, first + count))
    return StepWrite(
        world_id=world_id,
        world={"clock": {"step": ids[-1]}},
        events=[event(i) for i in ids],
        memories={"Oscar": MemoryWrite.since(memory(unread_from=ids[-1]), 0)},
        outbox=[entry(world_id, ids[-1], channel)],
        **fields,
    )


# -- worlds and channels ----------------------------------------------------------------------


async def test_a_channel_holds_one_world_until_it_is_stopped(storage):
    await storage.create_world(world("w1", config={"talk": "room"}, clock={"step": 0}))
    assert (await storage.world_for_channel("console:main")).id == "w1"

    with pytest.raises(StorageError, match="console:main already has a world"):
        await storage.create_world(world("w2"))
    with pytest.raises(StorageError, match="already exists"):
        await storage.create_world(world("w1", channel="console:other"))

    await storage.update_world("w1", status=WorldStatus.PAUSED, name="Renamed", config={"talk": "private"})
    paused = await storage.world_for_channel("console:main")
    assert paused.status is WorldStatus.PAUSED and paused.name == "Renamed"
    assert paused.config == {"talk": "private"} and paused.clock == {"step": 0}
    assert [w.id for w in await storage.active_worlds()] == ["w1"]

    await storage.stop_world("w1")
    assert await storage.world_for_channel("console:main") is None
    assert await storage.active_worlds() == []

    await storage.create_world(world("w2"))
    assert (await storage.world_for_channel("console:main")).id == "w2"
    # The stopped world keeps its history and cannot take the channel back.
    assert (await storage.load_world("w1")).record.status is WorldStatus.STOPPED
    with pytest.raises(StorageError, match="already has another world"):
        await storage.update_world("w1", status="active")


async def test_world_errors_name_what_is_wrong(storage):
    with pytest.raises(StorageError, match="no world with id 'nope'"):
        await storage.load_world("nope")
    with pytest.raises(StorageError, match="no world with id 'nope'"):
        await storage.update_world("nope", name="x")
    with pytest.raises(StorageError, match="no world with id 'nope'"):
        await storage.stop_world("nope")
    with pytest.raises(ValueError, match="id"):
        await storage.update_world("nope", id="other")


async def test_personas_are_saved_replaced_and_removed_with_their_memory(storage):
    await storage.create_world(world(), [persona("Lisa", 1), persona("Oscar", 0)])
    await storage.save_persona("w1", persona("Ana", 2), memory("Ana"))
    await storage.save_persona("w1", PersonaRecord(name="Lisa", spec={"name": "Lisa", "age": 41}, position=1))

    loaded = await storage.load_world("w1")
    assert [p.name for p in loaded.personas] == ["Oscar", "Lisa", "Ana"]
    assert loaded.personas[1].spec["age"] == 41
    assert loaded.memories == {"Ana": memory("Ana")}

    await storage.write_step(StepWrite(world_id="w1", events=[event(1, source="Ana")]))
    await storage.remove_persona("w1", "Ana")
    loaded = await storage.load_world("w1")
    assert [p.name for p in loaded.personas] == ["Oscar", "Lisa"]
    assert loaded.memories == {}
    assert [e.source for e in loaded.events] == ["Ana"]  # its past stays in the log

    with pytest.raises(StorageError):
        await storage.save_persona("ghost", persona("Ana"))


async def test_personas_keep_their_order_across_a_removal_and_a_restart(storage):
    """Priya, Tomasz, Henrik; Tomasz leaves and Amara joins (in the last place, as the running world
    has her): loaded back, the order is the running world's, not Amara before Henrik."""
    await storage.create_world(world(), [persona("Priya", 0), persona("Tomasz", 1), persona("Henrik", 2)])
    await storage.remove_persona("w1", "Tomasz")
    await storage.save_persona("w1", persona("Amara", 2))  # len(agents) - 1 after she is added
    assert [p.name for p in (await storage.load_world("w1")).personas] == ["Priya", "Henrik", "Amara"]
    await storage.remove_persona("w1", "Priya")
    await storage.save_persona("w1", persona("Diego", 2))
    assert [p.name for p in (await storage.load_world("w1")).personas] == ["Henrik", "Amara", "Diego"]


# -- the step ---------------------------------------------------------------------------------


async def test_a_step_round_trips_through_load_world(storage):
    await storage.create_world(world(), [persona("Oscar")])
    write = StepWrite(
        world_id="w1",
        world={"clock": {"step": 3, "now": T0}, "policy": {"kind": "everyone"}, "situation": "Stand-up"},
        events=[
            event(3, target="Lisa", meta={"cached": True}, model="gpt-4o-mini"),
            event(1, recipients=["Oscar", "Lisa"]),
            event(2),
        ],
        memories={"Oscar": MemoryWrite.since(memory(episodes=30, unread_from=30), 0)},
        outbox=[entry("w1", 3)],
        usage=[UsageRow(persona="Oscar", calls=2, prompt_tokens=100, cost_usd=0.01), UsageRow(calls=1)],
    )
    [stored] = await storage.write_step(write)
    assert stored.id is not None and stored.event_id == 3 and stored.status is OutboxStatus.PENDING

    loaded = await storage.load_world("w1")
    assert [e.id for e in loaded.events] == [1, 2, 3]
    assert loaded.events == sorted(write.events, key=lambda e: e.id)
    assert loaded.memories == {"Oscar": memory(episodes=30, unread_from=30)}
    assert loaded.record.clock == {"step": 3, "now": T0.isoformat()}
    assert loaded.record.policy == {"kind": "everyone"} and loaded.record.situation == "Stand-up"
    assert loaded.usage == [UsageRow(persona=None, calls=1), write.usage[0]]
    assert await storage.outbox_entries("w1") == [stored]


async def test_a_step_with_a_bad_part_leaves_nothing_while_the_others_land(storage):
    for i in range(5):
        await storage.create_world(world(f"w{i}", f"console:{i}"))
    bad = step("w2", 1, channel="console:2")
    bad.outbox.append(entry("ghost", 1, "console:2"))  # no such world: the foreign key refuses it
    commits = storage.commits

    results = await asyncio.gather(
        *(storage.write_step(step(f"w{i}", 1, count=2, channel=f"console:{i}")) for i in (0, 1)),
        storage.write_step(bad),
        *(storage.write_step(step(f"w{i}", 1, count=2, channel=f"console:{i}")) for i in (3, 4)),
        return_exceptions=True,
    )

    assert isinstance(results[2], StorageError) and "w2" in str(results[2])
    assert all(isinstance(r, list) and len(r) == 1 for i, r in enumerate(results) if i != 2)
    assert storage.commits == commits + 1  # the bad write was isolated inside the same transaction
    stored_bad = await storage.load_world("w2")
    assert stored_bad.events == [] and stored_bad.memories == {} and stored_bad.record.clock == {}
    assert await storage.outbox_entries("w2") == []
    for i in (0, 1, 3, 4):
        loaded = await storage.load_world(f"w{i}")
        assert [e.id for e in loaded.events] == [1, 2] and loaded.record.clock == {"step": 2}


async def test_a_step_for_an_unknown_world_is_refused(storage):
    with pytest.raises(StorageError, match="ghost"):
        await storage.write_step(StepWrite(world_id="ghost", world={"clock": {"step": 1}}))
    with pytest.raises(StorageError, match="ghost"):
        await storage.write_step(StepWrite(world_id="ghost", events=[event(1)]))
    with pytest.raises(ValueError, match="colour"):
        await storage.write_step(StepWrite(world_id="ghost", world={"colour": "red"}))


async def test_outbox_entries_and_events_are_written_once(storage):
    await storage.create_world(world())
    [first] = await storage.write_step(step("w1", 1))

    # A replay after a crash: same events and entry, even with different text.
    replay = step("w1", 1)
    replay.events[0] = event(1, content="changed")
    replay.outbox[0] = entry("w1", 1, text="changed")
    [again] = await storage.write_step(replay)
    assert again == first

    twins = await asyncio.gather(*(storage.write_step(step("w1", 2)) for _ in range(5)))
    assert len({entries[0].id for entries in twins}) == 1

    assert [(e.event_id, e.text) for e in await storage.outbox_entries("w1")] == [(1, "message 1"), (2, "message 2")]
    assert [e.content for e in (await storage.load_world("w1")).events] == ["message 1", "message 2"]


async def test_a_write_cancelled_while_queued_is_not_applied(storage):
    await storage.create_world(world())
    task = asyncio.create_task(storage.write_step(step("w1", 1)))
    await asyncio.sleep(0)  # it is queued; the writer has not run yet
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await storage.write_step(step("w1", 2))
    assert [e.id for e in (await storage.load_world("w1")).events] == [2]


# -- the outbox -------------------------------------------------------------------------------


async def test_pending_outbox_is_oldest_first_and_filters_by_channel(storage):
    await storage.create_world(world("a", "console:a"))
    await storage.create_world(world("b", "console:b"))
    for n in range(1, 4):
        await storage.write_step(step("a", n, channel="console:a"))
        await storage.write_step(step("b", n, channel="console:b"))

    pending = await storage.pending_outbox()
    assert [(e.channel_key, e.event_id) for e in pending] == [
        ("console:a", 1), ("console:b", 1), ("console:a", 2), ("console:b", 2), ("console:a", 3), ("console:b", 3)
    ]
    assert [e.id for e in pending] == sorted(e.id for e in pending)
    assert [e.event_id for e in await storage.pending_outbox("console:b")] == [1, 2, 3]

    a1, _, a2, _, a3, _ = pending
    await storage.mark_posted(a1.id, "m-1")
    await storage.set_outbox_status(a2.id, OutboxStatus.HELD)
    assert [e.event_id for e in await storage.pending_outbox("console:a")] == [3]
    await storage.set_outbox_status(a2.id, OutboxStatus.PENDING)
    assert [e.event_id for e in await storage.pending_outbox("console:a")] == [2, 3]
    await storage.set_outbox_status(a3.id, OutboxStatus.BLOCKED, "unsafe")
    assert [e.event_id for e in await storage.pending_outbox("console:a")] == [2]
    assert await storage.pending_outbox("console:none") == []


async def test_attempts_failures_and_posting_are_recorded(storage):
    await storage.create_world(world())
    [queued] = await storage.write_step(step("w1", 1))

    await storage.mark_attempt(queued.id, "rate limited")
    await storage.mark_attempt(queued.id)
    [tried] = await storage.pending_outbox()
    assert tried.attempts == 2 and tried.error == "rate limited" and tried.posted_at is None

    await storage.mark_posted(queued.id, "1234")
    [posted] = await storage.outbox_entries("w1")
    assert posted.status is OutboxStatus.POSTED and posted.platform_message_id == "1234"
    assert posted.error is None and posted.posted_at is not None and posted.attempts == 2

    await storage.set_outbox_status(queued.id, OutboxStatus.FAILED, "channel deleted")
    [failed] = await storage.outbox_entries("w1")
    assert failed.status is OutboxStatus.FAILED and failed.error == "channel deleted"

    for call in (
        storage.mark_posted(999, "x"),
        storage.mark_attempt(999),
        storage.set_outbox_status(999, OutboxStatus.POSTED),
    ):
        with pytest.raises(StorageError, match="no outbox entry with id 999"):
            await call


# -- reset and usage --------------------------------------------------------------------------


async def test_reset_forgets_events_and_memories_but_keeps_personas_and_what_is_owed(storage):
    await storage.create_world(world(clock={"step": 5}, policy={"kind": "old"}), [persona("Oscar")])
    [posted] = await storage.write_step(step("w1", 1))
    [owed] = await storage.write_step(step("w1", 2))
    await storage.mark_posted(posted.id, "m-1")

    await storage.reset_world("w1", clock={"step": 0}, policy={"kind": "everyone"})
    loaded = await storage.load_world("w1")
    assert loaded.events == [] and loaded.memories == {}
    assert [p.name for p in loaded.personas] == ["Oscar"]
    assert loaded.record.clock == {"step": 0} and loaded.record.policy == {"kind": "everyone"}
    [still_owed] = await storage.pending_outbox()
    assert still_owed.id == owed.id and still_owed.text == owed.text

    # Event ids start again at 1: a new message for event 1 is a new entry, not the old one.
    [fresh] = await storage.write_step(step("w1", 1))
    assert fresh.id not in (posted.id, owed.id) and fresh.status is OutboxStatus.PENDING
    assert [e.id for e in await storage.pending_outbox()] == [owed.id, fresh.id]

    with pytest.raises(StorageError, match="no world"):
        await storage.reset_world("ghost", clock={}, policy={})


async def test_usage_rows_are_replaced_whole(storage):
    await storage.create_world(world())
    await storage.write_step(StepWrite(world_id="w1", usage=[UsageRow(persona="Oscar", calls=1), UsageRow(calls=1)]))
    latest = UsageRow(persona="Oscar", calls=3, cached_calls=1, completion_tokens=7, cost_usd=0.5)
    await storage.write_step(StepWrite(world_id="w1", usage=[latest]))
    assert await storage.usage("w1") == [UsageRow(persona=None, calls=1), latest]
    assert await storage.usage("ghost") == []


# -- opening, migrations, restarts ------------------------------------------------------------


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA user_version").fetchone()[0]


async def test_the_schema_is_created_once_in_wal_mode(path):
    store = SQLiteStorage(path)
    await store.open()
    await store.open()  # a second call does nothing
    await store.create_world(world())
    await store.close()
    assert user_version(path) == len(MIGRATIONS)

    async with SQLiteStorage(path) as again:
        assert (await again.world_for_channel("console:main")).id == "w1"
    assert user_version(path) == len(MIGRATIONS)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_newer_database_is_refused(path):
    async with SQLiteStorage(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StorageError, match="upgrade Troupe"):
        await SQLiteStorage(path).open()


async def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    junk = tmp_path / "notes.sqlite3"
    junk.write_bytes(b"these are my notes, not a database\n" * 200)
    with pytest.raises(StorageError, match="notes.sqlite3"):
        await SQLiteStorage(junk).open()


async def test_a_failing_migration_changes_nothing(path, monkeypatch):
    async with SQLiteStorage(path):
        pass
    broken = "CREATE TABLE extra (x INTEGER);\nINSERT INTO nowhere VALUES (1);\n"
    monkeypatch.setattr(schema, "MIGRATIONS", (*MIGRATIONS, broken))
    with pytest.raises(StorageError, match=f"schema version {len(MIGRATIONS) + 1}"):
        await SQLiteStorage(path).open()
    assert user_version(path) == len(MIGRATIONS)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'extra'").fetchone()[0] == 0


async def test_a_restart_gives_back_the_same_state(path):
    store = SQLiteStorage(path)
    await store.open()
    await store.create_world(world(config={"observers": ["u1"]}), [persona("Oscar"), persona("Lisa", 1)])
    for n in range(1, 10, 3):
        await store.write_step(step("w1", n, count=3, usage=[UsageRow(persona="Oscar", calls=n)]))
    before = await store.load_world("w1")
    outbox = await store.outbox_entries("w1")
    await store.close()

    async with SQLiteStorage(path) as again:
        assert await again.load_world("w1") == before
        assert await again.outbox_entries("w1") == outbox
        assert len(before.events) == 9


async def test_close_applies_queued_writes_and_then_refuses_use(path):
    store = SQLiteStorage(path)
    with pytest.raises(StorageError, match="not open"):
        await store.pending_outbox()
    await store.open()
    await store.create_world(world())
    tasks = [asyncio.create_task(store.write_step(step("w1", n))) for n in range(1, 21)]
    await asyncio.sleep(0)
    await store.close()
    assert all(task.done() and not task.exception() for task in tasks)

    with pytest.raises(StorageError, match="closed"):
        await store.write_step(step("w1", 99))
    with pytest.raises(StorageError, match="closed"):
        await store.load_world("w1")
    with pytest.raises(StorageError, match="closed"):
        await store.open()
    async with SQLiteStorage(path) as again:
        assert len((await again.load_world("w1")).events) == 20


# -- throughput -------------------------------------------------------------------------------


async def test_concurrent_steps_all_land_in_few_commits(storage):
    channels = 200
    for i in range(channels):
        await storage.create_world(world(f"w{i}", f"console:{i}"))
    commits = storage.commits

    results = await asyncio.gather(
        *(storage.write_step(step(f"w{i}", 1, count=3, channel=f"console:{i}")) for i in range(channels))
    )

    assert storage.commits - commits <= 3  # grouped, not one commit per write
    assert len({r[0].id for r in results}) == channels
    assert len(await storage.pending_outbox()) == channels
    for i in (0, 99, 199):
        assert len((await storage.load_world(f"w{i}")).events) == 3


async def test_the_llm_cache_can_share_the_file(fake_openai, path):
    async with SQLiteStorage(path) as store:
        await store.create_world(world())
        model = CachedModel(
            OpenAIModel.openai(model="gpt-4o-mini", api_key="sk-test", base_url=fake_openai.base_url, timeout_s=2),
            path,
        )
        try:
            request = ChatRequest(messages=[Message(role="user", content="Ship on Friday?")])
            await asyncio.gather(model.complete(request), *(store.write_step(step("w1", n)) for n in range(1, 6)))
            assert (await model.complete(request)).cached
        finally:
            await model.aclose()
        assert len((await store.load_world("w1")).events) == 5
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"llm_responses", "worlds", "events", "outbox"} <= tables


# -- crash safety -----------------------------------------------------------------------------

#: Writes steps for several worlds forever, printing each one as its write_step returns.
async def test_a_memory_write_appends_its_new_episodes_and_leaves_the_stored_ones_alone(storage, path):
    await storage.create_world(world(), [persona("Oscar")])
    await storage.save_persona("w1", persona("Oscar"), memory(episodes=3))
    rows = []
    for stored, total in ((3, 10), (10, 40), (25, 40)):  # the last repeats episodes already stored
        state = memory(episodes=total, unread_from=total)
        await storage.write_step(StepWrite(world_id="w1", memories={"Oscar": MemoryWrite.since(state, stored)}))
        with sqlite3.connect(path) as db:
            rows.append(db.execute("SELECT length(state) FROM memories").fetchone()[0])
            episodes = db.execute("SELECT count(*) FROM episodes WHERE persona = 'Oscar'").fetchone()[0]
        assert episodes == total

    assert (await storage.load_world("w1")).memories == {"Oscar": memory(episodes=40, unread_from=40)}
    # The memory row stays the same size however long the persona's past grows.
    assert len(set(rows)) == 1 and rows[0] < 300


async def test_a_long_past_comes_back_from_its_unfolded_or_recent_part_only(storage, path):
    """Episodes folded into the summary long ago stay on disk: a restored persona holds what its
    prompts and recent-past readers need, so restarts and memory do not grow with a channel's age."""
    await storage.create_world(world(), [persona("Oscar"), persona("Lisa", 1)])
    oscar = memory(episodes=600, unread_from=600)
    oscar.episodic.consolidated_until = 560
    lisa = memory("Lisa", episodes=600, unread_from=100)  # listened for long; most of it is folded
    lisa.episodic.consolidated_until = 560
    await storage.save_persona("w1", persona("Oscar"), oscar)
    await storage.save_persona("w1", persona("Lisa", 1), lisa)

    loaded = (await storage.load_world("w1")).memories
    held = loaded["Oscar"].episodic
    assert (held.first, held.count, len(held.episodes)) == (400, 600, 200)
    assert held.episodes == oscar.episodic.episodes[400:] and held.unconsolidated() == oscar.episodic.episodes[560:]
    assert loaded["Lisa"].episodic.first == 400, "what she heard and folded is her summary now"
    assert loaded["Lisa"].unread_from == 100

    # Life goes on from the held part: the next episode is stored after the 600th, nothing is lost.
    state = loaded["Oscar"]
    state.episodic.add(oscar.episodic.episodes[0].model_copy(update={"content": "new", "step": 600}))
    await storage.write_step(StepWrite(world_id="w1", memories={"Oscar": MemoryWrite.since(state, 600)}))
    await storage.save_persona("w1", persona("Oscar"), state)  # a whole save keeps the episodes not held
    again = (await storage.load_world("w1")).memories["Oscar"].episodic
    assert (again.first, again.count, again.episodes[-1].content) == (401, 601, "new")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM episodes WHERE persona = 'Oscar'").fetchone()[0] == 601
    with pytest.raises(ValueError, match="not held"):
        MemoryWrite.since(state, 10)


async def test_a_missing_episode_is_reported_when_the_world_loads(storage, path):
    await storage.create_world(world(), [persona("Oscar")])
    await storage.save_persona("w1", persona("Oscar"), memory(episodes=5))
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM episodes WHERE seq = 2")
    with pytest.raises(StorageError, match="episode 2 of 'Oscar' is missing"):
        await storage.load_world("w1")


async def test_memories_stored_whole_by_an_older_version_are_split_by_the_upgrade(path, monkeypatch):
    before_episodes_table = MIGRATIONS.index(schema.SCHEMA_V5)
    monkeypatch.setattr(schema, "MIGRATIONS", MIGRATIONS[:before_episodes_table])
    async with SQLiteStorage(path) as old:
        await old.create_world(world(), [persona("Oscar"), persona("Lisa", 1)])
    with sqlite3.connect(path) as db:  # the older version kept the whole state in one row
        db.execute(
            "INSERT INTO memories VALUES ('w1', 'Oscar', ?), ('w1', 'Lisa', ?)",
            (memory(episodes=20, unread_from=12).model_dump_json(), memory("Lisa", episodes=0).model_dump_json()),
        )
    monkeypatch.setattr(schema, "MIGRATIONS", MIGRATIONS)

    async with SQLiteStorage(path) as upgraded:
        loaded = await upgraded.load_world("w1")
        assert loaded.memories == {"Oscar": memory(episodes=20, unread_from=12), "Lisa": memory("Lisa", episodes=0)}
        state = memory(episodes=22, unread_from=22)
        await upgraded.write_step(StepWrite(world_id="w1", memories={"Oscar": MemoryWrite.since(state, 20)}))
        assert (await upgraded.load_world("w1")).memories["Oscar"] == state
    assert user_version(path) == len(MIGRATIONS)
    with sqlite3.connect(path) as db:
        assert "heard" not in db.execute("SELECT state FROM memories WHERE persona = 'Oscar'").fetchone()[0]


WRITER = """
import asyncio, sys
from datetime import datetime, timezone
from bots.storage.base import MemoryWrite, OutboxEntry, StepWrite, WorldRecord
from bots.storage.sqlite import SQLiteStorage
from simulation.agent import AgentState
from simulation.events import Event
from simulation.memory import Episode

T0 = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)

async def main(path, worlds):
    store = SQLiteStorage(path)
    await store.open()
    for w in range(worlds):
        await store.create_world(WorldRecord(id=f"w{w}", channel_key=f"console:{w}", name=f"w{w}"))

    async def run(w):
        n = 0
        while True:
            n += 1
            await store.write_step(StepWrite(
                world_id=f"w{w}",
                world={"clock": {"step": n}},
                events=[Event(id=n, kind="action", step=n, time=T0, source="A", type="TALK", content="x" * 500)],
                memories={"A": MemoryWrite(state=AgentState(persona={"name": "A"}, unread_from=n), first=n - 1,
                                           episodes=[Episode(step=n, time=T0, kind="action", type="TALK", content="y" * 4000)])},
                outbox=[OutboxEntry(
                    world_id=f"w{w}", channel_key=f"console:{w}", event_id=n, persona="A", text=f"m{n}"
                )],
            ))
            print(w, n, flush=True)

    await asyncio.gather(*(run(w) for w in range(worlds)))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def test_a_killed_writer_leaves_a_consistent_database_with_every_acknowledged_write(path):
    worlds = 8
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, str(path), str(worlds),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    acknowledged: dict[int, int] = {}
    try:
        while sum(acknowledged.values()) < 400:
            line = await asyncio.wait_for(child.stdout.readline(), 30)
            if not line:
                raise AssertionError((await child.stderr.read()).decode())
            w, n = map(int, line.split())
            acknowledged[w] = n
    finally:
        child.send_signal(signal.SIGKILL)
    # Lines printed before the kill are acknowledged writes too.
    for line in (await child.stdout.read()).decode().splitlines():
        w, n = map(int, line.split())
        acknowledged[w] = max(acknowledged.get(w, 0), n)
    assert await child.wait() == -signal.SIGKILL

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        orphans = db.execute(
            "SELECT count(*) FROM outbox o LEFT JOIN events e ON e.world_id = o.world_id AND e.id = o.event_id "
            "WHERE e.id IS NULL"
        ).fetchone()[0]
        assert orphans == 0

    async with SQLiteStorage(path) as store:
        for w in range(worlds):
            loaded = await store.load_world(f"w{w}")
            last = len(loaded.events)
            assert last >= acknowledged.get(w, 0)
            assert [e.id for e in loaded.events] == list(range(1, last + 1))
            # Every table moved together: the clock and memory belong to the last stored event.
            assert loaded.record.clock == ({"step": last} if last else {})
            assert (loaded.memories["A"].unread_from if last else 0) == last
            assert (len(loaded.memories["A"].episodic.episodes) if last else 0) == last
            assert [e.event_id for e in await store.outbox_entries(f"w{w}")] == list(range(1, last + 1))
