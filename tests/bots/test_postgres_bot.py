"""The bot with its state in PostgreSQL (``TROUPE_DATABASE_URL``): a conversation carries on across a
restart, ``troupe`` commands read the same database, and a server that cannot be used stops the start
with one line saying why and what to check."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
from pathlib import Path

import asyncpg
import pytest

from adapters.memory import MemoryAdapter
from bots.cli import main
from bots.storage.open import storage_for
from bots.storage.postgres import PostgresStorage
from bots.storage.sqlite import SQLiteStorage
from config.settings import Settings
from tests.support.postgres import PASSWORD, create_database
from tests.support.testbot import start_bot


def test_the_url_picks_postgresql_and_no_url_the_sqlite_file(tmp_path):
    sqlite = storage_for(Settings(data_dir=tmp_path))
    assert isinstance(sqlite, SQLiteStorage) and sqlite.path == tmp_path / "troupe.db"
    url = "postgresql://troupe:s3cret@db.example.org:5432/troupe"
    postgres = storage_for(Settings(data_dir=tmp_path, database_url=url), read_only=True)
    assert isinstance(postgres, PostgresStorage) and postgres.read_only
    assert repr(postgres) == "PostgresStorage('postgresql://troupe@db.example.org:5432/troupe')"


async def test_a_conversation_on_postgresql_carries_on_after_a_restart(tmp_path, postgres_url):
    settings = Settings(data_dir=tmp_path, llm={"provider": "demo"}, database_url=postgres_url)
    first = await start_bot(settings)
    try:
        await first.command("start Team room")
        await first.command("persona add Priya Nair")
        answered = await first.say("Priya, first question: how are you?")
        assert any(sent.identity == "Priya Nair" for sent in answered)
    finally:
        await first.app.stop()

    platform = MemoryAdapter()
    platform.history = list(first.adapter.history)
    platform.write_while_away("Priya, are you back?")
    second = await start_bot(settings, platform)
    try:
        await second.app.wait_idle()
        world = second.app.sessions.get("memory:general").world
        heard = [e.content for e in world.events if e.kind.value == "stimulus"]
        assert heard == ["Priya, first question: how are you?", "Priya, are you back?"]
        assert [p.identity for p in platform.posts()] == ["Priya Nair"], "she answers what she missed, once"
        events = len(world.events)
    finally:
        await second.app.stop()

    connection = await asyncpg.connect(postgres_url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM worlds") == 1
        assert await connection.fetchval("SELECT count(*) FROM events") == events
    finally:
        await connection.close()
    cache = tmp_path / "troupe.db"  # the response cache's file, if any: no world is kept there
    if cache.exists():
        with sqlite3.connect(cache) as db:
            assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'worlds'").fetchone()[0] == 0


def test_troupe_commands_use_the_database_the_url_names(here, capsys, monkeypatch, postgres_server):
    monkeypatch.setenv("TROUPE_DATABASE_URL", asyncio.run(create_database(postgres_server)))
    (here / "script.txt").write_text("Hello everyone, shall we plan the launch?\n")
    assert main(["console", "--script", "script.txt"]) == 0
    capsys.readouterr()

    assert main(["export"]) == 0
    [header, sample] = capsys.readouterr().out.splitlines()
    assert header.split()[:3] == ["ID", "NAME", "CHANNEL"] and "Team room" in sample and "console:" in sample

    # Backed up with pg_dump, restored with pg_restore into an empty database: the world is there.
    monkeypatch.setenv("PATH", os.pathsep.join((str(postgres_server.bin), os.environ["PATH"])))
    assert main(["backup", "backups/"]) == 0
    said = capsys.readouterr().out
    assert "(pg_dump custom format)" in said and "1 world." in said and PASSWORD not in said
    [dump] = (here / "backups").iterdir()
    assert main(["backup", str(dump)]) == 2
    assert "already exists" in capsys.readouterr().out
    restored = asyncio.run(create_database(postgres_server))
    subprocess.run([postgres_server.bin / "pg_restore", "--no-owner", f"--dbname={restored}", dump], check=True,
                   capture_output=True)
    monkeypatch.setenv("TROUPE_DATABASE_URL", restored)
    assert main(["export"]) == 0
    assert "Team room" in capsys.readouterr().out
    assert not (here / "data" / "troupe.db").exists() or not _has_worlds(here / "data" / "troupe.db")

    monkeypatch.setenv("PATH", str(here / "no-tools-here"))
    assert main(["backup", "backups/"]) == 2
    assert "pg_dump was not found on PATH" in capsys.readouterr().out


def _has_worlds(path: Path) -> bool:
    with sqlite3.connect(path) as db:
        return bool(db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'worlds'").fetchone()[0])


@pytest.mark.parametrize(
    ("url", "code", "said"),
    [
        ("postgresql://postgres@127.0.0.1:{port}/postgres?password=wrong-one", 2, "refused the password"),
        ("postgresql://postgres:{password}@127.0.0.1:{port}/no_such_database", 2, "has no such database"),
        ("postgresql://postgres:wrong-one@127.0.0.1:{closed}/troupe", 1, "refused the connection: nothing listens"),
    ],
    ids=["password", "database", "port"],
)
def test_a_database_that_cannot_be_used_stops_the_start_with_one_line(here, capsys, monkeypatch, postgres_server,
                                                                      url, code, said):
    with socket.socket() as closed:  # bound, not listening: nothing accepts on its port
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv("TROUPE_DATABASE_URL", url.format(port=postgres_server.port, password=PASSWORD,
                                                             closed=closed.getsockname()[1]))
        (here / "script.txt").write_text("Hello\n")
        assert main(["console", "--script", "script.txt"]) == code
    captured = capsys.readouterr()
    text = (captured.out + captured.err).strip()
    assert text.startswith("error: ") and said in text, text
    assert "Traceback" not in text and "wrong-one" not in text and PASSWORD not in text
