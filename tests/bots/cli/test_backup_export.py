"""``troupe backup`` and ``troupe export``: a consistent copy while the bot writes, and worlds out as files."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bots.backup import BackupError, backup_database
from bots.cli import main
from bots.storage.base import StepWrite, WorldRecord
from bots.storage.sqlite import SQLiteStorage
from simulation.events import Event, EventKind
from tests.support.testbot import demo_settings, start_bot, thread_of

T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


def talk(id: int, text: str, model: str | None = "gpt-4o-mini") -> Event:
    return Event(id=id, kind=EventKind.ACTION, step=id, time=T0, source="Oscar", type="TALK", content=text,
                 model=model)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A clean environment: the data folder in tmp_path, no config file, no other TROUPE_ variables."""
    import os

    for name in list(os.environ):
        if name.startswith(("TROUPE_", "OPENAI_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TROUPE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "data"


def worlds_in(path: Path) -> dict[str, int]:
    """World names and event counts in a database file, read without Troupe."""
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT w.name, (SELECT count(*) FROM events e WHERE e.world_id = w.id) FROM worlds w"
        ).fetchall()
    return dict(rows)


# -- backup -----------------------------------------------------------------------------------


async def test_backup_while_the_bot_writes_contains_every_committed_world(tmp_path):
    live = tmp_path / "troupe.db"
    async with SQLiteStorage(live) as storage:
        await storage.create_world(WorldRecord(id="w1", channel_key="console:a", name="First"))
        await storage.write_step(StepWrite(world_id="w1", events=[talk(1, "one"), talk(2, "two")]))
        await storage.create_world(WorldRecord(id="w2", channel_key="console:b", name="Latest"))
        assert (tmp_path / "troupe.db-wal").stat().st_size > 0, "the latest commits are still in the WAL"

        result = await backup_database(live, tmp_path / "backup.db")

        # The bot keeps writing during and after the backup: nothing waits on it, nothing breaks.
        more = [storage.write_step(StepWrite(world_id="w1", events=[talk(i, f"m{i}")])) for i in range(3, 23)]
        second, *_ = await asyncio.gather(backup_database(live, tmp_path / "during.db"), *more)
        await storage.create_world(WorldRecord(id="w3", channel_key="console:c", name="After"))

    assert result.path == tmp_path / "backup.db" and result.worlds == 2 and result.size_bytes > 0
    assert worlds_in(tmp_path / "backup.db") == {"First": 2, "Latest": 0}
    during = worlds_in(second.path)
    assert set(during) == {"First", "Latest"} and 2 <= during["First"] <= 22, "a consistent snapshot"
    assert not (tmp_path / "backup.db-wal").exists(), "one self-contained file"
    # The copy is a database Troupe opens as it is.
    async with SQLiteStorage(tmp_path / "backup.db") as copy:
        stored = await copy.load_world("w1")
    assert [e.content for e in stored.events] == ["one", "two"]


async def test_backup_refuses_to_overwrite_unless_forced(tmp_path):
    live = tmp_path / "troupe.db"
    async with SQLiteStorage(live) as storage:
        await storage.create_world(WorldRecord(id="w1", channel_key="console:a", name="First"))
    target = tmp_path / "precious.db"
    target.write_text("an earlier backup")
    with pytest.raises(BackupError, match=r"already exists; choose another path, or pass --force"):
        await backup_database(live, target)
    assert target.read_text() == "an earlier backup"
    assert not list(tmp_path.glob(".*partial")), "no temporary file left behind"
    result = await backup_database(live, target, force=True)
    assert result.worlds == 1 and worlds_in(target) == {"First": 0}


async def test_backup_into_a_folder_gets_a_dated_name(tmp_path):
    live = tmp_path / "troupe.db"
    async with SQLiteStorage(live):
        pass
    (tmp_path / "backups").mkdir()
    result = await backup_database(live, tmp_path / "backups")
    assert result.path.parent == tmp_path / "backups" and result.path.name.startswith("troupe-")
    assert result.worlds == 0


def test_backup_command(env, tmp_path, capsys):
    asyncio.run(_store_world(env / "troupe.db"))
    assert main(["backup", str(tmp_path / "b.db")]) == 0
    out = capsys.readouterr().out
    assert f"Backed up {env / 'troupe.db'} to {tmp_path / 'b.db'}:" in out
    assert "1 world, schema version" in out and "integrity ok" in out

    assert main(["backup", str(tmp_path / "b.db")]) == 2
    assert "already exists" in capsys.readouterr().out
    assert main(["backup", str(tmp_path / "b.db"), "--force"]) == 0

    assert main(["backup", str(tmp_path / "nowhere" / "b.db")]) == 2
    assert "does not exist" in capsys.readouterr().out
    # A path ending in / is a folder, made if need be, for a dated file.
    assert main(["backup", f"{tmp_path / 'backups' / 'daily'}/"]) == 0
    (made,) = (tmp_path / "backups" / "daily").glob("troupe-*.db")
    assert f"to {made}:" in capsys.readouterr().out


def test_backup_without_a_database_says_where_it_looked(env, tmp_path, capsys):
    assert main(["backup", str(tmp_path / "b.db")]) == 2
    assert f"no database at {env / 'troupe.db'}: nothing to back up" in capsys.readouterr().out


async def _open_and_close(path: Path) -> None:
    async with SQLiteStorage(path):
        pass


async def _store_world(path: Path) -> None:
    async with SQLiteStorage(path) as storage:
        await storage.create_world(WorldRecord(id="w1", channel_key="console:a", name="First"))


# -- storage: every world ---------------------------------------------------------------------


async def test_all_worlds_lists_stopped_ones_too_with_event_counts(tmp_path):
    async with SQLiteStorage(tmp_path / "troupe.db") as storage:
        await storage.create_world(WorldRecord(id="w1", channel_key="console:a", name="Old", created_at=T0))
        await storage.write_step(StepWrite(world_id="w1", events=[talk(1, "a"), talk(2, "b")]))
        await storage.stop_world("w1")
        await storage.create_world(WorldRecord(id="w2", channel_key="console:a", name="New"))
        worlds = await storage.all_worlds()
        counts = await storage.event_counts()
        active = await storage.active_worlds()
    assert [(w.id, w.status.value) for w in worlds] == [("w1", "stopped"), ("w2", "active")]
    assert [w.id for w in active] == ["w2"]
    assert counts == {"w1": 2}


# -- export -----------------------------------------------------------------------------------


async def _conversation(data_dir: Path) -> None:
    """A world the bot ran on the demo model, then stopped; and a second, running one."""
    bot = await start_bot(demo_settings(data_dir))
    try:
        await bot.command("start Launch review")
        await bot.command("persona add Priya Nair")
        await bot.say("Should we ship on Friday?")
        await bot.command("stop confirm")
        await bot.command("start Standup", channel="random")
    finally:
        await bot.app.stop()


def test_export_lists_every_world_and_exports_a_stopped_one_by_name(env, tmp_path, capsys):
    asyncio.run(_conversation(env))
    assert main(["export"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["ID", "NAME", "CHANNEL", "STATUS", "EVENTS", "CREATED"]
    launch = next(line for line in out if "Launch review" in line)
    assert "memory:general" in launch and " stopped " in launch
    events = int(launch.split("stopped")[1].split()[0])
    assert events >= 2, "the question and at least one answer"
    standup = next(line for line in out if "Standup" in line)
    assert " active " in standup

    target = tmp_path / "launch.md"
    assert main(["export", "launch review", "--format", "md", "--out", str(target)]) == 0
    assert f"Exported “Launch review” ({events} events, md) to {target}" in capsys.readouterr().err
    text = target.read_text()
    assert text.startswith("# Launch review\n")
    assert "Model: offline demo model." in text, "named after the model the stored events name"
    assert "Should we ship on Friday?" in text and "**Priya Nair**" in text
    # A path ending in / is a folder, made if it is not there yet.
    folder = tmp_path / "exports" / "june"
    assert main(["export", "launch review", "--format", "csv", "--out", f"{folder}/"]) == 0
    assert "Should we ship on Friday?" in (folder / "launch-review.csv").read_text()


async def _a_branch(data_dir: Path) -> None:
    """A world, forked into a branch that then heard a message of its own."""
    bot = await start_bot(demo_settings(data_dir))
    try:
        await bot.command("start Launch review")
        await bot.command("persona add Priya Nair")
        await bot.say("Would you pay $300 for the speaker?")
        sent = await bot.command("fork discount")
        await bot.say("It is $199 now.", thread=thread_of(sent))
    finally:
        await bot.app.stop()


def test_export_lists_a_branch_as_one_with_the_events_it_shares(env, tmp_path, capsys):
    asyncio.run(_a_branch(env))
    assert main(["export"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["ID", "NAME", "CHANNEL", "STATUS", "EVENTS", "CREATED", "BRANCH", "OF"]
    parent = next(line for line in out if "Launch review" in line and "at event" not in line)
    branch = next(line for line in out if line.split()[1] == "discount")
    parent_events = int(parent.split(" active ")[1].split()[0])
    branch_events = int(branch.split(" active ")[1].split()[0])
    assert branch.rstrip().endswith(f"Launch review at event {parent_events}")
    assert branch_events > parent_events, "the events it shares, and the message only it heard"

    target = tmp_path / "discount.md"
    assert main(["export", "discount", "--format", "md", "--out", str(target)]) == 0
    assert f"({branch_events} events, md)" in capsys.readouterr().err
    text = target.read_text()
    assert "Would you pay $300 for the speaker?" in text and "It is $199 now." in text


def test_export_never_overwrites_a_file_unasked_nor_ever_the_database(env, tmp_path, capsys):
    asyncio.run(_conversation(env))
    database = env / "troupe.db"
    before = worlds_in(database)
    for path in (database, env / "troupe.db-wal", env / ".." / "data" / "troupe.db"):
        for force in ([], ["--force"]):
            assert main(["export", "launch review", "--out", str(path), *force]) == 2
            assert "is the database itself" in capsys.readouterr().err
    assert worlds_in(database) == before, "the database is untouched"

    notes = tmp_path / "notes.md"
    notes.write_text("my own notes\n")
    assert main(["export", "launch review", "--format", "md", "--out", str(notes)]) == 2
    err = capsys.readouterr().err
    assert "notes.md already exists; choose another path, or pass --force to overwrite it" in err
    assert notes.read_text() == "my own notes\n"
    assert main(["export", "launch review", "--format", "md", "--out", str(notes), "--force"]) == 0
    assert notes.read_text().startswith("# Launch review")

    # Into a folder, a second export keeps the first (edited) one and takes the next free name.
    folder = tmp_path / "exports"
    assert main(["export", "launch review", "--format", "md", "--out", f"{folder}/"]) == 0
    (folder / "launch-review.md").write_text("edited by hand\n")
    capsys.readouterr()
    assert main(["export", "launch review", "--format", "md", "--out", str(folder)]) == 0
    assert f"to {folder / 'launch-review-2.md'}" in capsys.readouterr().err
    assert (folder / "launch-review.md").read_text() == "edited by hand\n"
    assert (folder / "launch-review-2.md").read_text().startswith("# Launch review")


def test_export_to_standard_output_in_every_format(env, capsys):
    asyncio.run(_conversation(env))
    world_id = asyncio.run(_world_id(env / "troupe.db", "Launch review"))
    assert main(["export", world_id]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "Launch review" and data["note"].endswith("Model: offline demo model.")
    assert main(["export", world_id[:8], "--format", "csv"]) == 0
    text = capsys.readouterr().out
    rows = text.splitlines()
    # The header on line 1 (spreadsheets import it as is); the disclaimer is a column of every row.
    assert rows[0] == "id,step,time,kind,type,source,target,content,model,note"
    records = list(csv.DictReader(io.StringIO(text)))
    assert len(records) > 2 and all(r["note"].startswith("Simulated conversation") for r in records)
    assert main(["export", world_id[:8], "--format", "md"]) == 0
    assert capsys.readouterr().out.endswith("\n")


async def _world_id(path: Path, name: str) -> str:
    async with SQLiteStorage(path) as storage:
        return next(w.id for w in await storage.all_worlds() if w.name == name)


def test_export_model_name_falls_back_to_the_configured_model(env, tmp_path, monkeypatch, capsys):
    async def store() -> None:
        async with SQLiteStorage(env / "troupe.db") as storage:
            await storage.create_world(WorldRecord(id="w1", channel_key="console:a", name="Quiet"))

    asyncio.run(store())
    monkeypatch.setenv("TROUPE_LLM_MODEL", "llama3.2")
    monkeypatch.setenv("TROUPE_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    assert main(["export", "Quiet", "--format", "md", "--out", str(tmp_path)]) == 0
    assert "Model: llama3.2." in (tmp_path / "quiet.md").read_text()


def test_unknown_or_ambiguous_world_is_a_clear_error(env, capsys):
    async def store() -> None:
        async with SQLiteStorage(env / "troupe.db") as storage:
            await storage.create_world(WorldRecord(id="aaaa1111", channel_key="console:a", name="Team room"))
            await storage.stop_world("aaaa1111")
            await storage.create_world(WorldRecord(id="bbbb2222", channel_key="console:a", name="Team room"))

    asyncio.run(store())
    assert main(["export", "Nope"]) == 2
    err = capsys.readouterr().err
    assert "no world 'Nope'" in err and "'Team room'" in err and "troupe export" in err
    assert main(["export", "team room"]) == 2
    err = capsys.readouterr().err
    assert "2 worlds match 'team room'" in err and "aaaa1111 (stopped" in err and "give the id" in err
    assert main(["export", "bbbb2222", "--format", "md"]) == 0
    assert capsys.readouterr().out.startswith("# Team room")


def test_export_without_a_database(env, capsys):
    assert main(["export"]) == 0
    assert "No worlds stored yet" in capsys.readouterr().err
    assert main(["export", "Anything"]) == 2
    assert "no world 'Anything'" in capsys.readouterr().err


# -- read-only: an export and a backup never write the database ------------------------------


def test_export_reads_an_older_database_without_upgrading_it(env, capsys, monkeypatch):
    from bots.storage.sqlite import schema

    latest = schema.MIGRATIONS
    older = latest[:-1]
    monkeypatch.setattr(schema, "MIGRATIONS", older)
    asyncio.run(_open_and_close(env / "troupe.db"))
    with sqlite3.connect(env / "troupe.db") as db:  # a world as that version stored it
        db.execute("INSERT INTO worlds (id, channel_key, name, status, created_at, updated_at) "
                   "VALUES ('w1', 'console:a', 'First', 'active', '2025-01-06T09:00:00+00:00', '2025-01-06T09:00:00+00:00')")
    db.close()
    monkeypatch.setattr(schema, "MIGRATIONS", latest)
    assert main(["export"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"has schema version {len(older)} of {len(older) + 1}: start Troupe on it once" in err, err
    with sqlite3.connect(env / "troupe.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(older), "not upgraded by an export"


async def test_a_backup_of_another_programs_database_is_refused(tmp_path):
    foreign = tmp_path / "shop.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE customers (id INTEGER)")
    db.close()
    with pytest.raises(BackupError, match=r"shop.db is not a Troupe database \(it has tables customers\)"):
        await backup_database(foreign, tmp_path / "copy.db")
    assert list(tmp_path.iterdir()) == [foreign]
