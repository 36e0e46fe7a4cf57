"""Group commit: every write goes through one writer task.

Writes that queue up while a transaction runs are applied together in the next one, so hundreds of
channels stepping at once cost a handful of commits instead of hundreds; each write still succeeds
or fails on its own (a savepoint isolates it when the group cannot be applied in one piece).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from bots.storage.base import OutboxEntry, StaleOwnerError, StepWrite, StorageError
from bots.storage.rows import (
    episode_params,
    event_params,
    memory_params,
    outbox_from_row,
    outbox_params,
    usage_params,
)
from bots.storage.sqlite.connection import in_connection_thread, rollback
from bots.storage.sqlite.statements import (
    INSERT_EPISODE,
    INSERT_EVENT,
    INSERT_OUTBOX,
    SELECT_FENCE,
    UPSERT_MEMORY,
    UPSERT_USAGE,
    WORLD_EXISTS,
    select_outbox_by_keys,
    world_update,
)

log = logging.getLogger(__name__)

#: Most queued writes applied in one transaction; bounds the latency a write can add to others.
MAX_GROUP = 512
#: (world, event) pairs looked up per query when reading back outbox ids.
MAX_KEYS_PER_QUERY = 1000

#: A write other than a step: runs inside the group transaction (in its own savepoint), in the
#: connection's thread, so it uses the plain ``sqlite3`` connection and must not block on the loop.
Operation = Callable[[sqlite3.Connection], Any]
#: ``(True, value)`` or ``(False, exception)`` for one queued write.
Outcome = tuple[bool, Any]


@dataclass(eq=False, slots=True)
class EncodedStep:
    """A StepWrite turned into statement parameters, done by the caller before it queues."""

    world_id: str
    world_update: tuple[str, tuple[Any, ...]] | None
    events: list[tuple[Any, ...]]
    memories: list[tuple[Any, ...]]
    episodes: list[tuple[Any, ...]]
    usage: list[tuple[Any, ...]]
    outbox: list[tuple[Any, ...]]
    keys: list[tuple[str, int]]
    #: (channel key, worker, token): written only while that worker holds the channel's lease.
    fence: tuple[str, str, int] | None = None

    @classmethod
    def of(cls, write: StepWrite) -> EncodedStep:
        wid = write.world_id
        return cls(
            world_id=wid,
            world_update=world_update(wid, write.world) if write.world else None,
            events=[event_params(wid, e) for e in write.events],
            memories=[memory_params(wid, name, memory.state) for name, memory in write.memories.items() if memory.row],
            episodes=[
                row for name, memory in write.memories.items() for row in episode_params(wid, name, memory)
            ],
            usage=[usage_params(wid, row) for row in write.usage],
            outbox=[outbox_params(entry) for entry in write.outbox],
            keys=[(entry.world_id, entry.event_id) for entry in write.outbox],
            fence=(write.fence.channel_key, write.fence.worker, write.fence.token) if write.fence else None,
        )


@dataclass(eq=False, slots=True)
class _Queued:
    future: asyncio.Future[Any]
    #: What the write does, for error messages ("write a step of world 'w1'").
    what: str
    step: EncodedStep | None = None
    operation: Operation | None = None


class GroupCommitWriter:
    """The task that applies queued writes group by group on the writing connection.

    ``commits`` counts transactions, ``step_writes`` step writes. ``closing``: ``close`` was called,
    or the task stopped on an error; no write may be queued any more.
    """

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.path = path
        self.commits = 0
        self.step_writes = 0
        self.closing = False
        self._db = db
        self._queue: list[_Queued] = []
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._write_loop(), name=f"storage writer {path.name}")

    async def write(self, what: str, *, step: EncodedStep | None = None, operation: Operation | None = None) -> Any:
        """Queue a write for the next group; returns its result once it is committed.

        A caller cancelled while its write waits in the queue withdraws it; once the task has
        taken it, it is committed (or not) with its group regardless.
        """
        queued = _Queued(asyncio.get_running_loop().create_future(), what, step=step, operation=operation)
        self._queue.append(queued)
        self._wakeup.set()
        return await queued.future

    async def close(self) -> BaseException | None:
        """Apply every queued write, then stop; the error that had stopped the task, if one did."""
        self.closing = True
        self._wakeup.set()
        await asyncio.wait([self._task])
        return None if self._task.cancelled() else self._task.exception()

    async def _write_loop(self) -> None:
        """Apply queued writes group by group until closed and drained."""
        queue = self._queue
        try:
            while True:
                if not queue:
                    if self.closing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                taken = queue[:MAX_GROUP]
                del queue[:MAX_GROUP]
                group = [q for q in taken if not q.future.cancelled()]
                if group:
                    await self._commit_group(group)
        except BaseException as error:
            # Never leave a caller waiting on a writer that is gone.
            failure = StorageError(f"the writer of {self.path} stopped: {error!r}")
            for queued in queue:
                if not queued.future.done():
                    queued.future.set_exception(failure)
            queue.clear()
            self.closing = True
            raise

    async def _commit_group(self, group: list[_Queued]) -> None:
        try:
            outcomes, commits, step_writes = await in_connection_thread(self._db, _apply_group, group)
        except BaseException as error:
            for queued in group:
                if not queued.future.done():
                    failure = StorageError(f"could not {queued.what}: {error!r}")
                    failure.__cause__ = error
                    queued.future.set_exception(failure)
            raise
        self.commits += commits
        self.step_writes += step_writes
        for queued, (ok, value) in zip(group, outcomes):
            if queued.future.done():
                continue
            if ok:
                queued.future.set_result(value)
            else:
                queued.future.set_exception(value)


# -- the group commit, in the writer connection's thread ------------------------------------------


def _apply_group(db: sqlite3.Connection, group: list[_Queued]) -> tuple[list[Outcome], int, int]:
    """Apply a group of writes: its outcomes, the commits made and the steps written."""
    if len(group) == 1:
        # Alone, its own transaction is its isolation: no savepoint round trips.
        outcomes = [_apply_alone(db, group[0])]
        commits = int(outcomes[0][0])
    else:
        try:
            outcomes = _apply_together(db, group)
            commits = 1
        except Exception as error:
            # The transaction as a whole failed (disk full, I/O error...): one by one.
            log.warning("group of %d writes failed (%s); applying them one by one", len(group), error)
            rollback(db)
            outcomes = [_apply_alone(db, queued) for queued in group]
            commits = sum(1 for ok, _ in outcomes if ok)
    step_writes = sum(1 for (ok, _), queued in zip(outcomes, group) if ok and queued.step is not None)
    return outcomes, commits, step_writes


def _apply_together(db: sqlite3.Connection, group: list[_Queued]) -> list[Outcome]:
    """One transaction for the whole group; a failing write is rolled back to its savepoint."""
    db.execute("BEGIN IMMEDIATE")
    outcomes: list[Outcome] = []
    for run in _runs(group):
        if len(run) > 1:
            outcomes.extend(_apply_steps_together(db, run))
        else:
            outcomes.append(_apply_isolated(db, run[0]))
    db.execute("COMMIT")
    return outcomes


def _apply_steps_together(db: sqlite3.Connection, run: list[_Queued]) -> list[Outcome]:
    """Steps batched statement by statement; if any part fails, each step alone instead."""
    db.execute("SAVEPOINT steps")
    try:
        results = _apply_steps(db, [q.step for q in run if q.step is not None])
    except (sqlite3.Error, StorageError) as error:
        db.execute("ROLLBACK TO steps")
        db.execute("RELEASE steps")
        log.debug("batched steps failed (%s); applying them one by one", error)
        return [_apply_isolated(db, queued) for queued in run]
    db.execute("RELEASE steps")
    return [(True, result) for result in results]


def _apply_isolated(db: sqlite3.Connection, queued: _Queued) -> Outcome:
    db.execute("SAVEPOINT one")
    try:
        value = _apply(db, queued)
    except Exception as error:
        db.execute("ROLLBACK TO one")
        db.execute("RELEASE one")
        return False, _failure(queued.what, error)
    db.execute("RELEASE one")
    return True, value


def _apply_alone(db: sqlite3.Connection, queued: _Queued) -> Outcome:
    """The last resort: the write in a transaction of its own."""
    try:
        db.execute("BEGIN IMMEDIATE")
        value = _apply(db, queued)
        db.execute("COMMIT")
    except Exception as error:
        rollback(db)
        return False, _failure(queued.what, error)
    return True, value


def _apply(db: sqlite3.Connection, queued: _Queued) -> Any:
    if queued.step is not None:
        return _apply_steps(db, [queued.step])[0]
    assert queued.operation is not None
    return queued.operation(db)


#: The rows of an encoded step written as they are, each by its statement, in this order.
STEP_TABLES = ((INSERT_EVENT, "events"), (UPSERT_MEMORY, "memories"), (INSERT_EPISODE, "episodes"),
               (UPSERT_USAGE, "usage"))


def _apply_steps(db: sqlite3.Connection, steps: list[EncodedStep]) -> list[list[OutboxEntry]]:
    """Write steps with one statement per table (and per world-update shape)."""
    for step in steps:
        if step.fence is not None:
            check_fence(db, *step.fence)
    for sql, params in _update_runs(steps):
        cursor = db.executemany(sql, params)
        if cursor.rowcount != len(params):
            # Batched, the failing step is found when the steps are retried one by one.
            raise StorageError(f"no world with id {params[0][-1]!r}" if len(params) == 1 else "unknown world")
    outbox = [row for step in steps for row in step.outbox]
    try:
        for sql, table in STEP_TABLES:
            rows = [row for step in steps for row in getattr(step, table)]
            if rows:
                db.executemany(sql, rows)
        if outbox:
            db.executemany(INSERT_OUTBOX, outbox)
    except sqlite3.IntegrityError:
        # A step that updates nothing of its world's row meets a missing world here first.
        missing = [step.world_id for step in steps if db.execute(WORLD_EXISTS, (step.world_id,)).fetchone() is None]
        if missing:
            raise StorageError(f"no world with id {missing[0]!r}" if len(steps) == 1 else "unknown world") from None
        raise
    if not outbox:
        return [[] for _ in steps]
    stored = _outbox_by_keys(db, list(dict.fromkeys(k for step in steps for k in step.keys)))
    return [[stored[key] for key in step.keys] for step in steps]


def check_fence(db: sqlite3.Connection, channel_key: str, worker: str, token: int) -> None:
    """Refuse the write unless ``worker`` still holds ``channel_key``'s lease with ``token``."""
    row = db.execute(SELECT_FENCE, (channel_key, worker)).fetchone()
    if row is None or row[0] != token:
        raise StaleOwnerError(f"{channel_key} is no longer run by this worker (lease {token} was taken over); "
                              "its new owner carries on from storage")


def _outbox_by_keys(db: sqlite3.Connection, keys: list[tuple[str, int]]) -> dict[tuple[str, int], OutboxEntry]:
    found: dict[tuple[str, int], OutboxEntry] = {}
    for start in range(0, len(keys), MAX_KEYS_PER_QUERY):
        chunk = keys[start : start + MAX_KEYS_PER_QUERY]
        params = [value for key in chunk for value in key]
        for row in db.execute(select_outbox_by_keys(len(chunk)), params).fetchall():
            entry = outbox_from_row(row)
            found[(entry.world_id, entry.event_id)] = entry
    return found


def _update_runs(steps: list[EncodedStep]) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """World updates in queue order, consecutive ones of the same shape in one ``executemany``."""
    sql: str | None = None
    params: list[tuple[Any, ...]] = []
    for step in steps:
        if step.world_update is None:
            continue
        step_sql, step_params = step.world_update
        if step_sql != sql and params:
            assert sql is not None
            yield sql, params
            params = []
        sql = step_sql
        params.append(step_params)
    if params:
        assert sql is not None
        yield sql, params


def _runs(group: list[_Queued]) -> Iterator[list[_Queued]]:
    """Consecutive step writes together; any other write on its own. Queue order is kept."""
    run: list[_Queued] = []
    for queued in group:
        if queued.step is None:
            if run:
                yield run
                run = []
            yield [queued]
        else:
            run.append(queued)
    if run:
        yield run


def _failure(what: str, error: BaseException) -> BaseException:
    """The exception a caller sees: ours as is, SQLite's as StorageError, bugs unchanged."""
    if isinstance(error, StorageError):
        return error
    if isinstance(error, sqlite3.Error):
        failure = StorageError(f"could not {what}: {error}")
        failure.__cause__ = error
        return failure
    return error
