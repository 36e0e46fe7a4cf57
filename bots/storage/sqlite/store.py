"""``Storage`` in one SQLite file: the operations the bot calls, each a read on the reading
connection or a write queued for the group-commit writer."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
from filelock import FileLock, Timeout

import bots.storage.sqlite.schema as schema
from bots.storage import lineage
from bots.storage.base import (
    RECENT_EVENTS_HELD,
    AuditRecord,
    Lease,
    MemoryWrite,
    NotStoredError,
    OutboxEntry,
    OutboxStatus,
    PersonaRecord,
    StepWrite,
    Storage,
    StorageError,
    StorageUnavailableError,
    StoredWorld,
    UsageRow,
    WorkerRecord,
    WorldRecord,
    utcnow,
)
from bots.storage.rows import (
    audit_from_row,
    audit_params,
    enum_value,
    episode_params,
    event_from_row,
    memories_from_rows,
    memory_params,
    outbox_from_row,
    persona_from_row,
    persona_params,
    time_text,
    to_json,
    usage_from_row,
    world_from_row,
    world_params,
)
from bots.storage.sqlite.connection import (
    check_writable,
    connect,
    migrate,
    readable_uri,
    rollback_quietly,
    user_version,
)
from bots.storage.sqlite.diagnosis import (
    DatabaseInUseError,
    DatabaseSetupError,
    not_writable_error,
    unusable_cause,
)
from bots.storage.sqlite.statements import (
    CLOSE_PERSONA_GAP,
    COUNT_ATTEMPT,
    COUNT_EVENTS,
    DECIDE_OUTBOX,
    DELETE_ADAPTER_STATE,
    DELETE_EPISODES,
    DELETE_EPISODES_FROM,
    DELETE_INBOX,
    DELETE_MEMORY,
    DELETE_PERSONA,
    DELETE_STALE_ADAPTER_STATE,
    DELETE_WORKER,
    DELETE_WORLD_EPISODES,
    DELETE_WORLD_EVENTS,
    DELETE_WORLD_MEMORIES,
    DROP_HELD_OUTBOX,
    DROP_PERSONA_HELD_OUTBOX,
    EARLIER_RUNS_LEFT,
    FORGET_WORKERS,
    FREE_ALL_LEASES,
    HAS_BRANCHES,
    INSERT_AUDIT,
    INSERT_EPISODE,
    INSERT_INBOX,
    INSERT_WORLD,
    MARK_POSTED,
    RECORD_ATTEMPT_ERROR,
    REKEY_WORLD_OUTBOX,
    RELEASE_LEASE,
    RELEASE_LEASES,
    RENEW_LEASES,
    RESET_WORLD,
    SELECT_ACTIVE_WORLDS,
    SELECT_ADAPTER_STATE,
    SELECT_ALL_WORLDS,
    SELECT_BRANCHES,
    SELECT_CHANNEL_AUDIT,
    SELECT_CHANNEL_HELD,
    SELECT_CHANNEL_INBOX,
    SELECT_CHANNEL_PENDING,
    SELECT_CHANNEL_WORLD,
    SELECT_EPISODES_FROM,
    SELECT_EVENT_RANGE,
    SELECT_EVENTS,
    SELECT_INBOX,
    SELECT_LAST_EVENT,
    SELECT_LEASES,
    SELECT_MEMORIES,
    SELECT_OUTBOX,
    SELECT_OUTBOX_RANGE,
    SELECT_PENDING,
    SELECT_PERSONAS,
    SELECT_POSTED_IDS,
    SELECT_RECENT_EVENTS,
    SELECT_USAGE,
    SELECT_WORKERS,
    SELECT_WORLD,
    SELECT_WORLD_OUTBOX,
    SET_OUTBOX_STATUS,
    STOP_WORLD,
    TAKE_ADAPTER_STATE,
    TAKE_LEASE,
    UPSERT_ADAPTER_STATE,
    UPSERT_MEMORY,
    UPSERT_PERSONA,
    UPSERT_WORKER,
    world_update,
)
from bots.storage.sqlite.writer import EncodedStep, GroupCommitWriter, Operation
from simulation.agent import AgentState
from simulation.events import Event

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _State:
    opened: bool = False
    #: The database turned out unusable (reported once).
    unavailable: bool = False
    closed: bool = False


class SQLiteStorage(Storage):
    """``Storage`` in one SQLite file.

    ``single_writer``: this process runs the worlds stored here (a bot, a console), so no second
    one may at the same time. Both would number events, memories and posts from the same counts,
    and one's writes would silently lose to the other's. The lock is beside the file the path
    resolves to: two data folders reaching one database through a link share it. Readers (export,
    backup) need no lock.

    ``read_only``: open the file read-only (see ``readable_uri``), never migrating or writing it; a
    database that needs an upgrade is refused.
    """

    def __init__(self, path: str | Path, *, single_writer: bool = False, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock = FileLock(f"{self.path.resolve()}.lock", timeout=0) if single_writer else None
        self._state = _State()
        self._db: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._read_lock = asyncio.Lock()
        self._writer: GroupCommitWriter | None = None

    def __repr__(self) -> str:
        return f"SQLiteStorage({str(self.path)!r})"

    @property
    def commits(self) -> int:
        """Transactions committed so far."""
        return self._writer.commits if self._writer is not None else 0

    @property
    def step_writes(self) -> int:
        """Steps written so far."""
        return self._writer.step_writes if self._writer is not None else 0

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        """Open (creating or migrating the schema); a second call does nothing."""
        if self._state.closed:
            raise StorageError(f"storage {self.path} is closed")
        if self._state.opened:
            return
        if self.path.is_dir():
            raise DatabaseSetupError(f"{self.path} is a folder, not a database file: point TROUPE_BOT_DATABASE "
                                     f"to a file, e.g. {self.path / 'troupe.db'}")
        if self.read_only:
            await self._open_read_only()
            return
        self._make_folder()
        self._take_lock()
        try:
            db = await connect(self.path, writer=True, refuse_foreign=True)
        except BaseException:
            self._release_lock()
            raise
        try:
            await migrate(db, self.path)
            await check_writable(db, self.path)
            reader = await connect(self.path, writer=False)
        except BaseException:
            await db.close()
            self._release_lock()
            raise
        self._db, self._reader = db, reader
        self._state.opened = True
        self._writer = GroupCommitWriter(db, self.path)
        if self._lock is not None and await self._read(EARLIER_RUNS_LEFT):
            # The lock proves no other process runs on this file: the workers and leases of
            # earlier runs (one killed, say) are void.
            def forget(db: sqlite3.Connection) -> None:
                db.execute(FREE_ALL_LEASES)
                db.execute(FORGET_WORKERS)

            await self._submit(forget, "forget the workers of earlier runs")

    async def _open_read_only(self) -> None:
        if not self.path.is_file():
            raise StorageError(f"no database at {self.path}")
        uri = await asyncio.to_thread(readable_uri, self.path)
        reader = await connect(self.path, writer=False, uri=uri, refuse_foreign=True)
        try:
            version, latest = await user_version(reader), len(schema.MIGRATIONS)
            if version < latest:
                raise DatabaseSetupError(
                    f"the database {self.path} has schema version {version} of {latest}: start Troupe on "
                    "it once (`troupe console`, or the bot) to upgrade it, then try again"
                )
        except BaseException:
            await reader.close()
            raise
        self._reader = reader
        self._state.opened = True

    def _make_folder(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            refused = not_writable_error(self.path)
            if refused is not None:
                raise refused from error
            raise DatabaseSetupError(f"cannot create the folder {self.path.parent} for the database: "
                                     f"{error.strerror or error} (is part of that path a file?)") from error

    async def close(self) -> None:
        """Apply every queued write, then close. Later calls raise StorageError."""
        state = self._state
        if state.closed:
            return
        if not state.opened:
            state.closed = True
            return
        try:
            if self._writer is not None:
                stopped_by = await self._writer.close()
                if stopped_by is not None:
                    log.error("the writer of %s had stopped: %r", self.path, stopped_by)
        finally:
            state.closed = True
            for connection in (self._reader, self._db):
                if connection is not None:
                    try:
                        await connection.close()
                    except sqlite3.Error as error:  # pragma: no cover - nothing left to save
                        log.warning("closing %s: %s", self.path, error)
            self._db = self._reader = None
            self._release_lock()

    def _take_lock(self) -> None:
        if self._lock is None:
            return
        try:
            self._lock.acquire()
        except Timeout:
            real = self.path.resolve()
            same = f" (the same file as {real})" if real != self.path.absolute() else ""
            raise DatabaseInUseError(
                f"{self.path}{same} is in use by another Troupe process (a console or bot on the same data folder). "
                "Stop that one first, or give this one its own folder (TROUPE_DATA_DIR) or database "
                "(TROUPE_BOT_DATABASE)."
            ) from None
        except OSError as error:
            refused = not_writable_error(self.path)
            if refused is not None:
                raise refused from error
            raise StorageError(f"cannot lock {self._lock.lock_file}: {error}") from error

    def _release_lock(self) -> None:
        if self._lock is not None and self._lock.is_locked:
            self._lock.release()

    async def __aenter__(self) -> SQLiteStorage:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- worlds and channels ------------------------------------------------------------------

    async def create_world(self, record: WorldRecord, personas: Iterable[PersonaRecord] = ()) -> None:
        world = world_params(record)
        rows = [persona_params(record.id, p) for p in personas]

        def create(db: sqlite3.Connection) -> None:
            try:
                db.execute(INSERT_WORLD, world)
            except sqlite3.IntegrityError as error:
                if "channel_key" in str(error):
                    raise StorageError(
                        f"channel {record.channel_key} already has a world; stop it before starting another"
                    ) from error
                if "parent_id" in str(error):
                    raise StorageError(f"there is already a branch named {record.name!r}; choose another name") from error
                raise StorageError(f"a world with id {record.id!r} already exists") from error
            if rows:
                db.executemany(UPSERT_PERSONA, rows)

        await self._submit(create, f"create world {record.id!r}")

    async def world_for_channel(self, channel_key: str) -> WorldRecord | None:
        rows = await self._read(SELECT_CHANNEL_WORLD, (channel_key,))
        return world_from_row(rows[0]) if rows else None

    async def active_worlds(self) -> list[WorldRecord]:
        return [world_from_row(row) for row in await self._read(SELECT_ACTIVE_WORLDS)]

    async def all_worlds(self) -> list[WorldRecord]:
        return [world_from_row(row) for row in await self._read(SELECT_ALL_WORLDS)]

    async def branches(self, world_id: str) -> list[WorldRecord]:
        return [world_from_row(row) for row in await self._read(SELECT_BRANCHES, (world_id,))]

    async def event_counts(self) -> dict[str, int]:
        return {row[0]: row[1] for row in await self._read(COUNT_EVENTS)}

    async def load_world(self, world_id: str) -> StoredWorld:
        reader = self._reading()
        async with self._read_lock:
            try:
                # One read transaction: memories and events from the same commit.
                await reader.execute("BEGIN")
                try:
                    world = await reader.execute_fetchall(SELECT_WORLD, (world_id,))
                    if not world:
                        raise StorageError(f"no world with id {world_id!r}")
                    personas = await reader.execute_fetchall(SELECT_PERSONAS, (world_id,))
                    memories = await reader.execute_fetchall(SELECT_MEMORIES, (world_id,))
                    episodes = {name: await reader.execute_fetchall(SELECT_EPISODES_FROM, (world_id, name, first))
                                for name, _, first in memories}
                    record = world_from_row(list(world)[0])
                    if record.parent_id is None:
                        events = await reader.execute_fetchall(SELECT_RECENT_EVENTS, (world_id,))
                    else:
                        events = await self._branch_events(reader, record, recent=True)
                    usage = await reader.execute_fetchall(SELECT_USAGE, (world_id,))
                finally:
                    await rollback_quietly(reader)
            except sqlite3.Error as error:
                raise StorageError(f"could not load world {world_id!r}: {error}") from error
        records = [persona_from_row(row) for row in personas]
        return StoredWorld(
            record=record,
            personas=records,
            memories=memories_from_rows(world_id, records, memories, episodes),
            events=[event_from_row(row) for row in events],
            events_first=events[0][0] - 1 if events else 0,
            usage=[usage_from_row(row) for row in usage],
        )

    async def read_events(self, world_id: str) -> list[Event]:
        found = await self._read(SELECT_WORLD, (world_id,))
        if found and world_from_row(found[0]).parent_id is not None:
            reader = self._reading()
            async with self._read_lock:
                await reader.execute("BEGIN")
                try:
                    rows = await self._branch_events(reader, world_from_row(found[0]), recent=False)
                finally:
                    await rollback_quietly(reader)
            return [event_from_row(row) for row in rows]
        return [event_from_row(row) for row in await self._read(SELECT_EVENTS, (world_id,))]

    @staticmethod
    async def _branch_events(reader: aiosqlite.Connection, record: WorldRecord, *, recent: bool) -> list[Any]:
        """A branch's log (its recent part, with ``recent``) from the stretches it shares and its own."""
        floor = 0
        if recent:
            own = list(await reader.execute_fetchall(SELECT_LAST_EVENT, (record.id,)))
            floor = max(lineage.last_event(record, own[0][0] if own else None) - RECENT_EVENTS_HELD, 0)
        return await _lineage_rows(reader, record, SELECT_EVENT_RANGE, floor=floor)

    async def update_world(self, world_id: str, **fields: Any) -> None:
        if not fields:
            return
        sql, params = world_update(world_id, fields)

        def update(db: sqlite3.Connection) -> None:
            try:
                cursor = db.execute(sql, params)
            except sqlite3.IntegrityError as error:
                raise StorageError(
                    f"cannot update world {world_id!r}: its channel already has another world ({error})"
                ) from error
            if cursor.rowcount == 0:
                raise StorageError(f"no world with id {world_id!r}")

        await self._submit(update, f"update world {world_id!r}")

    async def stop_world(self, world_id: str) -> None:
        def stop(db: sqlite3.Connection) -> None:
            cursor = db.execute(STOP_WORLD, (time_text(utcnow()), world_id))
            if cursor.rowcount == 0:
                raise StorageError(f"no world with id {world_id!r}")

        await self._submit(stop, f"stop world {world_id!r}")

    async def reset_world(self, world_id: str, *, clock: dict[str, Any], policy: dict[str, Any]) -> int:
        """Also moves the world's outbox entries to negative event ids: new event ids restart at 1."""
        params = (to_json(clock), to_json(policy), time_text(utcnow()), world_id)

        def reset(db: sqlite3.Connection) -> int:
            if db.execute(HAS_BRANCHES, (world_id,)).fetchone() is not None:
                raise StorageError("its branches share its conversation; a world with branches cannot be reset")
            cursor = db.execute(RESET_WORLD, params)
            if cursor.rowcount == 0:
                raise StorageError(f"no world with id {world_id!r}")
            db.execute(DELETE_WORLD_EVENTS, (world_id,))
            db.execute(DELETE_WORLD_MEMORIES, (world_id,))
            db.execute(DELETE_WORLD_EPISODES, (world_id,))
            db.execute(REKEY_WORLD_OUTBOX, (world_id,))
            return db.execute(DROP_HELD_OUTBOX, (world_id,)).rowcount

        return await self._submit(reset, f"reset world {world_id!r}")

    # -- personas -----------------------------------------------------------------------------

    async def save_persona(self, world_id: str, persona: PersonaRecord, memory: AgentState | None = None) -> None:
        row = persona_params(world_id, persona)
        state, episodes, first = None, [], 0
        if memory is not None:
            state = memory_params(world_id, persona.name, memory)
            first = memory.episodic.first
            episodes = list(episode_params(world_id, persona.name, MemoryWrite.since(memory, first)))

        def save(db: sqlite3.Connection) -> None:
            db.execute(UPSERT_PERSONA, row)
            if state is not None:
                db.execute(UPSERT_MEMORY, state)
                db.execute(DELETE_EPISODES_FROM, (world_id, persona.name, first))
                db.executemany(INSERT_EPISODE, episodes)

        await self._submit(save, f"save persona {persona.name!r} of world {world_id!r}")

    async def remove_persona(self, world_id: str, name: str) -> int:
        def remove(db: sqlite3.Connection) -> int:
            for (position,) in db.execute(DELETE_PERSONA, (world_id, name)).fetchall():
                db.execute(CLOSE_PERSONA_GAP, (world_id, position))
            db.execute(DELETE_MEMORY, (world_id, name))
            db.execute(DELETE_EPISODES, (world_id, name))
            return db.execute(DROP_PERSONA_HELD_OUTBOX, (world_id, name)).rowcount

        return await self._submit(remove, f"remove persona {name!r} of world {world_id!r}")

    # -- the step -----------------------------------------------------------------------------

    async def write_step(self, write: StepWrite) -> list[OutboxEntry]:
        """Queue the step for the next group commit; returns once it is committed.

        A caller cancelled while its write waits in the queue withdraws it; once the writer has
        taken it, it is committed (or not) with its group regardless.
        """
        self._writable()
        step = EncodedStep.of(write)
        return await self._write(f"write a step of world {write.world_id!r}", step=step)

    # -- outbox -------------------------------------------------------------------------------

    async def pending_outbox(self, channel_key: str | None = None) -> list[OutboxEntry]:
        if channel_key is None:
            rows = await self._read(SELECT_PENDING)
        else:
            rows = await self._read(SELECT_CHANNEL_PENDING, (channel_key,))
        return [outbox_from_row(row) for row in rows]

    async def outbox_entries(self, world_id: str) -> list[OutboxEntry]:
        found = await self._read(SELECT_WORLD, (world_id,))
        if not found or world_from_row(found[0]).parent_id is None:
            return [outbox_from_row(row) for row in await self._read(SELECT_WORLD_OUTBOX, (world_id,))]
        reader = self._reading()
        async with self._read_lock:
            await reader.execute("BEGIN")
            try:
                read = await _lineage_rows(reader, world_from_row(found[0]), SELECT_OUTBOX_RANGE)
            finally:
                await rollback_quietly(reader)
        return sorted((outbox_from_row(row) for row in read), key=lambda entry: entry.id or 0)

    async def mark_posted(self, entry_id: int, platform_message_id: str) -> None:
        await self._update_entry(entry_id, MARK_POSTED, (platform_message_id, time_text(utcnow()), entry_id), "mark")

    async def posted_ids(self, channel_key: str, since: datetime) -> set[str]:
        return {row[0] for row in await self._read(SELECT_POSTED_IDS, (channel_key, time_text(since)))}

    async def mark_attempt(self, entry_id: int, error: str | None = None) -> None:
        """Count an attempt; with ``error``, one that failed, and why."""
        if error is None:
            await self._update_entry(entry_id, COUNT_ATTEMPT, (entry_id,), "count an attempt of")
        else:
            await self._update_entry(entry_id, RECORD_ATTEMPT_ERROR, (error, entry_id), "record a failure of")

    async def set_outbox_status(self, entry_id: int, status: OutboxStatus, error: str | None = None) -> None:
        params = (OutboxStatus(enum_value(status)).value, error, entry_id)
        await self._update_entry(entry_id, SET_OUTBOX_STATUS, params, "set the status of")

    async def _update_entry(self, entry_id: int, sql: str, params: tuple[Any, ...], verb: str) -> None:
        def update(db: sqlite3.Connection) -> None:
            cursor = db.execute(sql, params)
            if cursor.rowcount == 0:
                raise StorageError(f"no outbox entry with id {entry_id}")

        await self._submit(update, f"{verb} outbox entry {entry_id}")

    async def get_outbox(self, entry_id: int) -> OutboxEntry:
        rows = await self._read(SELECT_OUTBOX, (entry_id,))
        if not rows:
            raise NotStoredError(f"no outbox entry with id {entry_id}")
        return outbox_from_row(rows[0])

    async def held_outbox(self, channel_key: str) -> list[OutboxEntry]:
        return [outbox_from_row(row) for row in await self._read(SELECT_CHANNEL_HELD, (channel_key,))]

    async def decide_outbox(
        self, entry_id: int, status: OutboxStatus, audit: AuditRecord, *, text: str | None = None,
        identity: dict[str, Any] | None = None,
    ) -> OutboxEntry:
        stored_identity = to_json(identity) if identity is not None else None
        params = (OutboxStatus(enum_value(status)).value, text, stored_identity, entry_id)

        def decide(db: sqlite3.Connection) -> None:
            cursor = db.execute(DECIDE_OUTBOX, params)
            if cursor.rowcount == 0:
                raise StorageError(f"message {entry_id} is not waiting for review any more")
            db.execute(INSERT_AUDIT, audit_params(audit))

        await self._submit(decide, f"decide on outbox entry {entry_id}")
        return await self.get_outbox(entry_id)

    # -- audit --------------------------------------------------------------------------------

    async def record_audit(self, record: AuditRecord) -> None:
        def insert(db: sqlite3.Connection) -> None:
            db.execute(INSERT_AUDIT, audit_params(record))

        await self._submit(insert, f"record an audit entry for {record.channel_key}")

    async def audit_log(self, channel_key: str) -> list[AuditRecord]:
        return [audit_from_row(row) for row in await self._read(SELECT_CHANNEL_AUDIT, (channel_key,))]

    # -- platform adapters' own state ----------------------------------------------------------

    async def adapter_state(self, platform: str, key: str) -> dict[str, Any] | None:
        rows = await self._read(SELECT_ADAPTER_STATE, (platform, key))
        return json.loads(rows[0][0]) if rows else None

    async def set_adapter_state(self, platform: str, key: str, value: dict[str, Any] | None) -> None:
        if value is None:
            sql, params = DELETE_ADAPTER_STATE, (platform, key)
        else:
            sql, params = UPSERT_ADAPTER_STATE, (platform, key, to_json(value), time_text(utcnow()))

        def write(db: sqlite3.Connection) -> None:
            db.execute(sql, params)

        await self._submit(write, f"store {platform} state {key!r}")

    async def take_adapter_state(self, platform: str, key: str) -> dict[str, Any] | None:
        def take(db: sqlite3.Connection) -> str | None:
            row = db.execute(TAKE_ADAPTER_STATE, (platform, key)).fetchone()
            return row[0] if row else None

        value = await self._submit(take, f"take {platform} state {key!r}")
        return json.loads(value) if value is not None else None

    async def forget_stale_adapter_state(self, platform: str, prefix: str, stored_before: datetime) -> None:
        params = (platform, len(prefix), prefix, time_text(stored_before))

        def forget(db: sqlite3.Connection) -> None:
            db.execute(DELETE_STALE_ADAPTER_STATE, params)

        await self._submit(forget, f"forget stale {platform} state {prefix}…")

    # -- inbox --------------------------------------------------------------------------------

    async def inbox_add(self, channel_key: str, event: dict[str, Any]) -> int:
        def write(db: sqlite3.Connection) -> int:
            cursor = db.execute(INSERT_INBOX, (channel_key, to_json(event), time_text(utcnow())))
            return int(cursor.lastrowid or 0)

        return await self._submit(write, f"receive a message in {channel_key}")

    async def inbox_done(self, entry_id: int) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute(DELETE_INBOX, (entry_id,))

        await self._submit(write, f"settle received message {entry_id}")

    async def inbox_pending(self, channel_key: str | None = None) -> list[tuple[int, str, dict[str, Any]]]:
        if channel_key is None:
            rows = await self._read(SELECT_INBOX)
        else:
            rows = await self._read(SELECT_CHANNEL_INBOX, (channel_key,))
        return [(int(r[0]), str(r[1]), json.loads(r[2])) for r in rows]

    # -- channel ownership --------------------------------------------------------------------

    async def take_lease(self, channel_key: str, worker: str, ttl_s: float) -> int | None:
        def take(db: sqlite3.Connection) -> int | None:
            row = db.execute(TAKE_LEASE, (channel_key, worker, float(ttl_s))).fetchone()
            return int(row[0]) if row is not None else None

        return await self._submit(take, f"take the lease of {channel_key}")

    async def renew_leases(self, worker: str, ttl_s: float) -> dict[str, int]:
        def renew(db: sqlite3.Connection) -> dict[str, int]:
            return {key: int(token) for key, token in db.execute(RENEW_LEASES, (float(ttl_s), worker)).fetchall()}

        return await self._submit(renew, f"renew the leases of worker {worker}")

    async def release_leases(self, worker: str, channel_keys: Sequence[str] | None = None) -> None:
        def release(db: sqlite3.Connection) -> None:
            if channel_keys is None:
                db.execute(RELEASE_LEASES, (worker,))
            else:
                db.executemany(RELEASE_LEASE, [(worker, key) for key in channel_keys])

        await self._submit(release, f"release the leases of worker {worker}")

    async def leases(self) -> list[Lease]:
        return [Lease(channel_key=r[0], worker=r[1], token=r[2], expires_at=datetime.fromtimestamp(r[3], UTC),
                      expired=bool(r[4])) for r in await self._read(SELECT_LEASES)]

    async def worker_alive(self, worker: WorkerRecord) -> None:
        params = (worker.id, worker.host, worker.pid, time_text(worker.started_at), float(worker.lease_s))

        def alive(db: sqlite3.Connection) -> None:
            db.execute(UPSERT_WORKER, params)

        await self._submit(alive, f"note that worker {worker.id} runs")

    async def workers(self) -> list[WorkerRecord]:
        return [WorkerRecord(id=r[0], host=r[1], pid=r[2], started_at=datetime.fromisoformat(r[3]),
                             seen_at=datetime.fromtimestamp(r[4], UTC), lease_s=r[5])
                for r in await self._read(SELECT_WORKERS)]

    async def worker_gone(self, worker: str) -> None:
        def gone(db: sqlite3.Connection) -> None:
            db.execute(DELETE_WORKER, (worker,))

        await self._submit(gone, f"forget worker {worker}")

    # -- usage --------------------------------------------------------------------------------

    async def usage(self, world_id: str) -> list[UsageRow]:
        return [usage_from_row(row) for row in await self._read(SELECT_USAGE, (world_id,))]

    # -- reading ------------------------------------------------------------------------------

    def _reading(self) -> aiosqlite.Connection:
        if self._reader is None or self._state.closed:
            raise StorageError(self._unusable())
        return self._reader

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        reader = self._reading()
        # The lock keeps single reads out of load_world's read transaction (its older snapshot).
        async with self._read_lock:
            try:
                return list(await reader.execute_fetchall(sql, params))
            except sqlite3.Error as error:
                failure = StorageError(f"could not read {self.path}: {error}")
                failure.__cause__ = error
                raise self._fatal(failure) or failure from error

    def _unusable(self) -> str:
        if self._state.closed or (self._writer is not None and self._writer.closing):
            return f"storage {self.path} is closed"
        return f"storage {self.path} is not open; call open() first"

    # -- writing ------------------------------------------------------------------------------

    def _writable(self) -> None:
        if self.read_only:
            raise StorageError(f"storage {self.path} is open read-only")
        if self._writer is None or self._writer.closing or self._state.closed:
            raise StorageError(self._unusable())

    async def _submit(self, operation: Operation, what: str) -> Any:
        self._writable()
        return await self._write(what, operation=operation)

    async def _write(self, what: str, *, step: EncodedStep | None = None, operation: Operation | None = None) -> Any:
        assert self._writer is not None
        try:
            return await self._writer.write(what, step=step, operation=operation)
        except StorageError as error:
            fatal = self._fatal(error)
            if fatal is None:
                raise
            raise fatal from error

    def _fatal(self, error: StorageError) -> StorageUnavailableError | None:
        """``error`` as the database being unusable (a full disk, a read-only or damaged file), which
        no retry mends, or None. The first such error is reported to ``on_unavailable``."""
        if isinstance(error, StorageUnavailableError):
            return error
        unusable = unusable_cause(error)
        if unusable is None:
            return None
        cause, advice = unusable
        fatal = StorageUnavailableError(f"cannot use the database {self.path}: {cause}; {advice}")
        fatal.__cause__ = cause
        if not self._state.unavailable:
            self._state.unavailable = True
            log.error("%s", fatal)
            if self.on_unavailable is not None:
                self.on_unavailable(fatal)
        return fatal


async def _lineage_rows(reader: aiosqlite.Connection, record: WorldRecord, range_sql: str, *,
                        floor: int = 0) -> list[Any]:
    """``range_sql``'s rows (world id, after, up to) over a branch's lineage: the stretches it shares
    with its ancestors, then its own."""

    async def world(world_id: str) -> WorldRecord | None:
        rows = list(await reader.execute_fetchall(SELECT_WORLD, (world_id,)))
        return world_from_row(rows[0]) if rows else None

    async def rows(world_id: str, after: int, upto: int) -> list[Any]:
        return list(await reader.execute_fetchall(range_sql, (world_id, after, upto)))

    return await lineage.read(await lineage.segments(record, world), rows, floor=floor)
