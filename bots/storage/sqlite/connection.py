"""Connections to the database file: every one set up the same way, the file checked to be Troupe's
before anything is written to it, its schema brought up to date, or opened read-only."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosqlite

import bots.storage.sqlite.schema as schema
from bots.storage.base import StorageError
from bots.storage.sqlite.diagnosis import (
    DatabaseNotWritableError,
    DatabaseSetupError,
    NotATroupeDatabaseError,
    newer_schema_problem,
    schema_problem,
    sqlite_code,
    storage_failure,
)

log = logging.getLogger(__name__)

#: How long a connection waits for another one (another process, the LLM cache) to release a lock.
BUSY_TIMEOUT_MS = 10_000

CONNECTION_PRAGMAS = (
    f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
    "PRAGMA foreign_keys = ON",
    "PRAGMA synchronous = NORMAL",
)


async def connect(
    path: Path, *, writer: bool, uri: str | None = None, refuse_foreign: bool = False
) -> aiosqlite.Connection:
    """A connection set up for writing or reading; ``refuse_foreign``: first make sure the file is
    Troupe's (or new), before anything (WAL mode included) is written to it."""
    try:
        if uri is not None:
            db = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        else:
            db = await aiosqlite.connect(path, isolation_level=None)
    except sqlite3.Error as error:
        raise storage_failure(path, error, "open the database") from error
    try:
        await db.execute(CONNECTION_PRAGMAS[0])
        if refuse_foreign:
            _refuse_foreign(path, await user_version(db), await _tables(db))
        if writer:
            await db.execute("PRAGMA journal_mode = WAL")
        for pragma in CONNECTION_PRAGMAS[1:]:
            await db.execute(pragma)
        if not writer:
            await db.execute("PRAGMA query_only = ON")
        await db.execute_fetchall("SELECT count(*) FROM sqlite_master")
    except sqlite3.DatabaseError as error:
        await db.close()
        failure = storage_failure(path, error, "open the database")
        if type(failure) is StorageError:
            failure = StorageError(f"{path} is not a usable SQLite database: {error}")
        raise failure from error
    except BaseException:
        await db.close()
        raise
    return db


async def migrate(db: aiosqlite.Connection, path: Path) -> None:
    """Apply the migrations this file lacks, each in one transaction."""
    latest = len(schema.MIGRATIONS)
    refuse_newer(path, await user_version(db))
    for number, script in enumerate(schema.MIGRATIONS, start=1):
        if number <= await user_version(db):
            continue
        try:
            await db.execute("BEGIN IMMEDIATE")
            # Another process may have migrated between our check and the lock.
            current = await user_version(db)
            refuse_newer(path, current)
            if current < number:
                for statement in schema.split_script(script):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {number}")
            await db.execute("COMMIT")
        except BaseException as error:
            await rollback_quietly(db)
            if isinstance(error, sqlite3.Error):
                failure = storage_failure(path, error, "upgrade the database")
                if type(failure) is StorageError:
                    failure = StorageError(f"could not upgrade the database {path} to schema version "
                                           f"{number} of {latest}: {error}")
                raise failure from error
            raise
        log.info("database %s upgraded to schema version %d", path, number)


async def check_writable(db: aiosqlite.Connection, path: Path) -> None:
    """Refuse now a file SQLite opened read-only (it does so quietly, when it may not write it),
    rather than fail at the first write with the bot already listening. The probe writes a page
    and rolls back: nothing changes."""
    try:
        await db.execute("BEGIN IMMEDIATE")
        await db.execute(f"PRAGMA user_version = {await user_version(db)}")
    except sqlite3.Error as error:
        raise storage_failure(path, error, "write") from error
    finally:
        await rollback_quietly(db)


def refuse_newer(path: Path, version: int) -> None:
    if version > len(schema.MIGRATIONS):
        raise DatabaseSetupError(newer_schema_problem(path, version))


def _refuse_foreign(path: Path, version: int, tables: set[str]) -> None:
    refuse_newer(path, version)
    problem = schema_problem(path, version, tables)
    if problem is not None:
        raise NotATroupeDatabaseError(problem)


# -- read-only --------------------------------------------------------------------------------


def readable_uri(path: Path) -> str:
    """A URI that opens ``path`` read-only (``mode=ro``), for commands that only read it.

    In WAL mode a reader needs the ``-shm`` file: SQLite uses one that exists (even read-only) or
    creates it. In a folder this user may not write, with none there, SQLite refuses; then, if no
    ``-wal`` file holds commits either, the file itself holds every commit and is read as it is
    (``immutable``). A ``-wal`` with commits cannot be read without its ``-shm``: that is said so.
    """
    if not os.access(path, os.R_OK):
        raise DatabaseSetupError(f"{path} is not readable for this user: make it readable (chmod u+r {path}), "
                                 "or run this as the user running Troupe")
    base = f"{path.resolve().as_uri()}?mode=ro"
    wal = path.with_name(path.name + "-wal")
    for uri in (base, f"{base}&immutable=1"):
        try:
            db = sqlite3.connect(uri, uri=True)
            try:
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                db.close()
            return uri
        except sqlite3.Error as error:
            cannot_share = sqlite_code(error) in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN)
            if uri != base or not cannot_share:
                raise storage_failure(path, error, "read") from error
            if wal.exists() and wal.stat().st_size > 0:
                raise DatabaseNotWritableError(
                    f"{wal} holds commits not yet in {path}, and reading them needs {path.name}-shm, which this "
                    f"user cannot create in {path.parent}: run this as the user running Troupe, or make "
                    f"{path.parent} writable for this one"
                ) from error
    raise AssertionError("unreachable")


def connect_read_only(path: Path, *, timeout: float = BUSY_TIMEOUT_MS / 1000) -> sqlite3.Connection:
    """``path`` opened read-only (see ``readable_uri``); nothing is ever written to it."""
    db = sqlite3.connect(readable_uri(path), uri=True, timeout=timeout)
    db.execute("PRAGMA query_only = ON")
    return db


# -- small steps on an open connection -------------------------------------------------------


async def in_connection_thread(db: aiosqlite.Connection, function: Callable[..., Any], *args: Any) -> Any:
    """``function(connection, *args)`` run in ``db``'s own thread as one call.

    Each aiosqlite statement is a hop to that thread and back, and under load every hop waits for
    the GIL: a group commit of eight statements took 2–6 ms of wall time, most of it waiting. As one
    call it is one hop. aiosqlite queues callables for its thread with ``Connection._execute``; it
    has no public name for that, so this is the one place that relies on it.
    """
    return await db._execute(lambda: function(db._conn, *args))


def rollback(db: sqlite3.Connection) -> None:
    """Roll back whatever transaction is open; none being open is fine."""
    try:
        db.execute("ROLLBACK")
    except sqlite3.Error:
        pass


async def rollback_quietly(db: aiosqlite.Connection) -> None:
    """``rollback`` on an aiosqlite connection."""
    await in_connection_thread(db, rollback)


async def user_version(db: aiosqlite.Connection) -> int:
    rows = list(await db.execute_fetchall("PRAGMA user_version"))
    return int(rows[0][0])


async def _tables(db: aiosqlite.Connection) -> set[str]:
    return {row[0] for row in await db.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")}
