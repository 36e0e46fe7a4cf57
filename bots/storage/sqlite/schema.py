"""The database's tables: one script per schema version, applied in order and never changed once
released, so every file, however old, reaches the same schema."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator

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

#: Which worker runs which channel's world, and the workers sharing the database. Times are seconds
#: since the epoch by the database's clock (``NOW`` in statements.py). A lease row is kept when it
#: is released, so a channel's fencing token only ever grows.
SCHEMA_V6 = """
CREATE TABLE leases (
    channel_key TEXT PRIMARY KEY,
    worker      TEXT NOT NULL,
    token       INTEGER NOT NULL,
    expires_at  REAL NOT NULL
);
CREATE TABLE workers (
    id         TEXT PRIMARY KEY,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    seen_at    REAL NOT NULL
);
CREATE INDEX inbox_by_channel ON inbox (channel_key, id);
"""

#: Branches: a world forked from another lives beside it in the same channel, and shares its events
#: up to the fork point instead of copying them (``bots.storage.lineage``). Names of a world's
#: branches are unique.
SCHEMA_V7 = """
ALTER TABLE worlds ADD COLUMN parent_id TEXT REFERENCES worlds (id);
ALTER TABLE worlds ADD COLUMN fork_event INTEGER NOT NULL DEFAULT 0;
ALTER TABLE worlds ADD COLUMN thread TEXT;
DROP INDEX worlds_bound_channel;
CREATE UNIQUE INDEX worlds_bound_channel ON worlds (channel_key) WHERE status <> 'stopped' AND parent_id IS NULL;
CREATE UNIQUE INDEX worlds_branch_name ON worlds (parent_id, name) WHERE parent_id IS NOT NULL;
"""

#: Each worker's own lease term, written with every heartbeat: a worker counts as alive for that long
#: after it was last seen, whatever term the one asking runs with.
SCHEMA_V8 = """
ALTER TABLE workers ADD COLUMN lease_s REAL NOT NULL DEFAULT 15;
"""

#: Migration ``n`` (1-based) brings the schema from version ``n - 1`` to ``n`` (``PRAGMA
#: user_version``). Append only: a released script never changes.
MIGRATIONS: tuple[str, ...] = (SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6, SCHEMA_V7,
                               SCHEMA_V8)

#: Tables another part of Troupe may put in the file before the bot first opens it: the response
#: cache shares the database unless ``llm.cache_path`` says otherwise.
SHARED_TABLES = frozenset({"llm_responses", "model_profiles"})
_CREATED_TABLE = re.compile(r"CREATE TABLE (\w+)")


def created_tables(script: str) -> set[str]:
    """The tables a migration script creates."""
    return set(_CREATED_TABLE.findall(script))


def split_script(script: str) -> Iterator[str]:
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

