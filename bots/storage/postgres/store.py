"""``Storage`` in a PostgreSQL database: the operations the bot calls, each a read on a pooled
connection or a write in one transaction of its own."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from bots.storage import lineage
from bots.storage.base import (
    RECENT_EVENTS_HELD,
    AuditRecord,
    DatabaseSetupError,
    Lease,
    MemoryWrite,
    NotStoredError,
    OutboxEntry,
    OutboxStatus,
    PersonaRecord,
    StaleOwnerError,
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
from bots.storage.postgres.connection import (
    CONNECT_TIMEOUT_S,
    CONNECTION_ERRORS,
    close_quietly,
    connection_problem,
    create_pool,
    hidden,
    is_postgres_url,
    migrate,
    refuse_missing_writes,
    refuse_outdated,
    shown_url,
    unusable_advice,
)
from bots.storage.postgres.statements import (
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
    HAS_BRANCHES,
    INSERT_AUDIT,
    INSERT_EPISODE,
    INSERT_INBOX,
    INSERT_WORLD,
    MARK_POSTED,
    NOTIFY,
    RECORD_ATTEMPT_ERROR,
    REKEY_WORLD_OUTBOX,
    RELEASE_CHANNEL_LEASES,
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
    SELECT_OUTBOX_FOR_EVENTS,
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
    STEP_OUTBOX_COLUMNS,
    STEP_TABLES,
    STOP_WORLD,
    TAKE_ADAPTER_STATE,
    TAKE_LEASE,
    UPSERT_ADAPTER_STATE,
    UPSERT_MEMORY,
    UPSERT_PERSONA,
    UPSERT_WORKER,
    step_statement,
    world_sets,
    world_update,
)
from bots.storage.rows import (
    audit_from_row,
    audit_params,
    enum_value,
    episode_params,
    event_from_row,
    event_params,
    memories_from_rows,
    memory_params,
    outbox_from_row,
    outbox_params,
    persona_from_row,
    persona_params,
    time_text,
    to_json,
    usage_from_row,
    usage_params,
    world_from_row,
    world_params,
)
from simulation.agent import AgentState
from simulation.events import Event

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The session-level advisory lock held by the one process that runs the worlds (``single_writer``).
WRITER_LOCK = 0x74726F7570650002
#: Times a transaction is tried when the server aborts it for a deadlock or a serialization failure.
TRANSACTION_ATTEMPTS = 3
#: Seconds a check that the server is still there may take, after a connection was lost.
PROBE_TIMEOUT_S = 5.0
#: Seconds a server that cannot be reached is tried again before the storage gives up on it: long
#: enough to ride out a restart or a failover (a few lease terms), short enough that a server gone
#: for good stops the bot rather than leave it deaf.
RECONNECT_S = 60.0
#: Pauses between the tries to reach a lost server again, growing; the last one repeats (a try is
#: one connection attempt: a server back is found within a couple of seconds).
RECONNECT_PAUSES_S = (0.25, 0.5, 1.0, 2.0)
#: Times an operation is run in all when its server went away and came back (it waits for each
#: outage in turn): a server that keeps dropping out fails it instead of holding it for ever.
ATTEMPTS_OVER_OUTAGES = 3


@dataclass(eq=False)
class _State:
    opened: bool = False
    #: ``close`` was called: operations under way finish, new ones are refused.
    closing: bool = False
    closed: bool = False
    #: The database turned out unusable (reported once).
    unavailable: bool = False


class _ServerBack(StorageError):
    """An operation failed because the server went away; it can be reached again now. The operation
    is run again if nothing of it can have reached the server (or it only reads); otherwise its
    caller is told, as for any lost connection (whether it took effect is not known)."""


def _closed(connection: asyncpg.Connection) -> bool:
    """Whether the connection is gone (a lost one the pool may have taken back already)."""
    try:
        return connection.is_closed()
    except asyncpg.InterfaceError:
        return True


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows as one list a column, for ``unnest``."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _count(status: str) -> int:
    """Rows a statement changed, from its command tag (``UPDATE 3``)."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresStorage(Storage):
    """``Storage`` in a PostgreSQL database, through a pool of connections.

    Each change is one transaction of its own; concurrent ones (many channels stepping at once) run
    side by side on the pool's connections, so no write waits for another world's.

    ``single_writer``: this process runs the worlds stored here, so no second one may at the same
    time (an advisory lock held for as long as the storage is open). ``read_only``: the database is
    only read, never migrated; one that needs an upgrade is refused.

    A server that cannot be reached (stopped, restarting, failing over) is tried again, ever less
    often, for up to ``reconnect_s`` seconds: operations wait for it meanwhile. Those that sent
    nothing yet, and reads, then run on the server that is back; one whose connection was lost
    under it is a ``StorageError`` (its outcome is not known), as is any lost connection. A server
    still unreachable after ``reconnect_s``, or one that refuses writes for good (a full disk, a
    read-only standby), is a ``StorageUnavailableError``, reported once to ``on_unavailable``.
    """

    def __init__(self, url: str, *, single_writer: bool = False, read_only: bool = False, min_connections: int = 1,
                 max_connections: int = 10, command_timeout_s: float = 60.0,
                 reconnect_s: float = RECONNECT_S) -> None:
        if not is_postgres_url(url):
            raise DatabaseSetupError(f"{shown_url(url)!r} is not a PostgreSQL URL: write it as "
                                     "postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
        self.url = url
        self.single_writer = single_writer
        self.shared = not single_writer
        self.read_only = read_only
        self.min_connections = min_connections
        self.max_connections = max_connections
        self.command_timeout_s = command_timeout_s
        self.reconnect_s = reconnect_s
        self._state = _State()
        #: The tries to reach a lost server again, while they last: every operation that finds the
        #: server gone waits for the same ones. Its result: None once it is back, else why not.
        self._outage: asyncio.Future[str | None] | None = None
        #: Set by ``close``: waiting for a lost server ends.
        self._closing = asyncio.Event()
        self._pool: asyncpg.Pool | None = None
        self._writer_lock: asyncpg.Connection | None = None
        #: The connection ``LISTEN`` runs on, and the topics it listens to.
        self._listener: asyncpg.Connection | None = None
        self._topics: set[str] = set()
        self._relisten: asyncio.Task | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def __repr__(self) -> str:
        return f"PostgresStorage({shown_url(self.url)!r})"

    @property
    def shown_url(self) -> str:
        """The URL without its password, for messages and logs."""
        return shown_url(self.url)

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect (creating or migrating the schema); a second call does nothing."""
        if self._state.closed or self._state.closing:
            raise StorageError(f"storage {self.shown_url} is closed")
        if self._state.opened:
            return
        pool = await create_pool(self.url, min_size=self.min_connections, max_size=self.max_connections,
                                 command_timeout_s=self.command_timeout_s, read_only=self.read_only)
        try:
            try:
                async with pool.acquire() as connection:
                    if self.read_only:
                        await refuse_outdated(connection, self.url)
                    else:
                        await migrate(connection, self.url)
                        await refuse_missing_writes(connection, self.url)
                if self.single_writer and not self.read_only:
                    self._writer_lock = await self._take_writer_lock()
            except CONNECTION_ERRORS as error:
                raise StorageError(str(connection_problem(self.url, error))) from error
        except BaseException:
            await close_quietly(pool)
            raise
        self._pool = pool
        self._state.opened = True

    async def _take_writer_lock(self) -> asyncpg.Connection:
        connection = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT_S,
                                           server_settings={"application_name": "troupe (runs the worlds)"})
        try:
            if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", WRITER_LOCK):
                raise DatabaseSetupError(
                    f"the database {self.shown_url} is in use by another Troupe process (a console or bot on the "
                    "same database): stop that one first, or give this one its own database (TROUPE_DATABASE_URL)"
                )
        except BaseException:
            await connection.close(timeout=PROBE_TIMEOUT_S)
            raise
        return connection

    async def close(self) -> None:
        """Let the operations under way finish, then close. Later calls raise StorageError."""
        state = self._state
        if state.closed or state.closing:
            return
        if not state.opened:
            state.closed = True
            return
        state.closing = True
        self._closing.set()
        try:
            await self._idle.wait()
        finally:
            state.closed = True
            for task in (self._relisten, self._outage):  # no operation waits for them any more
                if task is not None:
                    task.cancel()
            for connection in (self._writer_lock, self._listener):
                if connection is not None:
                    with contextlib.suppress(*CONNECTION_ERRORS, asyncpg.PostgresError):
                        await connection.close(timeout=PROBE_TIMEOUT_S)
            self._writer_lock = self._listener = None
            if self._pool is not None:
                await close_quietly(self._pool)
                self._pool = None

    async def __aenter__(self) -> PostgresStorage:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- running statements -------------------------------------------------------------------

    def _unusable(self) -> str:
        if self._state.closed or self._state.closing:
            return f"storage {self.shown_url} is closed"
        return f"storage {self.shown_url} is not open; call open() first"

    @contextlib.asynccontextmanager
    async def _operation(self) -> AsyncIterator[asyncpg.Pool]:
        """The pool, for one operation; ``close`` waits for every operation under way."""
        if self._pool is None or self._state.closing or self._state.closed:
            raise StorageError(self._unusable())
        self._in_flight += 1
        self._idle.clear()
        try:
            yield self._pool
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def in_transaction(self, work: Callable[[asyncpg.Connection], Awaitable[T]], what: str = "run a transaction",
                             *, isolation: str = "read_committed", readonly: bool = False) -> T:
        """``work(connection)`` inside one transaction, committed when it returns.

        ``work`` may run more than once (a deadlock or serialization failure is retried), so it does
        nothing but use the connection. Errors are StorageErrors saying they happened while trying to
        ``what``; a StorageError ``work`` raises rolls back and is raised as it is.
        """
        if not readonly and self.read_only:
            raise StorageError(f"storage {self.shown_url} is open read-only")
        return await self._retried(work, what, isolation=isolation, readonly=readonly)

    async def _in_statement(self, work: Callable[[asyncpg.Connection], Awaitable[T]], what: str) -> T:
        """``work(connection)`` that runs a single statement: PostgreSQL applies one statement
        atomically on its own, so no BEGIN and COMMIT around it (one round trip, not three). Errors
        as with ``in_transaction``."""
        if self.read_only:
            raise StorageError(f"storage {self.shown_url} is open read-only")
        return await self._retried(work, what, isolation=None, readonly=False)

    async def _retried(self, work: Callable[[asyncpg.Connection], Awaitable[T]], what: str, *, isolation: str | None,
                       readonly: bool) -> T:
        """``work`` on a connection, again after a deadlock or serialization failure."""
        async with self._operation() as pool:
            for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
                try:
                    return await self._on_connection(pool, what, work, isolation=isolation, readonly=readonly,
                                                     repeatable=readonly)
                except (asyncpg.SerializationError, asyncpg.DeadlockDetectedError) as error:
                    if attempt < TRANSACTION_ATTEMPTS:
                        log.debug("retrying %s after %s", what, error)
                        continue
                    raise StorageError(f"could not {what}: {hidden(str(error), self.url)}") from error
        raise AssertionError("unreachable")

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async def fetch(connection: asyncpg.Connection) -> list[asyncpg.Record]:
            return await connection.fetch(sql, *args)

        async with self._operation() as pool:
            return await self._on_connection(pool, f"read {self.shown_url}", fetch, repeatable=True)

    async def _on_connection(self, pool: asyncpg.Pool, what: str, work: Callable[[asyncpg.Connection], Awaitable[T]],
                             *, isolation: str | None = None, readonly: bool = False, repeatable: bool = False) -> T:
        """``work`` on a connection of the pool (in a transaction, given its ``isolation``), its
        errors said as StorageErrors; a deadlock or serialization failure is raised as it is.

        When the server went away and came back meanwhile, ``work`` runs again if no connection was
        had for it (nothing was sent) or it is ``repeatable`` (it only reads)."""
        for attempt in range(1, ATTEMPTS_OVER_OUTAGES + 1):
            last = attempt == ATTEMPTS_OVER_OUTAGES
            try:
                connection = await pool.acquire(timeout=self.command_timeout_s)
            except Exception as error:
                failure = await self._failure(what, error, lost=True)
                if failure is error:
                    raise
                if isinstance(failure, _ServerBack) and not last:
                    continue
                raise failure from error
            try:
                if isolation is None:
                    return await work(connection)
                async with connection.transaction(isolation=isolation, readonly=readonly):
                    return await work(connection)
            except (StorageError, asyncpg.SerializationError, asyncpg.DeadlockDetectedError):
                raise
            except Exception as error:
                failure = await self._failure(what, error, lost=_closed(connection))
                if failure is error:
                    raise
                if isinstance(failure, _ServerBack) and repeatable and not last:
                    continue
                raise failure from error
            finally:
                # A connection the server dropped may fail its return to the pool too (asyncpg says so with
                # InternalClientError): what the caller is told is the failure above.
                with contextlib.suppress(*CONNECTION_ERRORS, asyncpg.PostgresError, asyncpg.InterfaceError,
                                         asyncpg.InternalClientError):
                    await pool.release(connection)
        raise AssertionError("unreachable")

    async def _failure(self, what: str, error: Exception, *, lost: bool = False) -> Exception:
        """``error`` as the StorageError the caller sees (or unchanged, if it is a bug of ours).

        ``lost``: the connection it happened on is gone (whatever the error says: ending a
        transaction on a closed connection says only that, not why it closed). Then, if the server
        cannot be reached either, this waits for it to come back (``_server_back``): a
        ``_ServerBack`` once it has, a StorageUnavailableError if it does not.
        """
        if lost and isinstance(error, asyncpg.InterfaceError) and isinstance(error.__context__, Exception):
            error = error.__context__
        said = hidden(str(error) or type(error).__name__, self.url)
        advice = unusable_advice(error)
        if advice is not None:
            return self._unavailable(f"cannot use the database {self.shown_url}: {said}; {advice}")
        if lost or isinstance(error, CONNECTION_ERRORS):
            gone, waited = await self._server_back()
            if gone is not None:
                if waited and self._closing.is_set():
                    return StorageError(f"could not {what}: the connection to the database was lost ({said}), and "
                                        "the storage was closed before it came back")
                tried = f"could not reach it again within {self.reconnect_s:g} s: " if waited else ""
                return self._unavailable(f"lost the connection to the database ({said}) while trying to {what}, and "
                                         f"{tried}{gone}")
            failure = _ServerBack if waited else StorageError
            return failure(f"could not {what}: the connection to the database was lost ({said})")
        if isinstance(error, asyncpg.PostgresError):
            return StorageError(f"could not {what}: {said}")
        return error

    async def _server_back(self) -> tuple[str | None, bool]:
        """Whether the server can be reached: (None, False) if it can now; (None, True) once it can
        again after an outage; (why not, waited) if it cannot. The outage is waited for (up to
        ``reconnect_s``) unless the storage already gave up on the server, or is closing."""
        if self._outage is None:
            gone = await self._unreachable()
            if gone is None:
                return None, False
            if self._state.unavailable or self._state.closing or self._state.closed or self.reconnect_s <= 0:
                return gone, False
            if self._outage is None:  # another operation may have found it gone meanwhile
                outage = self._outage = asyncio.ensure_future(self._ride_out(gone))
                outage.add_done_callback(self._outage_over)
        assert self._outage is not None
        return await asyncio.shield(self._outage), True

    def _outage_over(self, outage: asyncio.Future[str | None]) -> None:
        if self._outage is outage:
            self._outage = None

    async def _ride_out(self, lost: str) -> str | None:
        """Try to reach the lost server again, ever less often, for up to ``reconnect_s`` seconds:
        None once it can be reached (and what was lost with it is set up again), else why not."""
        gone: str | None = lost
        started = time.monotonic()
        deadline = started + self.reconnect_s
        log.warning("lost the database: %s; trying to reach it again for up to %g s", gone, self.reconnect_s)
        for pause in itertools.chain(RECONNECT_PAUSES_S, itertools.repeat(RECONNECT_PAUSES_S[-1])):
            pause = min(pause, deadline - time.monotonic())
            if pause <= 0:
                return gone  # said by the operations that waited (``_unavailable``)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), pause)
            if self._closing.is_set():
                return gone
            gone = await self._unreachable()
            if gone is None:
                gone = await self._after_outage()
                if gone is None:
                    log.warning("reached the database %s again after %.1f s", self.shown_url, time.monotonic() - started)
                    return None
            log.info("still cannot reach the database (trying for %.0f s more): %s", max(0.0, deadline - time.monotonic()),
                     gone)
        raise AssertionError("unreachable")

    async def _after_outage(self) -> str | None:
        """Set up again what a lost server took with it: the lock of the one process that runs the
        worlds (None if retaken; else why not) and the connection wake-ups arrive on."""
        if self._writer_lock is not None and _closed(self._writer_lock):
            try:
                self._writer_lock = await self._take_writer_lock()
            except DatabaseSetupError as error:
                return str(error)
            except (*CONNECTION_ERRORS, asyncpg.PostgresError) as error:
                return str(connection_problem(self.url, error))
        if self._listeners() and (self._listener is None or _closed(self._listener)) and (
                self._relisten is None or self._relisten.done()):
            self._relisten = asyncio.ensure_future(self._listen_again())
        return None

    async def _unreachable(self) -> str | None:
        """Why the server cannot be reached now (a new connection, not the pool's), or None if it can."""
        try:
            connection = await asyncpg.connect(self.url, timeout=PROBE_TIMEOUT_S)
        except (*CONNECTION_ERRORS, asyncpg.PostgresError) as error:
            return str(connection_problem(self.url, error))
        try:
            await connection.fetchval("SELECT 1", timeout=PROBE_TIMEOUT_S)
        except (*CONNECTION_ERRORS, asyncpg.PostgresError) as error:
            return str(connection_problem(self.url, error))
        finally:
            connection.terminate()
        return None

    def _unavailable(self, message: str) -> StorageUnavailableError:
        """The database unusable: said once, in the log and to ``on_unavailable``."""
        fatal = StorageUnavailableError(message)
        if not self._state.unavailable:
            self._state.unavailable = True
            log.error("%s", fatal)
            if self.on_unavailable is not None:
                self.on_unavailable(fatal)
        return fatal

    # -- worlds and channels ------------------------------------------------------------------

    async def create_world(self, record: WorldRecord, personas: Iterable[PersonaRecord] = ()) -> None:
        world = world_params(record)
        rows = [persona_params(record.id, p) for p in personas]

        async def create(connection: asyncpg.Connection) -> None:
            try:
                await connection.execute(INSERT_WORLD, *world)
            except asyncpg.UniqueViolationError as error:
                if error.constraint_name == "worlds_bound_channel":
                    raise StorageError(
                        f"channel {record.channel_key} already has a world; stop it before starting another"
                    ) from error
                if error.constraint_name == "worlds_branch_name":
                    raise StorageError(f"there is already a branch named {record.name!r}; choose another name") from error
                raise StorageError(f"a world with id {record.id!r} already exists") from error
            if rows:
                await connection.executemany(UPSERT_PERSONA, rows)

        await self.in_transaction(create, f"create world {record.id!r}")

    async def world_for_channel(self, channel_key: str) -> WorldRecord | None:
        rows = await self._fetch(SELECT_CHANNEL_WORLD, channel_key)
        return world_from_row(rows[0]) if rows else None

    async def active_worlds(self) -> list[WorldRecord]:
        return [world_from_row(row) for row in await self._fetch(SELECT_ACTIVE_WORLDS)]

    async def all_worlds(self) -> list[WorldRecord]:
        return [world_from_row(row) for row in await self._fetch(SELECT_ALL_WORLDS)]

    async def branches(self, world_id: str) -> list[WorldRecord]:
        return [world_from_row(row) for row in await self._fetch(SELECT_BRANCHES, world_id)]

    async def event_counts(self) -> dict[str, int]:
        return {row[0]: row[1] for row in await self._fetch(COUNT_EVENTS)}

    async def load_world(self, world_id: str) -> StoredWorld:
        async def read(connection: asyncpg.Connection) -> tuple[Any, ...]:
            world = await connection.fetchrow(SELECT_WORLD, world_id)
            if world is None:
                raise StorageError(f"no world with id {world_id!r}")
            personas = await connection.fetch(SELECT_PERSONAS, world_id)
            memories = await connection.fetch(SELECT_MEMORIES, world_id)
            episodes = {name: await connection.fetch(SELECT_EPISODES_FROM, world_id, name, first)
                        for name, _, first in memories}
            record = world_from_row(world)
            if record.parent_id is None:
                events = await connection.fetch(SELECT_RECENT_EVENTS, world_id)
            else:
                events = await _branch_events(connection, record, recent=True)
            usage = await connection.fetch(SELECT_USAGE, world_id)
            return world, personas, memories, episodes, events, usage

        # One snapshot: memories and events from the same commit.
        world, personas, memories, episodes, events, usage = await self.in_transaction(
            read, f"load world {world_id!r}", isolation="repeatable_read", readonly=True)
        records = [persona_from_row(row) for row in personas]
        return StoredWorld(
            record=world_from_row(world),
            personas=records,
            memories=memories_from_rows(world_id, records, memories, episodes),
            events=[event_from_row(row) for row in events],
            events_first=events[0][0] - 1 if events else 0,
            usage=[usage_from_row(row) for row in usage],
        )

    async def read_events(self, world_id: str) -> list[Event]:
        async def read(connection: asyncpg.Connection) -> list[Any]:
            world = await connection.fetchrow(SELECT_WORLD, world_id)
            if world is not None and world_from_row(world).parent_id is not None:
                return await _branch_events(connection, world_from_row(world), recent=False)
            return list(await connection.fetch(SELECT_EVENTS, world_id))

        rows = await self.in_transaction(read, f"read the events of world {world_id!r}", isolation="repeatable_read",
                                         readonly=True)
        return [event_from_row(row) for row in rows]

    async def update_world(self, world_id: str, **fields: Any) -> None:
        if not fields:
            return
        sql, params = world_update(world_id, fields)

        async def update(connection: asyncpg.Connection) -> None:
            try:
                status = await connection.execute(sql, *params)
            except asyncpg.UniqueViolationError as error:
                raise StorageError(
                    f"cannot update world {world_id!r}: its channel already has another world ({error})"
                ) from error
            if _count(status) == 0:
                raise StorageError(f"no world with id {world_id!r}")

        await self._in_statement(update, f"update world {world_id!r}")

    async def stop_world(self, world_id: str) -> None:
        async def stop(connection: asyncpg.Connection) -> None:
            if _count(await connection.execute(STOP_WORLD, time_text(utcnow()), world_id)) == 0:
                raise StorageError(f"no world with id {world_id!r}")

        await self._in_statement(stop, f"stop world {world_id!r}")

    async def reset_world(self, world_id: str, *, clock: dict[str, Any], policy: dict[str, Any]) -> int:
        """Also moves the world's outbox entries to negative event ids: new event ids restart at 1."""
        params = (to_json(clock), to_json(policy), time_text(utcnow()), world_id)

        async def reset(connection: asyncpg.Connection) -> int:
            if await connection.fetchval(HAS_BRANCHES, world_id) is not None:
                raise StorageError("its branches share its conversation; a world with branches cannot be reset")
            if _count(await connection.execute(RESET_WORLD, *params)) == 0:
                raise StorageError(f"no world with id {world_id!r}")
            for statement in (DELETE_WORLD_EVENTS, DELETE_WORLD_MEMORIES, DELETE_WORLD_EPISODES, REKEY_WORLD_OUTBOX):
                await connection.execute(statement, world_id)
            return _count(await connection.execute(DROP_HELD_OUTBOX, world_id))

        return await self.in_transaction(reset, f"reset world {world_id!r}")

    # -- personas -----------------------------------------------------------------------------

    async def save_persona(self, world_id: str, persona: PersonaRecord, memory: AgentState | None = None) -> None:
        row = persona_params(world_id, persona)
        state, episodes, first = None, [], 0
        if memory is not None:
            state = memory_params(world_id, persona.name, memory)
            first = memory.episodic.first
            episodes = list(episode_params(world_id, persona.name, MemoryWrite.since(memory, first)))

        async def save(connection: asyncpg.Connection) -> None:
            await connection.execute(UPSERT_PERSONA, *row)
            if state is not None:
                await connection.execute(UPSERT_MEMORY, *state)
                await connection.execute(DELETE_EPISODES_FROM, world_id, persona.name, first)
                if episodes:
                    await connection.executemany(INSERT_EPISODE, episodes)

        await self.in_transaction(save, f"save persona {persona.name!r} of world {world_id!r}")

    async def remove_persona(self, world_id: str, name: str) -> int:
        async def remove(connection: asyncpg.Connection) -> int:
            for (position,) in await connection.fetch(DELETE_PERSONA, world_id, name):
                await connection.execute(CLOSE_PERSONA_GAP, world_id, position)
            await connection.execute(DELETE_MEMORY, world_id, name)
            await connection.execute(DELETE_EPISODES, world_id, name)
            return _count(await connection.execute(DROP_PERSONA_HELD_OUTBOX, world_id, name))

        return await self.in_transaction(remove, f"remove persona {name!r} of world {world_id!r}")

    # -- the step -----------------------------------------------------------------------------

    async def write_step(self, write: StepWrite) -> list[OutboxEntry]:
        """One statement (``statements.step_statement``), so one round trip; the write is turned into
        rows before anything waits.

        A caller cancelled before it is applied leaves nothing of the step behind.
        """
        wid, fence = write.world_id, write.fence
        world_fields, world_values = world_sets(write.world) if write.world else ((), ())
        params: list[Any] = [wid]
        if fence is not None:
            params += [fence.channel_key, fence.worker, fence.token]
        params += world_values
        # One usage row a persona (an upsert may not touch a row twice in one statement): the last
        # one wins, as it would written one after another. (Memories are by persona already.)
        usage = {row.persona or "": usage_params(wid, row) for row in write.usage}
        tables = (
            [event_params(wid, e) for e in write.events],
            [memory_params(wid, name, memory.state) for name, memory in write.memories.items() if memory.row],
            [row for name, memory in write.memories.items() for row in episode_params(wid, name, memory)],
            list(usage.values()),
        )
        for rows, (_, columns, _) in zip(tables, STEP_TABLES, strict=True):
            params += _columns([row[1:] for row in rows], len(columns))  # each row's first value is the world's id
        params += _columns([outbox_params(entry) for entry in write.outbox], len(STEP_OUTBOX_COLUMNS))
        sql = step_statement(world_fields, fence is not None)

        async def apply(connection: asyncpg.Connection) -> list[asyncpg.Record]:
            return list(await connection.fetch(sql, *params))

        rows = await self._in_statement(apply, f"write a step of world {wid!r}")
        token, written = rows[0][-2], rows[0][-1]
        if fence is not None and token != fence.token:
            raise StaleOwnerError(f"{fence.channel_key} is no longer run by this worker (lease {fence.token} "
                                  "was taken over); its new owner carries on from storage")
        if not written:
            raise StorageError(f"no world with id {wid!r}")
        stored = {(e.world_id, e.event_id): e for e in (outbox_from_row(row) for row in rows if row[0] is not None)}
        keys = [(entry.world_id, entry.event_id) for entry in write.outbox]
        # Entries an earlier write of the same events stored are kept as they are: read them.
        missing = [key for key in keys if key not in stored]
        for world_id in dict.fromkeys(w for w, _ in missing):
            events = [e for w, e in missing if w == world_id]
            for row in await self._fetch(SELECT_OUTBOX_FOR_EVENTS, world_id, events):
                entry = outbox_from_row(row)
                stored[(entry.world_id, entry.event_id)] = entry
        return [stored[key] for key in keys]

    # -- outbox -------------------------------------------------------------------------------

    async def pending_outbox(self, channel_key: str | None = None) -> list[OutboxEntry]:
        if channel_key is None:
            rows = await self._fetch(SELECT_PENDING)
        else:
            rows = await self._fetch(SELECT_CHANNEL_PENDING, channel_key)
        return [outbox_from_row(row) for row in rows]

    async def outbox_entries(self, world_id: str) -> list[OutboxEntry]:
        async def read(connection: asyncpg.Connection) -> list[Any]:
            found = await connection.fetchrow(SELECT_WORLD, world_id)
            if found is None or world_from_row(found).parent_id is None:
                return list(await connection.fetch(SELECT_WORLD_OUTBOX, world_id))
            return await _lineage_rows(connection, world_from_row(found), SELECT_OUTBOX_RANGE)

        read_rows = await self.in_transaction(read, f"read the outbox of world {world_id!r}", isolation="repeatable_read",
                                              readonly=True)
        return sorted((outbox_from_row(row) for row in read_rows), key=lambda entry: entry.id or 0)

    async def mark_posted(self, entry_id: int, platform_message_id: str) -> None:
        await self._update_entry(entry_id, MARK_POSTED, (platform_message_id, time_text(utcnow()), entry_id), "mark")

    async def posted_ids(self, channel_key: str, since: datetime) -> set[str]:
        return {row[0] for row in await self._fetch(SELECT_POSTED_IDS, channel_key, time_text(since))}

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
        async def update(connection: asyncpg.Connection) -> None:
            if _count(await connection.execute(sql, *params)) == 0:
                raise StorageError(f"no outbox entry with id {entry_id}")

        await self._in_statement(update, f"{verb} outbox entry {entry_id}")

    async def get_outbox(self, entry_id: int) -> OutboxEntry:
        rows = await self._fetch(SELECT_OUTBOX, entry_id)
        if not rows:
            raise NotStoredError(f"no outbox entry with id {entry_id}")
        return outbox_from_row(rows[0])

    async def held_outbox(self, channel_key: str) -> list[OutboxEntry]:
        return [outbox_from_row(row) for row in await self._fetch(SELECT_CHANNEL_HELD, channel_key)]

    async def decide_outbox(
        self, entry_id: int, status: OutboxStatus, audit: AuditRecord, *, text: str | None = None,
        identity: dict[str, Any] | None = None,
    ) -> OutboxEntry:
        stored_identity = to_json(identity) if identity is not None else None
        params = (OutboxStatus(enum_value(status)).value, text, stored_identity, entry_id)
        record = audit_params(audit)

        async def decide(connection: asyncpg.Connection) -> OutboxEntry:
            row = await connection.fetchrow(DECIDE_OUTBOX, *params)
            if row is None:
                raise StorageError(f"message {entry_id} is not waiting for review any more")
            await connection.execute(INSERT_AUDIT, *record)
            return outbox_from_row(row)

        return await self.in_transaction(decide, f"decide on outbox entry {entry_id}")

    # -- audit --------------------------------------------------------------------------------

    async def record_audit(self, record: AuditRecord) -> None:
        params = audit_params(record)

        async def insert(connection: asyncpg.Connection) -> None:
            await connection.execute(INSERT_AUDIT, *params)

        await self._in_statement(insert, f"record an audit entry for {record.channel_key}")

    async def audit_log(self, channel_key: str) -> list[AuditRecord]:
        return [audit_from_row(row) for row in await self._fetch(SELECT_CHANNEL_AUDIT, channel_key)]

    # -- platform adapters' own state ----------------------------------------------------------

    async def adapter_state(self, platform: str, key: str) -> dict[str, Any] | None:
        rows = await self._fetch(SELECT_ADAPTER_STATE, platform, key)
        return json.loads(rows[0][0]) if rows else None

    async def set_adapter_state(self, platform: str, key: str, value: dict[str, Any] | None) -> None:
        params: tuple[Any, ...]
        if value is None:
            sql, params = DELETE_ADAPTER_STATE, (platform, key)
        else:
            sql, params = UPSERT_ADAPTER_STATE, (platform, key, to_json(value), time_text(utcnow()))

        async def write(connection: asyncpg.Connection) -> None:
            await connection.execute(sql, *params)

        await self._in_statement(write, f"store {platform} state {key!r}")

    async def take_adapter_state(self, platform: str, key: str) -> dict[str, Any] | None:
        async def take(connection: asyncpg.Connection) -> str | None:
            return await connection.fetchval(TAKE_ADAPTER_STATE, platform, key)

        value = await self._in_statement(take, f"take {platform} state {key!r}")
        return json.loads(value) if value is not None else None

    async def forget_stale_adapter_state(self, platform: str, prefix: str, stored_before: datetime) -> None:
        async def forget(connection: asyncpg.Connection) -> None:
            await connection.execute(DELETE_STALE_ADAPTER_STATE, platform, len(prefix), prefix,
                                     time_text(stored_before))

        await self._in_statement(forget, f"forget stale {platform} state {prefix}…")

    # -- inbox --------------------------------------------------------------------------------

    async def inbox_add(self, channel_key: str, event: dict[str, Any]) -> int:
        params = (channel_key, to_json(event), time_text(utcnow()))

        async def write(connection: asyncpg.Connection) -> int:
            return int(await connection.fetchval(INSERT_INBOX, *params))

        return await self._in_statement(write, f"receive a message in {channel_key}")

    async def inbox_done(self, entry_id: int) -> None:
        async def write(connection: asyncpg.Connection) -> None:
            await connection.execute(DELETE_INBOX, entry_id)

        await self._in_statement(write, f"settle received message {entry_id}")

    async def inbox_pending(self, channel_key: str | None = None) -> list[tuple[int, str, dict[str, Any]]]:
        rows = await (self._fetch(SELECT_INBOX) if channel_key is None else self._fetch(SELECT_CHANNEL_INBOX, channel_key))
        return [(int(r[0]), str(r[1]), json.loads(r[2])) for r in rows]

    # -- channel ownership --------------------------------------------------------------------

    async def take_lease(self, channel_key: str, worker: str, ttl_s: float) -> int | None:
        async def take(connection: asyncpg.Connection) -> int | None:
            token = await connection.fetchval(TAKE_LEASE, channel_key, worker, float(ttl_s))
            return int(token) if token is not None else None

        return await self._in_statement(take, f"take the lease of {channel_key}")

    async def renew_leases(self, worker: str, ttl_s: float) -> dict[str, int]:
        async def renew(connection: asyncpg.Connection) -> dict[str, int]:
            return {r[0]: int(r[1]) for r in await connection.fetch(RENEW_LEASES, float(ttl_s), worker)}

        return await self._in_statement(renew, f"renew the leases of worker {worker}")

    async def release_leases(self, worker: str, channel_keys: Sequence[str] | None = None) -> None:
        async def release(connection: asyncpg.Connection) -> None:
            if channel_keys is None:
                await connection.execute(RELEASE_LEASES, worker)
            else:
                await connection.execute(RELEASE_CHANNEL_LEASES, worker, list(channel_keys))

        await self._in_statement(release, f"release the leases of worker {worker}")

    async def check_writes(self) -> None:
        """DatabaseSetupError, with the grants to make, when this database's user may not write what
        a worker writes; for ``troupe doctor``, which opens it read-only."""
        async def check(connection: asyncpg.Connection) -> None:
            await refuse_missing_writes(connection, self.url)

        async with self._operation() as pool:
            await self._on_connection(pool, f"read {self.shown_url}", check, repeatable=True)

    async def leases(self) -> list[Lease]:
        return [Lease(channel_key=r[0], worker=r[1], token=r[2], expires_at=r[3], expired=r[4])
                for r in await self._fetch(SELECT_LEASES)]

    async def worker_alive(self, worker: WorkerRecord) -> None:
        async def alive(connection: asyncpg.Connection) -> None:
            await connection.execute(UPSERT_WORKER, worker.id, worker.host, worker.pid, time_text(worker.started_at),
                                     float(worker.lease_s))

        await self._in_statement(alive, f"note that worker {worker.id} runs")

    async def workers(self) -> list[WorkerRecord]:
        return [WorkerRecord(id=r[0], host=r[1], pid=r[2], started_at=datetime.fromisoformat(r[3]), seen_at=r[4],
                             lease_s=r[5])
                for r in await self._fetch(SELECT_WORKERS)]

    async def worker_gone(self, worker: str) -> None:
        async def gone(connection: asyncpg.Connection) -> None:
            await connection.execute(DELETE_WORKER, worker)

        await self._in_statement(gone, f"forget worker {worker}")

    # -- wake-ups between workers ---------------------------------------------------------------

    async def notify(self, topic: str, payload: str) -> None:
        """``NOTIFY`` every worker on the database (this one included) listening to ``topic``."""

        async def send(connection: asyncpg.Connection) -> None:
            await connection.execute(NOTIFY, topic, payload)

        await self.in_transaction(send, f"wake the workers listening to {topic}")

    async def listen(self, topic: str, callback: Callable[[str], object]) -> None:
        """``LISTEN`` on a connection of its own, kept open (and opened again if it drops)."""
        self._listeners().setdefault(topic, []).append(callback)
        await self._listening()
        assert self._listener is not None
        if topic not in self._topics:
            await self._listener.add_listener(topic, self._heard)
            self._topics.add(topic)

    async def _listening(self) -> None:
        if self._listener is not None and not _closed(self._listener):
            return
        try:
            self._listener = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT_S,
                                                   server_settings={"application_name": "troupe (wake-ups)"})
        except CONNECTION_ERRORS as error:
            raise StorageError(str(connection_problem(self.url, error))) from error
        self._topics = set()
        self._listener.add_termination_listener(self._listener_lost)

    def _heard(self, connection: object, pid: int, topic: str, payload: str) -> None:
        for callback in list(self._listeners().get(topic, ())):
            callback(payload)

    def _listener_lost(self, connection: object) -> None:
        """The wake-up connection dropped: listen again (missed wake-ups are found by the workers'
        regular look at leases and the inbox)."""
        if self._state.closing or self._state.closed:
            return
        task = asyncio.ensure_future(self._listen_again())
        self._relisten = task

    async def _listen_again(self) -> None:
        topics = list(self._listeners())
        for delay in (0.5, 1, 2, 5, 10, 30):
            await asyncio.sleep(delay)
            if self._state.closing or self._state.closed:
                return
            try:
                self._listener = None
                await self._listening()
                assert self._listener is not None
                for topic in topics:
                    await self._listener.add_listener(topic, self._heard)
                    self._topics.add(topic)
                log.info("listening for wake-ups on %s again", self.shown_url)
                return
            except (StorageError, *CONNECTION_ERRORS) as error:
                log.warning("could not listen for wake-ups on %s yet: %s", self.shown_url, error)

    # -- usage --------------------------------------------------------------------------------

    async def usage(self, world_id: str) -> list[UsageRow]:
        return [usage_from_row(row) for row in await self._fetch(SELECT_USAGE, world_id)]


async def _branch_events(connection: asyncpg.Connection, record: WorldRecord, *, recent: bool) -> list[Any]:
    """A branch's log (its recent part, with ``recent``) from the stretches it shares and its own."""
    floor = 0
    if recent:
        own = await connection.fetchval(SELECT_LAST_EVENT, record.id)
        floor = max(lineage.last_event(record, own) - RECENT_EVENTS_HELD, 0)
    return await _lineage_rows(connection, record, SELECT_EVENT_RANGE, floor=floor)


async def _lineage_rows(connection: asyncpg.Connection, record: WorldRecord, range_sql: str, *,
                        floor: int = 0) -> list[Any]:
    """``range_sql``'s rows (world id, after, up to) over a branch's lineage: the stretches it shares
    with its ancestors, then its own."""

    async def world(world_id: str) -> WorldRecord | None:
        row = await connection.fetchrow(SELECT_WORLD, world_id)
        return world_from_row(row) if row is not None else None

    async def rows(world_id: str, after: int, upto: int) -> list[Any]:
        return list(await connection.fetch(range_sql, world_id, after, upto))

    return await lineage.read(await lineage.segments(record, world), rows, floor=floor)
