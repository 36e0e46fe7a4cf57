"""What only the SQLite backend has: its file (WAL, a file that is not a database, the response cache
sharing it), upgrades of files older versions wrote, and crash safety of a killed writer. What every
backend does alike is in test_storage.py."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from bots.storage.base import MemoryWrite, StepWrite, StorageError
from bots.storage.sqlite import MIGRATIONS, SQLiteStorage, schema
from simulation.llm.base import ChatRequest, Message
from simulation.llm.cache import CachedModel
from simulation.llm.openai_model import OpenAIModel
from tests.bots.storage.records import T0, memory, persona, step, world
from tests.support.paths import ROOT

# -- the file ---------------------------------------------------------------------------------


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA user_version").fetchone()[0]


async def test_the_database_is_in_wal_mode(path):
    async with SQLiteStorage(path):
        pass
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_file_that_is_not_a_database_is_refused(tmp_path):
    junk = tmp_path / "notes.sqlite3"
    junk.write_bytes(b"these are my notes, not a database\n" * 200)
    with pytest.raises(StorageError, match="notes.sqlite3"):
        await SQLiteStorage(junk).open()


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


# -- files older versions wrote ----------------------------------------------------------------


async def test_memories_stored_whole_by_an_older_version_are_split_by_the_upgrade(path, monkeypatch):
    before_episodes_table = MIGRATIONS.index(schema.SCHEMA_V5)
    monkeypatch.setattr(schema, "MIGRATIONS", MIGRATIONS[:before_episodes_table])
    async with SQLiteStorage(path) as old:
        with sqlite3.connect(path) as db:  # a world row as that version wrote it (no branch columns yet)
            db.execute("INSERT INTO worlds (id, channel_key, name, status, created_at, updated_at) "
                       "VALUES ('w1', 'console:main', 'World w1', 'active', ?, ?)", (T0.isoformat(), T0.isoformat()))
        for position, name in enumerate(("Oscar", "Lisa")):
            await old.save_persona("w1", persona(name, position))
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


# -- crash safety -----------------------------------------------------------------------------

#: Writes steps for several worlds forever, printing each one as its write_step returns.
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
