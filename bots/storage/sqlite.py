"""The SQLite backend: one WAL database file, versioned migrations, and group commit.

Every write goes through one writer task. Writes that queue up while a transaction runs are
applied together in the next one, so hundreds of channels stepping at once cost a handful of
commits instead of hundreds; each write still succeeds or fails on its own (a savepoint isolates
it when the group cannot be applied in one piece). Reads use a second connection, so they never
wait for the writer and never see uncommitted rows.

Durability: a write that returned is committed. With ``synchronous=NORMAL`` in WAL mode a killed
process loses nothing that was committed; a power cut may lose the last commits but never leaves
the file inconsistent.

The model layer (response cache, server profiles) may share the file: its tables (``llm_responses``, ``model_profiles``) are not ours and WAL
lets both connect at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import aiosqlite
from filelock import FileLock, Timeout
from pydantic import BaseModel

from bots.storage.base import (
    AuditRecord,
    MemoryWrite,
    NotStoredError,
    OutboxEntry,
    OutboxStatus,
    RECENT_EPISODES_HELD,
    RECENT_EVENTS_HELD,
    PersonaRecord,
    StepWrite,
    Storage,
    StorageError,
    StorageUnavailableError,
    StoredWorld,
    UsageRow,
    WorldRecord,
    WorldStatus,
    utcnow,
)
from simulation.agent import AgentState
from simulation.events import Event
from simulation.memory import Episode

log = logging.getLogger(__name__)

#: How long a connection waits for another one (another process, the LLM cache) to release a lock.
BUSY_TIMEOUT_MS = 10_000
#: Most queued writes applied in one transaction; bounds the latency a write can add to others.
MAX_GROUP = 512
#: (world, event) pairs looked up per query when reading back outbox ids.
MAX_KEYS_PER_QUERY = 1000

# -- schema -----------------------------------------------------------------------------------

SCHEMA_V1 = """
CREATE TABLE worlds (
    id            TEXT PRIMARY KEY,
    channel_key   TEXT NOT NULL,
    name          TEXT NOT NULL,
    situation     TEXT,
    status        TEXT NOT NULL CHECK (status IN ('active', 'paused', 'stopped')),
    config        TEXT NOT NULL DEFAULT '{}',
    clock         TEXT NOT NULL DEFAULT '{}',
    policy        TEXT NOT NULL DEFAULT '{}',
    targeted_talk TEXT NOT NULL DEFAULT 'room',
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

-- A channel is bound to at most one world that is not stopped.
CREATE UNIQUE INDEX worlds_bound_channel ON worlds (channel_key) WHERE status <> 'stopped';

CREATE TABLE personas (
    world_id TEXT NOT NULL REFERENCES worlds (id) ON DELETE CASCADE,
    name     TEXT NOT NULL,
    spec     TEXT NOT NULL,
    identity TEXT NOT NULL DEFAULT '{}',
    position INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (world_id, name)
);

-- One AgentState (JSON) per persona, replaced whole at every step.
CREATE TABLE memories (
    world_id TEXT NOT NULL REFERENCES worlds (id) ON DELETE CASCADE,
    persona  TEXT NOT NULL,
    state    TEXT NOT NULL,
    PRIMARY KEY (world_id, persona)
);

-- The primary key doubles as the index for reading a world's log in order.
CREATE TABLE events (
    world_id   TEXT NOT NULL REFERENCES worlds (id) ON DELETE CASCADE,
    id         INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    step       INTEGER NOT NULL,
    time       TEXT NOT NULL,
    source     TEXT NOT NULL,
    type       TEXT NOT NULL,
    content    TEXT NOT NULL,
    target     TEXT,
    recipients TEXT NOT NULL DEFAULT '[]',
    model      TEXT,
    meta       TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (world_id, id)
);

CREATE TABLE outbox (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    world_id            TEXT NOT NULL REFERENCES worlds (id),
    channel_key         TEXT NOT NULL,
    event_id            INTEGER NOT NULL,
    persona             TEXT NOT NULL,
    identity            TEXT NOT NULL DEFAULT '{}',
    text                TEXT NOT NULL,
    thread              TEXT,
    status              TEXT NOT NULL
        CHECK (status IN ('pending', 'posted', 'held', 'blocked', 'failed')),
    verdict             TEXT NOT NULL DEFAULT '{}',
    platform_message_id TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    error               TEXT,
    created_at          TEXT NOT NULL,
    posted_at           TEXT,
    UNIQUE (world_id, event_id)
);

CREATE INDEX outbox_by_status ON outbox (status, channel_key, id);

-- World-level usage has persona ''.
CREATE TABLE usage (
    world_id          TEXT NOT NULL REFERENCES worlds (id) ON DELETE CASCADE,
    persona           TEXT NOT NULL DEFAULT '',
    calls             INTEGER NOT NULL DEFAULT 0,
    cached_calls      INTEGER NOT NULL DEFAULT 0,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd          REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (world_id, persona)
);
"""

#: Migration ``n`` (1-based) brings the schema from version ``n - 1`` to ``n`` (``PRAGMA
#: user_version``). Append only: a released script never changes.
SCHEMA_V2 = """
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    world_id TEXT,
    channel_key TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    outbox_id INTEGER,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_by_channel ON audit (channel_key, id);
"""

SCHEMA_V3 = """
CREATE TABLE adapter_state (
    platform TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (platform, key)
);
"""

SCHEMA_V4 = """
CREATE TABLE inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_key TEXT NOT NULL,
    event TEXT NOT NULL,
    received_at TEXT NOT NULL
);
"""

#: Episodes move out of the memory row into a table of their own, one row each, appended as they
#: happen: a write no longer rewrites a persona's whole past. The memory row keeps the rest of its
#: state; its persona lives in the persona record.
SCHEMA_V5 = """
CREATE TABLE episodes (
    world_id TEXT NOT NULL REFERENCES worlds (id) ON DELETE CASCADE,
    persona  TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    episode  TEXT NOT NULL,
    PRIMARY KEY (world_id, persona, seq)
) WITHOUT ROWID;
INSERT INTO episodes (world_id, persona, seq, episode)
    SELECT m.world_id, m.persona, e.key, e.value
    FROM memories AS m, json_each(m.state, '$.episodic.episodes') AS e;
UPDATE memories SET state = json_remove(state, '$.persona', '$.episodic.episodes');
"""

MIGRATIONS: tuple[str, ...] = (SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5)

CONNECTION_PRAGMAS = (
    f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
    "PRAGMA foreign_keys = ON",
    "PRAGMA synchronous = NORMAL",
)

# -- opening: what can be wrong with the file, and what to do about it ------------------------

#: Tables another part of Troupe may put in the file before the bot first opens it: the response
#: cache shares the database unless ``llm.cache_path`` says otherwise.
SHARED_TABLES = frozenset({"llm_responses", "model_profiles"})
_CREATED_TABLE = re.compile(r"CREATE TABLE (\w+)")


@dataclass(frozen=True)
class DatabaseProblem:
    """What is wrong with a database file and what to do about it: one line for a command, or a
    doctor's check and its fix."""

    detail: str
    fix: str = ""

    def __str__(self) -> str:
        return f"{self.detail}: {self.fix}" if self.fix else self.detail


class ExplainedStorageError(StorageError):
    """A StorageError that says what to do; ``problem`` holds what is wrong and the fix apart."""

    def __init__(self, problem: DatabaseProblem | str) -> None:
        self.problem = problem if isinstance(problem, DatabaseProblem) else DatabaseProblem(problem)
        super().__init__(str(self.problem))


class DatabaseSetupError(ExplainedStorageError):
    """The database cannot be used where the settings put it: a setting or the file system must
    change (another process holds it, it is not writable, not Troupe's or too new), not its data."""


class DatabaseInUseError(DatabaseSetupError):
    """Another Troupe process runs the worlds of this database."""


class DatabaseNotWritableError(DatabaseSetupError):
    """This user may not write the database file, or the folder SQLite keeps its journal in."""


class NotATroupeDatabaseError(DatabaseSetupError):
    """The file is another program's SQLite database: adopting it would write Troupe's tables into it."""


class DatabaseDamagedError(ExplainedStorageError):
    """The file is damaged (or not SQLite at all): only a backup brings its data back."""


def _sqlite_code(error: BaseException) -> int | None:
    """SQLite's primary result code of ``error`` (``SQLITE_READONLY`` for ``SQLITE_READONLY_DIRECTORY``)."""
    code = getattr(error, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _sqlite_cause(error: BaseException) -> sqlite3.Error | None:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, sqlite3.Error):
            return seen
        seen = seen.__cause__
    return None


def unwritable_place(path: Path) -> Path | None:
    """The file or folder that keeps this user from writing the database at ``path``, or None.

    SQLite writes the ``-wal`` and ``-shm`` files beside the database, and Troupe its lock file, so
    the folder must be writable too; a database not created yet needs its nearest existing folder.
    """
    if path.exists():
        beside = [path, *(path.with_name(path.name + end) for end in ("-wal", "-shm", ".lock"))]
        for place in beside:
            if place.exists() and not os.access(place, os.W_OK):
                return place
        folder = path.parent
    else:
        folder = next((p for p in path.parents if p.exists()), Path("."))
    return None if os.access(folder, os.W_OK | os.X_OK) else folder


def not_writable_problem(path: Path, place: Path) -> DatabaseProblem:
    if place == path:
        detail = f"the database {path} is not writable for this user"
    else:
        what = "folder" if place.is_dir() else "file"
        detail = f"the {what} {place} is not writable for this user, so Troupe cannot write its database {path}"
    return DatabaseProblem(
        detail,
        f"make it writable for the user running Troupe (chmod u+w {place}, or chown), "
        "or point TROUPE_DATA_DIR (or TROUPE_BOT_DATABASE) elsewhere",
    )


def not_writable_error(path: Path) -> DatabaseNotWritableError | None:
    """The error saying which file or folder keeps this user from writing the database, if one does."""
    place = unwritable_place(path)
    return DatabaseNotWritableError(not_writable_problem(path, place)) if place is not None else None


def damaged_problem(path: Path, error: BaseException) -> DatabaseProblem:
    if _sqlite_code(error) == sqlite3.SQLITE_NOTADB:
        detail = f"{path} is not a usable SQLite database ({error})"
    else:
        detail = f"the database {path} is damaged ({error})"
    return DatabaseProblem(detail,
                           "run `troupe doctor`; restore a backup (docs/configuration.md, “Backup and restore”)")


def newer_schema_problem(path: Path, version: int) -> DatabaseProblem:
    return DatabaseProblem(
        f"the database {path} has schema version {version}, newer than this Troupe knows (up to "
        f"{len(MIGRATIONS)}): it was written by a newer Troupe",
        "upgrade Troupe to use it, or restore a backup made with this version",
    )


def schema_problem(path: Path, version: int, tables: Iterable[str]) -> DatabaseProblem | None:
    """Why the file at ``path``, with this ``user_version`` and these tables, is no Troupe database
    this Troupe may open (and migrate), or None.

    A fresh file holds no tables but the response cache's; a Troupe database holds every table its
    schema version created and none of a later version's (which its upgrade would create again).
    """
    if version > len(MIGRATIONS):
        return newer_schema_problem(path, version)
    found = {t for t in tables if not t.startswith("sqlite_")}
    created = [set(_CREATED_TABLE.findall(script)) for script in MIGRATIONS]
    if version == 0:
        unexpected, missing = found - SHARED_TABLES, set()
    else:
        unexpected, missing = set().union(*created[version:]) & found, set().union(*created[:version]) - found
    reasons = [f"{what} {', '.join(sorted(names))}"
               for what, names in (("it has tables", unexpected), ("it lacks tables", missing)) if names]
    if not reasons:
        return None
    if version:
        reasons.insert(0, f"schema version {version}")
    return DatabaseProblem(
        f"{path} is not a Troupe database ({'; '.join(reasons)})",
        "point TROUPE_BOT_DATABASE (or TROUPE_DATA_DIR) elsewhere; Troupe changes nothing in it",
    )


def storage_failure(path: Path, error: BaseException, doing: str) -> StorageError:
    """``error`` (SQLite's, or a StorageError caused by one) as the StorageError that says what to
    do: a damaged file, a full disk and a read-only place each have their own message."""
    if isinstance(error, ExplainedStorageError):
        return error
    cause = _sqlite_cause(error)
    code = _sqlite_code(cause) if cause is not None else None
    failure: StorageError
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        failure = DatabaseDamagedError(damaged_problem(path, cause))
    elif code == sqlite3.SQLITE_FULL:
        failure = StorageError(f"the disk holding {path} is full ({cause}): free some space there, then start again")
    elif code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM) and (
        refused := not_writable_error(path)
    ) is not None:
        failure = refused
    elif isinstance(error, StorageError):
        return error
    else:
        failure = StorageError(f"could not {doing} {path}: {error}")
    failure.__cause__ = cause or error
    return failure


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
            cannot_share = _sqlite_code(error) in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN)
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


# -- statements -------------------------------------------------------------------------------

INSERT_INBOX = "INSERT INTO inbox (channel_key, event, received_at) VALUES (?, ?, ?)"
DELETE_INBOX = "DELETE FROM inbox WHERE id = ?"
SELECT_INBOX = "SELECT id, channel_key, event FROM inbox ORDER BY id"

WORLD_COLUMNS = (
    "id, channel_key, name, situation, status, config, clock, policy, targeted_talk, created_at, updated_at"
)
#: Fields ``update_world`` and ``StepWrite.world`` may change, and how each is stored.
WORLD_FIELDS = ("name", "situation", "status", "config", "clock", "policy", "targeted_talk")
WORLD_JSON_FIELDS = frozenset({"config", "clock", "policy"})

INSERT_WORLD = f"INSERT INTO worlds ({WORLD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
SELECT_WORLD = f"SELECT {WORLD_COLUMNS} FROM worlds WHERE id = ?"
SELECT_CHANNEL_WORLD = f"SELECT {WORLD_COLUMNS} FROM worlds WHERE channel_key = ? AND status <> 'stopped'"
SELECT_ACTIVE_WORLDS = f"SELECT {WORLD_COLUMNS} FROM worlds WHERE status <> 'stopped' ORDER BY created_at, id"
SELECT_ALL_WORLDS = f"SELECT {WORLD_COLUMNS} FROM worlds ORDER BY created_at, id"
COUNT_EVENTS = "SELECT world_id, count(*) FROM events GROUP BY world_id"
STOP_WORLD = "UPDATE worlds SET status = 'stopped', updated_at = ? WHERE id = ?"
RESET_WORLD = "UPDATE worlds SET clock = ?, policy = ?, updated_at = ? WHERE id = ?"
DELETE_WORLD_EVENTS = "DELETE FROM events WHERE world_id = ?"
DELETE_WORLD_MEMORIES = "DELETE FROM memories WHERE world_id = ?"
DELETE_WORLD_EPISODES = "DELETE FROM episodes WHERE world_id = ?"
#: After a reset event ids start again; kept entries move out of the way of the new ones.
REKEY_WORLD_OUTBOX = "UPDATE outbox SET event_id = -id WHERE world_id = ? AND event_id > 0"
DROP_PERSONA_HELD_OUTBOX = (
    "UPDATE outbox SET status = 'blocked', error = 'its persona left the world before a moderator decided' "
    "WHERE world_id = ? AND persona = ? AND status = 'held'"
)
DROP_HELD_OUTBOX = (
    "UPDATE outbox SET status = 'blocked', error = 'the conversation was reset before a moderator decided' "
    "WHERE world_id = ? AND status = 'held'"
)

UPSERT_PERSONA = """
INSERT INTO personas (world_id, name, spec, identity, position) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (world_id, name) DO UPDATE SET
    spec = excluded.spec, identity = excluded.identity, position = excluded.position
"""
SELECT_PERSONAS = "SELECT name, spec, identity, position FROM personas WHERE world_id = ? ORDER BY position, name"
DELETE_PERSONA = "DELETE FROM personas WHERE world_id = ? AND name = ? RETURNING position"
#: The personas after a removed one move up, so places stay 0…n-1 in the world's order.
CLOSE_PERSONA_GAP = "UPDATE personas SET position = position - 1 WHERE world_id = ? AND position > ?"

UPSERT_MEMORY = """
INSERT INTO memories (world_id, persona, state) VALUES (?, ?, ?)
ON CONFLICT (world_id, persona) DO UPDATE SET state = excluded.state
"""
#: Each persona's memory with the place of the first episode it holds: the first one not folded
#: or the first of its recent past, whichever comes first. (Unread episodes already folded are
#: the summary's now, as in a prompt.)
SELECT_MEMORIES = f"""
SELECT m.persona, m.state, min(
    coalesce(json_extract(m.state, '$.episodic.consolidated_until'), 0),
    max(0, coalesce((SELECT max(e.seq) + 1 FROM episodes AS e WHERE e.world_id = m.world_id AND e.persona = m.persona), 0)
        - {RECENT_EPISODES_HELD}))
FROM memories AS m WHERE m.world_id = ? ORDER BY m.persona
"""
DELETE_MEMORY = "DELETE FROM memories WHERE world_id = ? AND persona = ?"
#: A write may repeat episodes an earlier one stored (it was cancelled after committing).
INSERT_EPISODE = "INSERT INTO episodes (world_id, persona, seq, episode) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
SELECT_EPISODES_FROM = "SELECT seq, episode FROM episodes WHERE world_id = ? AND persona = ? AND seq >= ? ORDER BY seq"
DELETE_EPISODES = "DELETE FROM episodes WHERE world_id = ? AND persona = ?"
DELETE_EPISODES_FROM = "DELETE FROM episodes WHERE world_id = ? AND persona = ? AND seq >= ?"

INSERT_EVENT = """
INSERT OR IGNORE INTO events
    (world_id, id, kind, step, time, source, type, content, target, recipients, model, meta)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
SELECT_EVENTS = """
SELECT id, kind, step, time, source, type, content, target, recipients, model, meta
FROM events WHERE world_id = ? ORDER BY id
"""
#: The last ``RECENT_EVENTS_HELD`` events of a world's log (ids run from 1 without gaps).
SELECT_RECENT_EVENTS = f"""
SELECT id, kind, step, time, source, type, content, target, recipients, model, meta
FROM events WHERE world_id = ?1
    AND id > coalesce((SELECT max(id) FROM events WHERE world_id = ?1), 0) - {RECENT_EVENTS_HELD}
ORDER BY id
"""

OUTBOX_COLUMNS = (
    "id, world_id, channel_key, event_id, persona, identity, text, thread, status, verdict, "
    "platform_message_id, attempts, error, created_at, posted_at"
)
INSERT_OUTBOX = """
INSERT INTO outbox
    (world_id, channel_key, event_id, persona, identity, text, thread, status, verdict,
     platform_message_id, attempts, error, created_at, posted_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (world_id, event_id) DO NOTHING
"""
SELECT_PENDING = f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'pending' ORDER BY id"
SELECT_CHANNEL_PENDING = (
    f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'pending' AND channel_key = ? ORDER BY id"
)
SELECT_WORLD_OUTBOX = f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE world_id = ? ORDER BY id"
MARK_POSTED = """
UPDATE outbox SET status = 'posted', platform_message_id = ?, posted_at = ?, error = NULL
WHERE id = ?
"""
SELECT_POSTED_IDS = """
SELECT platform_message_id FROM outbox
WHERE status = 'posted' AND channel_key = ? AND posted_at >= ? AND platform_message_id IS NOT NULL
ORDER BY id DESC LIMIT 1000
"""
COUNT_ATTEMPT = "UPDATE outbox SET attempts = attempts + 1 WHERE id = ?"
RECORD_ATTEMPT_ERROR = "UPDATE outbox SET attempts = attempts + 1, error = ? WHERE id = ?"
SET_OUTBOX_STATUS = "UPDATE outbox SET status = ?, error = ? WHERE id = ?"
SELECT_OUTBOX = f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = ?"
SELECT_CHANNEL_HELD = f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'held' AND channel_key = ? ORDER BY id"
DECIDE_OUTBOX = (
    "UPDATE outbox SET status = ?, text = COALESCE(?, text), identity = COALESCE(?, identity) "
    "WHERE id = ? AND status = 'held'"
)
AUDIT_COLUMNS = "id, at, world_id, channel_key, actor, action, outbox_id, detail"
INSERT_AUDIT = (
    "INSERT INTO audit (at, world_id, channel_key, actor, action, outbox_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
SELECT_ADAPTER_STATE = "SELECT value FROM adapter_state WHERE platform = ? AND key = ?"
UPSERT_ADAPTER_STATE = (
    "INSERT INTO adapter_state (platform, key, value, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (platform, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
)
DELETE_ADAPTER_STATE = "DELETE FROM adapter_state WHERE platform = ? AND key = ?"
SELECT_CHANNEL_AUDIT = f"SELECT {AUDIT_COLUMNS} FROM audit WHERE channel_key = ? ORDER BY id"

UPSERT_USAGE = """
INSERT INTO usage (world_id, persona, calls, cached_calls, prompt_tokens, completion_tokens, cost_usd)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (world_id, persona) DO UPDATE SET
    calls = excluded.calls, cached_calls = excluded.cached_calls,
    prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens,
    cost_usd = excluded.cost_usd
"""
SELECT_USAGE = """
SELECT persona, calls, cached_calls, prompt_tokens, completion_tokens, cost_usd
FROM usage WHERE world_id = ? ORDER BY persona
"""


def _select_outbox_by_keys(count: int) -> str:
    """Outbox rows for ``count`` (world_id, event_id) pairs, probing the unique index per pair."""
    values = ", ".join(["(?, ?)"] * count)
    return (
        f"WITH keys (world_id, event_id) AS (VALUES {values}) "
        f"SELECT {', '.join('o.' + c.strip() for c in OUTBOX_COLUMNS.split(','))} "
        "FROM keys JOIN outbox AS o ON o.world_id = keys.world_id AND o.event_id = keys.event_id"
    )


# -- encoding ---------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot store a {type(value).__name__} as JSON")


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_default)


def _json(value: Any) -> str:
    """Compact JSON; built once, since this runs for every row of every step."""
    if not value:
        if value == {}:
            return "{}"
        if value == []:
            return "[]"
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return _ENCODER.encode(value)


def _enum(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _world_params(record: WorldRecord) -> tuple[Any, ...]:
    return (
        record.id,
        record.channel_key,
        record.name,
        record.situation,
        _enum(record.status),
        _json(record.config),
        _json(record.clock),
        _json(record.policy),
        record.targeted_talk,
        _time(record.created_at),
        _time(record.updated_at),
    )


def _world_update(world_id: str, fields: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """An UPDATE for these world fields; columns in a fixed order so equal shapes batch together."""
    unknown = sorted(set(fields) - set(WORLD_FIELDS))
    if unknown:
        raise ValueError(f"cannot update world field(s) {', '.join(unknown)}; known: {', '.join(WORLD_FIELDS)}")
    names = [name for name in WORLD_FIELDS if name in fields]
    values: list[Any] = []
    for name in names:
        value = fields[name]
        if name in WORLD_JSON_FIELDS:
            value = _json(value)
        elif name == "status":
            value = WorldStatus(_enum(value)).value
        values.append(value)
    sets = ", ".join(f"{name} = ?" for name in [*names, "updated_at"])
    return f"UPDATE worlds SET {sets} WHERE id = ?", (*values, _time(utcnow()), world_id)


def _persona_params(world_id: str, persona: PersonaRecord) -> tuple[Any, ...]:
    return (world_id, persona.name, _json(persona.spec), _json(persona.identity), persona.position)


def _event_params(world_id: str, event: Event) -> tuple[Any, ...]:
    return (
        world_id,
        event.id,
        _enum(event.kind),
        event.step,
        _time(event.time),
        event.source,
        event.type,
        event.content,
        event.target,
        _json(event.recipients),
        event.model,
        _json(event.meta),
    )


def _outbox_params(entry: OutboxEntry) -> tuple[Any, ...]:
    return (
        entry.world_id,
        entry.channel_key,
        entry.event_id,
        entry.persona,
        _json(entry.identity),
        entry.text,
        entry.thread,
        _enum(entry.status),
        _json(entry.verdict),
        entry.platform_message_id,
        entry.attempts,
        entry.error,
        _time(entry.created_at),
        _time(entry.posted_at),
    )


def _usage_params(world_id: str, row: UsageRow) -> tuple[Any, ...]:
    return (
        world_id,
        row.persona or "",
        row.calls,
        row.cached_calls,
        row.prompt_tokens,
        row.completion_tokens,
        row.cost_usd,
    )


@dataclass(eq=False, slots=True)
class _EncodedStep:
    """A StepWrite turned into statement parameters, done by the caller before it queues."""

    world_id: str
    world_update: tuple[str, tuple[Any, ...]] | None
    events: list[tuple[Any, ...]]
    memories: list[tuple[Any, ...]]
    episodes: list[tuple[Any, ...]]
    usage: list[tuple[Any, ...]]
    outbox: list[tuple[Any, ...]]
    keys: list[tuple[str, int]]

    @classmethod
    def of(cls, write: StepWrite) -> _EncodedStep:
        wid = write.world_id
        return cls(
            world_id=wid,
            world_update=_world_update(wid, write.world) if write.world else None,
            events=[_event_params(wid, e) for e in write.events],
            memories=[_memory_params(wid, name, memory.state) for name, memory in write.memories.items()],
            episodes=[
                row for name, memory in write.memories.items() for row in _episode_params(wid, name, memory)
            ],
            usage=[_usage_params(wid, row) for row in write.usage],
            outbox=[_outbox_params(entry) for entry in write.outbox],
            keys=[(entry.world_id, entry.event_id) for entry in write.outbox],
        )


#: What a memory row leaves out: episodes have their own table, the persona its record.
MEMORY_ROW_EXCLUDES: dict[str, Any] = {"persona": True, "episodic": {"episodes", "first"}}


def _memory_params(world_id: str, name: str, state: AgentState) -> tuple[Any, ...]:
    return (world_id, name, state.model_dump_json(exclude=MEMORY_ROW_EXCLUDES))


def _episode_params(world_id: str, name: str, memory: MemoryWrite) -> Iterator[tuple[Any, ...]]:
    for seq, episode in enumerate(memory.episodes, start=memory.first):
        yield (world_id, name, seq, episode.model_dump_json())


# -- decoding ---------------------------------------------------------------------------------


def _memories_from_rows(
    world_id: str, personas: list[PersonaRecord], states: Iterable[Sequence[Any]],
    episodes: dict[str, Iterable[Sequence[Any]]],
) -> dict[str, AgentState]:
    """Memory rows put back together with the episodes they hold and their persona's spec.

    ``states``: (persona, state, place of the first episode held); ``episodes``: (seq, episode)
    rows of each persona from that place on.
    """
    specs = {p.name: p.spec for p in personas}
    memories: dict[str, AgentState] = {}
    for name, row, first in states:
        held: list[Episode] = []
        for seq, episode in episodes.get(name, ()):
            if seq != first + len(held):
                raise StorageError(
                    f"world {world_id!r}: episode {first + len(held)} of {name!r} is missing from the database "
                    "(restore it from a backup)"
                )
            held.append(Episode.model_validate_json(episode))
        data = json.loads(row)
        data["persona"] = specs.get(name, {"name": name})
        state = AgentState.model_validate(data)
        state.episodic.episodes = held
        state.episodic.first = first
        memories[name] = state
    return memories


def _world_from_row(row: Sequence[Any]) -> WorldRecord:
    return WorldRecord(
        id=row[0],
        channel_key=row[1],
        name=row[2],
        situation=row[3],
        status=row[4],
        config=json.loads(row[5]),
        clock=json.loads(row[6]),
        policy=json.loads(row[7]),
        targeted_talk=row[8],
        created_at=row[9],
        updated_at=row[10],
    )


def _persona_from_row(row: Sequence[Any]) -> PersonaRecord:
    return PersonaRecord(name=row[0], spec=json.loads(row[1]), identity=json.loads(row[2]), position=row[3])


def _event_from_row(row: Sequence[Any]) -> Event:
    return Event(
        id=row[0],
        kind=row[1],
        step=row[2],
        time=row[3],
        source=row[4],
        type=row[5],
        content=row[6],
        target=row[7],
        recipients=json.loads(row[8]),
        model=row[9],
        meta=json.loads(row[10]),
    )


def _outbox_from_row(row: Sequence[Any]) -> OutboxEntry:
    return OutboxEntry(
        id=row[0],
        world_id=row[1],
        channel_key=row[2],
        event_id=row[3],
        persona=row[4],
        identity=json.loads(row[5]),
        text=row[6],
        thread=row[7],
        status=row[8],
        verdict=json.loads(row[9]),
        platform_message_id=row[10],
        attempts=row[11],
        error=row[12],
        created_at=row[13],
        posted_at=row[14],
    )


def _audit_params(record: AuditRecord) -> tuple[Any, ...]:
    return (
        _time(record.at),
        record.world_id,
        record.channel_key,
        record.actor,
        record.action,
        record.outbox_id,
        _json(record.detail),
    )


def _audit_from_row(row: Sequence[Any]) -> AuditRecord:
    return AuditRecord(
        id=row[0],
        at=row[1],
        world_id=row[2],
        channel_key=row[3],
        actor=row[4],
        action=row[5],
        outbox_id=row[6],
        detail=json.loads(row[7]),
    )


def _usage_from_row(row: Sequence[Any]) -> UsageRow:
    return UsageRow(
        persona=row[0] or None,
        calls=row[1],
        cached_calls=row[2],
        prompt_tokens=row[3],
        completion_tokens=row[4],
        cost_usd=row[5],
    )


def _statements(script: str) -> Iterator[str]:
    """Split a migration script into statements (``executescript`` would commit midway)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            buffer = ""
            if statement:
                yield statement
    if buffer.strip():
        raise ValueError(f"incomplete statement in migration: {buffer.strip()[:80]!r}")


# -- the writer queue -------------------------------------------------------------------------

#: A write other than a step: runs inside the group transaction (in its own savepoint), in the
#: connection's thread, so it uses the plain ``sqlite3`` connection and must not block on the loop.
Operation = Callable[[sqlite3.Connection], Any]
#: ``(True, value)`` or ``(False, exception)`` for one queued write.
Outcome = tuple[bool, Any]


@dataclass(eq=False, slots=True)
class _Queued:
    future: asyncio.Future[Any]
    #: What the write does, for error messages ("write a step of world 'w1'").
    what: str
    step: _EncodedStep | None = None
    operation: Operation | None = None


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


#: SQLite's primary result codes that mean no write will succeed until someone acts, and what to do.
_UNUSABLE = {
    sqlite3.SQLITE_FULL: "the disk is full: free some space, then start again",
    sqlite3.SQLITE_READONLY: "it cannot be written (a read-only file or folder): fix its permissions, then start again",
    sqlite3.SQLITE_CORRUPT: "it is damaged: run `troupe doctor`, then restore the latest backup (docs/configuration.md)",
    sqlite3.SQLITE_NOTADB: "it is damaged: run `troupe doctor`, then restore the latest backup (docs/configuration.md)",
    sqlite3.SQLITE_IOERR: "the disk could not be read or written: check it, then start again",
    sqlite3.SQLITE_CANTOPEN: "the file could not be opened: check that it and its folder exist and are writable",
}


@dataclass(eq=False)
class _State:
    opened: bool = False
    #: The database turned out unusable (reported once).
    unavailable: bool = False
    closing: bool = False
    closed: bool = False
    queue: list[_Queued] = field(default_factory=list)


class SQLiteStorage(Storage):
    """``Storage`` in one SQLite file. ``commits`` counts transactions, ``step_writes`` step writes.

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
        self.commits = 0
        self.step_writes = 0
        self._state = _State()
        self._db: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._read_lock = asyncio.Lock()
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"SQLiteStorage({str(self.path)!r})"

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
            db = await self._connect(writer=True, refuse_foreign=True)
        except BaseException:
            self._release_lock()
            raise
        try:
            await self._migrate(db)
            await self._check_writable(db)
            reader = await self._connect(writer=False)
        except BaseException:
            await db.close()
            self._release_lock()
            raise
        self._db, self._reader = db, reader
        self._state.opened = True
        self._writer = asyncio.create_task(self._write_loop(), name=f"storage writer {self.path.name}")

    async def _open_read_only(self) -> None:
        if not self.path.is_file():
            raise StorageError(f"no database at {self.path}")
        uri = await asyncio.to_thread(readable_uri, self.path)
        reader = await self._connect(writer=False, uri=uri, refuse_foreign=True)
        try:
            version = await _user_version(reader)
            if version < len(MIGRATIONS):
                raise DatabaseSetupError(
                    f"the database {self.path} has schema version {version} of {len(MIGRATIONS)}: start Troupe on "
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

    async def _check_writable(self, db: aiosqlite.Connection) -> None:
        """Refuse now a file SQLite opened read-only (it does so quietly, when it may not write it),
        rather than fail at the first write with the bot already listening. The probe writes a page
        and rolls back: nothing changes."""
        try:
            await db.execute("BEGIN IMMEDIATE")
            await db.execute(f"PRAGMA user_version = {await _user_version(db)}")
        except sqlite3.Error as error:
            raise storage_failure(self.path, error, "write") from error
        finally:
            await _rollback_quietly(db)

    async def close(self) -> None:
        """Apply every queued write, then close. Later calls raise StorageError."""
        state = self._state
        if state.closed:
            return
        if not state.opened:
            state.closed = True
            return
        state.closing = True
        self._wakeup.set()
        try:
            if self._writer is not None:
                await asyncio.wait([self._writer])
                if not self._writer.cancelled() and self._writer.exception() is not None:
                    log.error("the writer of %s had stopped: %r", self.path, self._writer.exception())
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

    async def _connect(
        self, *, writer: bool, uri: str | None = None, refuse_foreign: bool = False
    ) -> aiosqlite.Connection:
        """A connection set up for writing or reading; ``refuse_foreign``: first make sure the file is
        Troupe's (or new), before anything (WAL mode included) is written to it."""
        try:
            if uri is not None:
                db = await aiosqlite.connect(uri, uri=True, isolation_level=None)
            else:
                db = await aiosqlite.connect(self.path, isolation_level=None)
        except sqlite3.Error as error:
            raise storage_failure(self.path, error, "open the database") from error
        try:
            await db.execute(CONNECTION_PRAGMAS[0])
            if refuse_foreign:
                self._refuse_foreign(await _user_version(db), await _tables(db))
            if writer:
                await db.execute("PRAGMA journal_mode = WAL")
            for pragma in CONNECTION_PRAGMAS[1:]:
                await db.execute(pragma)
            if not writer:
                await db.execute("PRAGMA query_only = ON")
            await db.execute_fetchall("SELECT count(*) FROM sqlite_master")
        except sqlite3.DatabaseError as error:
            await db.close()
            failure = storage_failure(self.path, error, "open the database")
            if type(failure) is StorageError:
                failure = StorageError(f"{self.path} is not a usable SQLite database: {error}")
            raise failure from error
        except BaseException:
            await db.close()
            raise
        return db

    async def _migrate(self, db: aiosqlite.Connection) -> None:
        """Apply the migrations this file lacks, each in one transaction."""
        latest = len(MIGRATIONS)
        self._refuse_newer(await _user_version(db))
        for number, script in enumerate(MIGRATIONS, start=1):
            if number <= await _user_version(db):
                continue
            try:
                await db.execute("BEGIN IMMEDIATE")
                # Another process may have migrated between our check and the lock.
                current = await _user_version(db)
                self._refuse_newer(current)
                if current < number:
                    for statement in _statements(script):
                        await db.execute(statement)
                    await db.execute(f"PRAGMA user_version = {number}")
                await db.execute("COMMIT")
            except BaseException as error:
                await _rollback_quietly(db)
                if isinstance(error, sqlite3.Error):
                    failure = storage_failure(self.path, error, "upgrade the database")
                    if type(failure) is StorageError:
                        failure = StorageError(f"could not upgrade the database {self.path} to schema version "
                                               f"{number} of {latest}: {error}")
                    raise failure from error
                raise
            log.info("database %s upgraded to schema version %d", self.path, number)

    def _refuse_newer(self, version: int) -> None:
        if version > len(MIGRATIONS):
            raise DatabaseSetupError(newer_schema_problem(self.path, version))

    def _refuse_foreign(self, version: int, tables: set[str]) -> None:
        self._refuse_newer(version)
        problem = schema_problem(self.path, version, tables)
        if problem is not None:
            raise NotATroupeDatabaseError(problem)

    # -- worlds and channels ------------------------------------------------------------------

    async def create_world(self, record: WorldRecord, personas: Iterable[PersonaRecord] = ()) -> None:
        world = _world_params(record)
        rows = [_persona_params(record.id, p) for p in personas]

        def create(db: sqlite3.Connection) -> None:
            try:
                db.execute(INSERT_WORLD, world)
            except sqlite3.IntegrityError as error:
                if "channel_key" in str(error):
                    raise StorageError(
                        f"channel {record.channel_key} already has a world; stop it before starting another"
                    ) from error
                raise StorageError(f"a world with id {record.id!r} already exists") from error
            if rows:
                db.executemany(UPSERT_PERSONA, rows)

        await self._submit(create, f"create world {record.id!r}")

    async def world_for_channel(self, channel_key: str) -> WorldRecord | None:
        rows = await self._read(SELECT_CHANNEL_WORLD, (channel_key,))
        return _world_from_row(rows[0]) if rows else None

    async def active_worlds(self) -> list[WorldRecord]:
        return [_world_from_row(row) for row in await self._read(SELECT_ACTIVE_WORLDS)]

    async def all_worlds(self) -> list[WorldRecord]:
        return [_world_from_row(row) for row in await self._read(SELECT_ALL_WORLDS)]

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
                    events = await reader.execute_fetchall(SELECT_RECENT_EVENTS, (world_id,))
                    usage = await reader.execute_fetchall(SELECT_USAGE, (world_id,))
                finally:
                    await _rollback_quietly(reader)
            except sqlite3.Error as error:
                raise StorageError(f"could not load world {world_id!r}: {error}") from error
        records = [_persona_from_row(row) for row in personas]
        return StoredWorld(
            record=_world_from_row(list(world)[0]),
            personas=records,
            memories=_memories_from_rows(world_id, records, memories, episodes),
            events=[_event_from_row(row) for row in events],
            events_first=events[0][0] - 1 if events else 0,
            usage=[_usage_from_row(row) for row in usage],
        )

    async def read_events(self, world_id: str) -> list[Event]:
        return [_event_from_row(row) for row in await self._read(SELECT_EVENTS, (world_id,))]

    async def update_world(self, world_id: str, **fields: Any) -> None:
        if not fields:
            return
        sql, params = _world_update(world_id, fields)

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
            cursor = db.execute(STOP_WORLD, (_time(utcnow()), world_id))
            if cursor.rowcount == 0:
                raise StorageError(f"no world with id {world_id!r}")

        await self._submit(stop, f"stop world {world_id!r}")

    async def reset_world(self, world_id: str, *, clock: dict[str, Any], policy: dict[str, Any]) -> int:
        """Also moves the world's outbox entries to negative event ids: new event ids restart at 1."""
        params = (_json(clock), _json(policy), _time(utcnow()), world_id)

        def reset(db: sqlite3.Connection) -> int:
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
        row = _persona_params(world_id, persona)
        state, episodes, first = None, [], 0
        if memory is not None:
            state = _memory_params(world_id, persona.name, memory)
            first = memory.episodic.first
            episodes = list(_episode_params(world_id, persona.name, MemoryWrite.since(memory, first)))

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
        step = _EncodedStep.of(write)
        return await self._enqueue(_Queued(self._future(), f"write a step of world {write.world_id!r}", step=step))

    # -- outbox -------------------------------------------------------------------------------

    async def pending_outbox(self, channel_key: str | None = None) -> list[OutboxEntry]:
        if channel_key is None:
            rows = await self._read(SELECT_PENDING)
        else:
            rows = await self._read(SELECT_CHANNEL_PENDING, (channel_key,))
        return [_outbox_from_row(row) for row in rows]

    async def outbox_entries(self, world_id: str) -> list[OutboxEntry]:
        return [_outbox_from_row(row) for row in await self._read(SELECT_WORLD_OUTBOX, (world_id,))]

    async def mark_posted(self, entry_id: int, platform_message_id: str) -> None:
        await self._update_entry(entry_id, MARK_POSTED, (platform_message_id, _time(utcnow()), entry_id), "mark")

    async def posted_ids(self, channel_key: str, since: datetime) -> set[str]:
        return {row[0] for row in await self._read(SELECT_POSTED_IDS, (channel_key, _time(since)))}

    async def mark_attempt(self, entry_id: int, error: str | None = None) -> None:
        """Count an attempt; with ``error``, one that failed, and why."""
        if error is None:
            await self._update_entry(entry_id, COUNT_ATTEMPT, (entry_id,), "count an attempt of")
        else:
            await self._update_entry(entry_id, RECORD_ATTEMPT_ERROR, (error, entry_id), "record a failure of")

    async def set_outbox_status(self, entry_id: int, status: OutboxStatus, error: str | None = None) -> None:
        params = (OutboxStatus(_enum(status)).value, error, entry_id)
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
        return _outbox_from_row(rows[0])

    async def held_outbox(self, channel_key: str) -> list[OutboxEntry]:
        return [_outbox_from_row(row) for row in await self._read(SELECT_CHANNEL_HELD, (channel_key,))]

    async def decide_outbox(
        self, entry_id: int, status: OutboxStatus, audit: AuditRecord, *, text: str | None = None,
        identity: dict[str, Any] | None = None,
    ) -> OutboxEntry:
        params = (OutboxStatus(_enum(status)).value, text, _json(identity) if identity is not None else None, entry_id)

        def decide(db: sqlite3.Connection) -> None:
            cursor = db.execute(DECIDE_OUTBOX, params)
            if cursor.rowcount == 0:
                raise StorageError(f"message {entry_id} is not waiting for review any more")
            db.execute(INSERT_AUDIT, _audit_params(audit))

        await self._submit(decide, f"decide on outbox entry {entry_id}")
        return await self.get_outbox(entry_id)

    # -- audit --------------------------------------------------------------------------------

    async def record_audit(self, record: AuditRecord) -> None:
        def insert(db: sqlite3.Connection) -> None:
            db.execute(INSERT_AUDIT, _audit_params(record))

        await self._submit(insert, f"record an audit entry for {record.channel_key}")

    async def audit_log(self, channel_key: str) -> list[AuditRecord]:
        return [_audit_from_row(row) for row in await self._read(SELECT_CHANNEL_AUDIT, (channel_key,))]

    # -- platform adapters' own state ----------------------------------------------------------

    async def adapter_state(self, platform: str, key: str) -> dict[str, Any] | None:
        rows = await self._read(SELECT_ADAPTER_STATE, (platform, key))
        return json.loads(rows[0][0]) if rows else None

    async def set_adapter_state(self, platform: str, key: str, value: dict[str, Any] | None) -> None:
        if value is None:
            sql, params = DELETE_ADAPTER_STATE, (platform, key)
        else:
            sql, params = UPSERT_ADAPTER_STATE, (platform, key, _json(value), _time(utcnow()))

        def write(db: sqlite3.Connection) -> None:
            db.execute(sql, params)

        await self._submit(write, f"store {platform} state {key!r}")

    # -- inbox --------------------------------------------------------------------------------

    async def inbox_add(self, channel_key: str, event: dict[str, Any]) -> int:
        def write(db: sqlite3.Connection) -> int:
            cursor = db.execute(INSERT_INBOX, (channel_key, _json(event), _time(utcnow())))
            return int(cursor.lastrowid or 0)

        return await self._submit(write, f"receive a message in {channel_key}")

    async def inbox_done(self, entry_id: int) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute(DELETE_INBOX, (entry_id,))

        await self._submit(write, f"settle received message {entry_id}")

    async def inbox_pending(self) -> list[tuple[int, str, dict[str, Any]]]:
        rows = await self._read(SELECT_INBOX)
        return [(int(r[0]), str(r[1]), json.loads(r[2])) for r in rows]

    # -- usage --------------------------------------------------------------------------------

    async def usage(self, world_id: str) -> list[UsageRow]:
        return [_usage_from_row(row) for row in await self._read(SELECT_USAGE, (world_id,))]

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
        if self._state.closed or self._state.closing:
            return f"storage {self.path} is closed"
        return f"storage {self.path} is not open; call open() first"

    # -- writing: the group committer ---------------------------------------------------------

    def _writable(self) -> None:
        if self.read_only:
            raise StorageError(f"storage {self.path} is open read-only")
        if not self._state.opened or self._state.closing or self._state.closed:
            raise StorageError(self._unusable())

    def _future(self) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    async def _submit(self, operation: Operation, what: str) -> Any:
        self._writable()
        return await self._enqueue(_Queued(self._future(), what, operation=operation))

    async def _enqueue(self, queued: _Queued) -> Any:
        self._state.queue.append(queued)
        self._wakeup.set()
        try:
            return await queued.future
        except StorageError as error:
            raise self._fatal(error) or error

    def _fatal(self, error: StorageError) -> StorageUnavailableError | None:
        """``error`` as the database being unusable (a full disk, a read-only or damaged file), which
        no retry mends, or None. The first such error is reported to ``on_unavailable``."""
        if isinstance(error, StorageUnavailableError):
            return error
        cause = _sqlite_cause(error)
        advice = _UNUSABLE.get(_sqlite_code(cause)) if cause is not None else None
        if advice is None:
            return None
        fatal = StorageUnavailableError(f"cannot use the database {self.path}: {cause}; {advice}")
        fatal.__cause__ = cause
        if not self._state.unavailable:
            self._state.unavailable = True
            log.error("%s", fatal)
            if self.on_unavailable is not None:
                self.on_unavailable(fatal)
        return fatal

    async def _write_loop(self) -> None:
        """Apply queued writes group by group until closed and drained."""
        state = self._state
        try:
            while True:
                if not state.queue:
                    if state.closing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                taken = state.queue[:MAX_GROUP]
                del state.queue[:MAX_GROUP]
                group = [q for q in taken if not q.future.cancelled()]
                if group:
                    await self._commit_group(group)
        except BaseException as error:
            # Never leave a caller waiting on a writer that is gone.
            failure = StorageError(f"the writer of {self.path} stopped: {error!r}")
            for queued in state.queue:
                if not queued.future.done():
                    queued.future.set_exception(failure)
            state.queue.clear()
            state.closing = True
            raise

    async def _commit_group(self, group: list[_Queued]) -> None:
        try:
            outcomes, commits, step_writes = await _in_connection_thread(self._connection(), _apply_group, group)
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

    def _connection(self) -> aiosqlite.Connection:
        assert self._db is not None
        return self._db


# -- the group commit, in the writer connection's thread ------------------------------------------


async def _in_connection_thread(db: aiosqlite.Connection, function: Callable[..., Any], *args: Any) -> Any:
    """``function(connection, *args)`` run in ``db``'s own thread as one call.

    Each aiosqlite statement is a hop to that thread and back, and under load every hop waits for
    the GIL: a group commit of eight statements took 2–6 ms of wall time, most of it waiting. As one
    call it is one hop. aiosqlite queues callables for its thread with ``Connection._execute``; it
    has no public name for that, so this is the one place that relies on it.
    """
    return await db._execute(lambda: function(db._conn, *args))


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
            _rollback(db)
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
        _rollback(db)
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


def _apply_steps(db: sqlite3.Connection, steps: list[_EncodedStep]) -> list[list[OutboxEntry]]:
    """Write steps with one statement per table (and per world-update shape)."""
    for sql, params in _update_runs(steps):
        cursor = db.executemany(sql, params)
        if cursor.rowcount != len(params):
            # Batched, the failing step is found when the steps are retried one by one.
            raise StorageError(f"no world with id {params[0][-1]!r}" if len(params) == 1 else "unknown world")
    for sql, table in STEP_TABLES:
        rows = [row for step in steps for row in getattr(step, table)]
        if rows:
            db.executemany(sql, rows)
    outbox = [row for step in steps for row in step.outbox]
    if not outbox:
        return [[] for _ in steps]
    db.executemany(INSERT_OUTBOX, outbox)
    stored = _outbox_by_keys(db, list(dict.fromkeys(k for step in steps for k in step.keys)))
    return [[stored[key] for key in step.keys] for step in steps]


def _outbox_by_keys(db: sqlite3.Connection, keys: list[tuple[str, int]]) -> dict[tuple[str, int], OutboxEntry]:
    found: dict[tuple[str, int], OutboxEntry] = {}
    for start in range(0, len(keys), MAX_KEYS_PER_QUERY):
        chunk = keys[start : start + MAX_KEYS_PER_QUERY]
        params = [value for key in chunk for value in key]
        for row in db.execute(_select_outbox_by_keys(len(chunk)), params).fetchall():
            entry = _outbox_from_row(row)
            found[(entry.world_id, entry.event_id)] = entry
    return found


def _rollback(db: sqlite3.Connection) -> None:
    """Roll back whatever transaction is open; none being open is fine."""
    try:
        db.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def _update_runs(steps: list[_EncodedStep]) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
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


async def _user_version(db: aiosqlite.Connection) -> int:
    rows = list(await db.execute_fetchall("PRAGMA user_version"))
    return int(rows[0][0])


async def _tables(db: aiosqlite.Connection) -> set[str]:
    return {row[0] for row in await db.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")}


async def _rollback_quietly(db: aiosqlite.Connection) -> None:
    """``_rollback`` on an aiosqlite connection."""
    await _in_connection_thread(db, _rollback)
