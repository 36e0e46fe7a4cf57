"""The store every storage test opens: a fresh database of each backend (a SQLite file in a
temporary folder, a database of its own on the test PostgreSQL server), and a way to reach that
database directly, as an operator (or a damaged disk) would."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
import pytest

import bots.storage.postgres.schema as postgres_schema
import bots.storage.sqlite.schema as sqlite_schema
from bots.storage.base import Storage
from bots.storage.postgres import PostgresStorage
from bots.storage.sqlite import SQLiteStorage
from tests.support.postgres import create_database


@dataclass
class Backend:
    """One backend's database for a test: a fresh store on it, and SQL run on it directly."""

    name: str
    #: The SQLite file or the PostgreSQL URL.
    place: Any

    def storage(self, **options: Any) -> Storage:
        if self.name == "sqlite":
            return SQLiteStorage(self.place, **options)
        return PostgresStorage(self.place, **options)

    @property
    def schema(self) -> ModuleType:
        """The backend's migrations module (``MIGRATIONS``)."""
        return sqlite_schema if self.name == "sqlite" else postgres_schema

    async def fetch(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of ``sql``, on a connection of its own (committed at once)."""
        if self.name == "sqlite":
            with sqlite3.connect(self.place) as db:
                return db.execute(sql).fetchall()
        connection = await asyncpg.connect(self.place)
        try:
            return [tuple(row) for row in await connection.fetch(sql)]
        finally:
            await connection.close()

    async def execute(self, script: str) -> None:
        """Run ``script`` (one or more statements) on a connection of its own, and commit it."""
        if self.name == "sqlite":
            with sqlite3.connect(self.place) as db:
                db.executescript(script)
            return
        connection = await asyncpg.connect(self.place)
        try:
            await connection.execute(script)
        finally:
            await connection.close()

    async def fetchval(self, sql: str) -> Any:
        return (await self.fetch(sql))[0][0]

    async def schema_version(self) -> int:
        if self.name == "sqlite":
            return await self.fetchval("PRAGMA user_version")
        return await self.fetchval("SELECT max(version) FROM schema_migrations")

    async def set_schema_version(self, version: int) -> None:
        if self.name == "sqlite":
            await self.execute(f"PRAGMA user_version = {version}")
        else:
            await self.execute(f"INSERT INTO schema_migrations (version) VALUES ({version})")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "troupe.sqlite3"


@pytest.fixture(params=["sqlite", "postgresql"])
async def backend(request: pytest.FixtureRequest, path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", path)
    return Backend("postgresql", await create_database(request.getfixturevalue("postgres_server")))


@pytest.fixture
async def storage(backend: Backend):
    store = backend.storage()
    await store.open()
    try:
        yield store
    finally:
        await store.close()
