"""Moving a SQLite database into PostgreSQL (``troupe migrate --to URL``), when one process is no
longer enough.

Everything a bot keeps is copied as it is (ids included, so posts and audit entries keep their
numbers) into an empty PostgreSQL database, in one transaction: the target holds all of it or
nothing. The SQLite file is locked meanwhile (no bot may write to it) and left unchanged. Leases
and workers are not copied: they describe processes, and the workers on PostgreSQL make their own.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from filelock import FileLock, Timeout

from bots.storage.base import DatabaseSetupError, StorageError
from bots.storage.postgres import PostgresStorage
from bots.storage.sqlite import SQLiteStorage
from bots.storage.sqlite.connection import connect_read_only

#: What is copied, in an order that satisfies the foreign keys, with the columns (the same in both).
TABLES: dict[str, tuple[str, ...]] = {
    "worlds": ("id", "channel_key", "name", "situation", "status", "config", "clock", "policy", "targeted_talk",
               "created_at", "updated_at", "parent_id", "fork_event", "thread"),
    "personas": ("world_id", "name", "spec", "identity", "position"),
    "memories": ("world_id", "persona", "state"),
    "episodes": ("world_id", "persona", "seq", "episode"),
    "events": ("world_id", "id", "kind", "step", "time", "source", "type", "content", "target", "recipients",
               "model", "meta"),
    "outbox": ("id", "world_id", "channel_key", "event_id", "persona", "identity", "text", "thread", "status",
               "verdict", "platform_message_id", "attempts", "error", "created_at", "posted_at"),
    "usage": ("world_id", "persona", "calls", "cached_calls", "prompt_tokens", "completion_tokens", "cost_usd"),
    "audit": ("id", "at", "world_id", "channel_key", "actor", "action", "outbox_id", "detail"),
    "adapter_state": ("platform", "key", "value", "updated_at"),
    "inbox": ("id", "channel_key", "event", "received_at"),
}
#: Tables whose ids PostgreSQL hands out: they go on after the highest id copied.
NUMBERED = ("outbox", "audit", "inbox")


@dataclass
class Moved:
    """Rows copied, by table."""

    rows: dict[str, int]

    @property
    def worlds(self) -> int:
        return self.rows.get("worlds", 0)


async def move_to_postgres(source: Path, url: str) -> Moved:
    """Copy the SQLite database at ``source`` into the empty PostgreSQL database at ``url``."""
    if not await asyncio.to_thread(source.is_file):
        raise DatabaseSetupError(f"no database at {source}: nothing to move (TROUPE_DATA_DIR or TROUPE_BOT_DATABASE "
                                 "name the SQLite file)")
    # Brought to the latest schema first (as a start would), so its tables are the ones copied.
    async with SQLiteStorage(source):
        pass
    lock = await asyncio.to_thread(_lock, source)
    try:
        rows = await asyncio.to_thread(_read_all, source)
        target = PostgresStorage(url)
        await target.open()
        try:
            await target.in_transaction(lambda connection: _write_all(connection, rows, target.shown_url),
                                        f"copy the database into {target.shown_url}")
        finally:
            await target.close()
    finally:
        lock.release()
    return Moved({table: len(found) for table, found in rows.items()})


def _lock(source: Path) -> FileLock:
    """The file's single-writer lock (the one a running bot holds), taken for the whole move."""
    lock = FileLock(f"{source.resolve()}.lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise DatabaseSetupError(f"{source} is in use by a running Troupe process: stop it first, so nothing is "
                                 "written during the move") from None
    return lock


def _read_all(source: Path) -> dict[str, list[tuple]]:
    db = connect_read_only(source)
    try:
        return {table: db.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
                for table, columns in TABLES.items()}
    except sqlite3.DatabaseError as error:
        raise StorageError(f"could not read {source}: {error} (`troupe doctor` checks the file)") from error
    finally:
        db.close()


async def _write_all(connection: asyncpg.Connection, rows: dict[str, list[tuple]], shown: str) -> None:
    worlds = await connection.fetchval("SELECT count(*) FROM worlds")
    if worlds:
        raise DatabaseSetupError(f"the database {shown} already holds {worlds} world(s): move into an empty "
                                 "database (create a new one), so nothing there is mixed with or overwritten")
    for table, columns in TABLES.items():
        if rows[table]:
            await connection.copy_records_to_table(table, records=rows[table], columns=list(columns))
    for table in NUMBERED:
        await connection.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) FROM {table}")
