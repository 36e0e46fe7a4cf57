"""The container's health check (``python -m bots.health``): healthy once the bot's database holds
Troupe's tables, on SQLite or PostgreSQL; unhealthy with the reason (never the password) when the
database is missing, not Troupe's, or cannot be reached."""

from __future__ import annotations

import sqlite3

from bots.health import check
from bots.storage.postgres import PostgresStorage
from bots.storage.sqlite import SQLiteStorage
from config.settings import Settings
from tests.support.postgres import PASSWORD


async def test_a_sqlite_database_is_healthy_once_it_holds_troupes_tables(tmp_path):
    settings = Settings(data_dir=tmp_path)
    assert "unable to open database" in check(settings)
    sqlite3.connect(tmp_path / "troupe.db").close()  # a file, but not Troupe's
    assert "no such table: worlds" in check(settings)
    async with SQLiteStorage(settings.database_path):
        pass
    assert check(settings) is None


async def test_a_postgresql_database_is_healthy_once_set_up_and_reachable(tmp_path, postgres_url, postgres_server):
    settings = Settings(data_dir=tmp_path, database_url=postgres_url)
    assert 'relation "worlds" does not exist' in await _check(settings)
    async with PostgresStorage(postgres_url):
        pass
    assert await _check(settings) is None
    closed = Settings(data_dir=tmp_path, database_url=postgres_server.url(port=1))
    problem = await _check(closed)
    assert problem is not None and "127.0.0.1:1" in problem and PASSWORD not in problem


async def _check(settings: Settings) -> str | None:
    import asyncio

    return await asyncio.to_thread(check, settings)
