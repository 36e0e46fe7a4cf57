"""The SQL the store runs, in PostgreSQL's dialect (``$n`` parameters, ``json`` operators)."""

from __future__ import annotations

import itertools
from functools import lru_cache
from typing import Any

from bots.storage.base import RECENT_EPISODES_HELD, RECENT_EVENTS_HELD, utcnow
from bots.storage.rows import AUDIT_COLUMNS, OUTBOX_COLUMNS, WORLD_COLUMNS, time_text, world_changes

INSERT_INBOX = "INSERT INTO inbox (channel_key, event, received_at) VALUES ($1, $2, $3) RETURNING id"
DELETE_INBOX = "DELETE FROM inbox WHERE id = $1"
SELECT_INBOX = "SELECT id, channel_key, event FROM inbox ORDER BY id"
SELECT_CHANNEL_INBOX = "SELECT id, channel_key, event FROM inbox WHERE channel_key = $1 ORDER BY id"

#: A free or expired lease is taken with a greater token; one's own is renewed with the same one.
#: Expiry is read by the server's clock (``clock_timestamp``), the same for every worker.
TAKE_LEASE = """
INSERT INTO leases (channel_key, worker, token, expires_at)
VALUES ($1, $2, 1, clock_timestamp() + make_interval(secs => $3))
ON CONFLICT (channel_key) DO UPDATE SET
    token = CASE WHEN leases.worker = EXCLUDED.worker THEN leases.token ELSE leases.token + 1 END,
    worker = EXCLUDED.worker,
    expires_at = EXCLUDED.expires_at
WHERE leases.worker = EXCLUDED.worker OR leases.expires_at <= clock_timestamp()
RETURNING token
"""
RENEW_LEASES = ("UPDATE leases SET expires_at = clock_timestamp() + make_interval(secs => $1) WHERE worker = $2 "
                "RETURNING channel_key, token")
RELEASE_LEASES = "UPDATE leases SET worker = '', expires_at = clock_timestamp() WHERE worker = $1"
RELEASE_CHANNEL_LEASES = ("UPDATE leases SET worker = '', expires_at = clock_timestamp() "
                          "WHERE worker = $1 AND channel_key = ANY($2::text[])")
SELECT_LEASES = ("SELECT channel_key, worker, token, expires_at, expires_at <= clock_timestamp() FROM leases "
                 "ORDER BY channel_key")
#: A worker's heartbeat, with its own lease term: it is alive until that long after it was seen.
UPSERT_WORKER = """
INSERT INTO workers (id, host, pid, started_at, seen_at, lease_s) VALUES ($1, $2, $3, $4, clock_timestamp(), $5)
ON CONFLICT (id) DO UPDATE SET seen_at = EXCLUDED.seen_at, lease_s = EXCLUDED.lease_s
"""
#: The workers alive: seen within their own lease term (not the reader's), by the server's clock.
SELECT_WORKERS = ("SELECT id, host, pid, started_at, seen_at, lease_s FROM workers "
                  "WHERE seen_at + make_interval(secs => lease_s) >= clock_timestamp() ORDER BY started_at, id")
DELETE_WORKER = "DELETE FROM workers WHERE id = $1"
#: Wakes the workers listening to a topic (``LISTEN``), with a text payload.
NOTIFY = "SELECT pg_notify($1, $2)"

INSERT_WORLD = (
    f"INSERT INTO worlds ({WORLD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
)
SELECT_WORLD = f"SELECT {WORLD_COLUMNS} FROM worlds WHERE id = $1"
SELECT_CHANNEL_WORLD = (
    f"SELECT {WORLD_COLUMNS} FROM worlds WHERE channel_key = $1 AND status <> 'stopped' AND parent_id IS NULL"
)
SELECT_ACTIVE_WORLDS = (
    f"SELECT {WORLD_COLUMNS} FROM worlds WHERE status <> 'stopped' AND parent_id IS NULL ORDER BY created_at, id"
)
SELECT_BRANCHES = f"SELECT {WORLD_COLUMNS} FROM worlds WHERE parent_id = $1 ORDER BY created_at, id"
HAS_BRANCHES = "SELECT 1 FROM worlds WHERE parent_id = $1 LIMIT 1"
SELECT_ALL_WORLDS = f"SELECT {WORLD_COLUMNS} FROM worlds ORDER BY created_at, id"
COUNT_EVENTS = "SELECT world_id, count(*) FROM events GROUP BY world_id"
STOP_WORLD = "UPDATE worlds SET status = 'stopped', updated_at = $1 WHERE id = $2"
RESET_WORLD = "UPDATE worlds SET clock = $1, policy = $2, updated_at = $3 WHERE id = $4"
DELETE_WORLD_EVENTS = "DELETE FROM events WHERE world_id = $1"
DELETE_WORLD_MEMORIES = "DELETE FROM memories WHERE world_id = $1"
DELETE_WORLD_EPISODES = "DELETE FROM episodes WHERE world_id = $1"
#: After a reset event ids start again; kept entries move out of the way of the new ones.
REKEY_WORLD_OUTBOX = "UPDATE outbox SET event_id = -id WHERE world_id = $1 AND event_id > 0"
DROP_PERSONA_HELD_OUTBOX = (
    "UPDATE outbox SET status = 'blocked', error = 'its persona left the world before a moderator decided' "
    "WHERE world_id = $1 AND persona = $2 AND status = 'held'"
)
DROP_HELD_OUTBOX = (
    "UPDATE outbox SET status = 'blocked', error = 'the conversation was reset before a moderator decided' "
    "WHERE world_id = $1 AND status = 'held'"
)

UPSERT_PERSONA = """
INSERT INTO personas (world_id, name, spec, identity, position) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (world_id, name) DO UPDATE SET
    spec = excluded.spec, identity = excluded.identity, position = excluded.position
"""
SELECT_PERSONAS = "SELECT name, spec, identity, position FROM personas WHERE world_id = $1 ORDER BY position, name"
DELETE_PERSONA = "DELETE FROM personas WHERE world_id = $1 AND name = $2 RETURNING position"
#: The personas after a removed one move up, so places stay 0…n-1 in the world's order.
CLOSE_PERSONA_GAP = "UPDATE personas SET position = position - 1 WHERE world_id = $1 AND position > $2"

UPSERT_MEMORY = """
INSERT INTO memories (world_id, persona, state) VALUES ($1, $2, $3)
ON CONFLICT (world_id, persona) DO UPDATE SET state = excluded.state
"""
#: Each persona's memory with the place of the first episode it holds: the first one not folded
#: or the first of its recent past, whichever comes first (as SQLite's store reads it).
SELECT_MEMORIES = f"""
SELECT m.persona, m.state, least(
    coalesce((m.state #>> '{{episodic,consolidated_until}}')::bigint, 0),
    greatest(0, coalesce((SELECT max(e.seq) + 1 FROM episodes AS e
                          WHERE e.world_id = m.world_id AND e.persona = m.persona), 0)
        - {RECENT_EPISODES_HELD}))
FROM memories AS m WHERE m.world_id = $1 ORDER BY m.persona
"""
DELETE_MEMORY = "DELETE FROM memories WHERE world_id = $1 AND persona = $2"
#: A write may repeat episodes an earlier one stored (it was cancelled after committing).
INSERT_EPISODE = "INSERT INTO episodes (world_id, persona, seq, episode) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
SELECT_EPISODES_FROM = (
    "SELECT seq, episode FROM episodes WHERE world_id = $1 AND persona = $2 AND seq >= $3 ORDER BY seq"
)
DELETE_EPISODES = "DELETE FROM episodes WHERE world_id = $1 AND persona = $2"
DELETE_EPISODES_FROM = "DELETE FROM episodes WHERE world_id = $1 AND persona = $2 AND seq >= $3"

SELECT_EVENTS = """
SELECT id, kind, step, time, source, type, content, target, recipients, model, meta
FROM events WHERE world_id = $1 ORDER BY id
"""
#: The last ``RECENT_EVENTS_HELD`` events of a world's log (ids run from 1 without gaps).
SELECT_RECENT_EVENTS = f"""
SELECT id, kind, step, time, source, type, content, target, recipients, model, meta
FROM events WHERE world_id = $1
    AND id > coalesce((SELECT max(id) FROM events WHERE world_id = $1), 0) - {RECENT_EVENTS_HELD}
ORDER BY id
"""

#: A stretch of a world's log (``bots.storage.lineage``): ids above the first bound, up to the second.
SELECT_EVENT_RANGE = """
SELECT id, kind, step, time, source, type, content, target, recipients, model, meta
FROM events WHERE world_id = $1 AND id > $2 AND id <= $3 ORDER BY id
"""
SELECT_LAST_EVENT = "SELECT max(id) FROM events WHERE world_id = $1"

#: A world's entries for these events, stored now or by an earlier write of the same events.
SELECT_OUTBOX_FOR_EVENTS = f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE world_id = $1 AND event_id = ANY($2::bigint[])"
SELECT_PENDING = f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'pending' ORDER BY id"
SELECT_CHANNEL_PENDING = (
    f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'pending' AND channel_key = $1 ORDER BY id"
)
SELECT_WORLD_OUTBOX = f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE world_id = $1 ORDER BY id"
#: A world's entries for a stretch of its log (``bots.storage.lineage``).
SELECT_OUTBOX_RANGE = (
    f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE world_id = $1 AND event_id > $2 AND event_id <= $3 ORDER BY id"
)
MARK_POSTED = """
UPDATE outbox SET status = 'posted', platform_message_id = $1, posted_at = $2, error = NULL
WHERE id = $3
"""
SELECT_POSTED_IDS = """
SELECT platform_message_id FROM outbox
WHERE status = 'posted' AND channel_key = $1 AND posted_at >= $2 AND platform_message_id IS NOT NULL
ORDER BY id DESC LIMIT 1000
"""
COUNT_ATTEMPT = "UPDATE outbox SET attempts = attempts + 1 WHERE id = $1"
RECORD_ATTEMPT_ERROR = "UPDATE outbox SET attempts = attempts + 1, error = $1 WHERE id = $2"
SET_OUTBOX_STATUS = "UPDATE outbox SET status = $1, error = $2 WHERE id = $3"
SELECT_OUTBOX = f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = $1"
SELECT_CHANNEL_HELD = f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'held' AND channel_key = $1 ORDER BY id"
DECIDE_OUTBOX = (
    f"UPDATE outbox SET status = $1, text = coalesce($2, text), identity = coalesce($3::json, identity) "
    f"WHERE id = $4 AND status = 'held' RETURNING {OUTBOX_COLUMNS}"
)
INSERT_AUDIT = (
    "INSERT INTO audit (at, world_id, channel_key, actor, action, outbox_id, detail) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
SELECT_CHANNEL_AUDIT = f"SELECT {AUDIT_COLUMNS} FROM audit WHERE channel_key = $1 ORDER BY id"
SELECT_ADAPTER_STATE = "SELECT value FROM adapter_state WHERE platform = $1 AND key = $2"
UPSERT_ADAPTER_STATE = (
    "INSERT INTO adapter_state (platform, key, value, updated_at) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (platform, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
)
DELETE_ADAPTER_STATE = "DELETE FROM adapter_state WHERE platform = $1 AND key = $2"
TAKE_ADAPTER_STATE = "DELETE FROM adapter_state WHERE platform = $1 AND key = $2 RETURNING value"
DELETE_STALE_ADAPTER_STATE = (
    "DELETE FROM adapter_state WHERE platform = $1 AND substr(key, 1, $2) = $3 AND updated_at < $4"
)

SELECT_USAGE = """
SELECT persona, calls, cached_calls, prompt_tokens, completion_tokens, cost_usd
FROM usage WHERE world_id = $1 ORDER BY persona
"""

SCHEMA_VERSION = "SELECT coalesce(max(version), 0) FROM schema_migrations"
#: Whether the version table exists yet (a database Troupe never opened has none).
HAS_VERSION_TABLE = "SELECT to_regclass('schema_migrations') IS NOT NULL"
RECORD_VERSION = "INSERT INTO schema_migrations (version) VALUES ($1)"


def world_sets(fields: dict[str, Any]) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """The world columns these fields change, ``updated_at`` (now) last, and their values as stored
    (checked and encoded as ``rows.world_changes`` says)."""
    changes = world_changes(fields)
    return (*changes, "updated_at"), (*changes.values(), time_text(utcnow()))


def world_update(world_id: str, fields: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """An UPDATE for these world fields."""
    names, values = world_sets(fields)
    sets = ", ".join(f"{name} = ${number}" for number, name in enumerate(names, start=1))
    return f"UPDATE worlds SET {sets} WHERE id = ${len(names) + 1}", (*values, world_id)


#: What a step writes besides the world's own row: each table, its columns (each sent as one array
#: parameter, JSON as text) and what a row already there means.
STEP_TABLES: tuple[tuple[str, tuple[tuple[str, str], ...], str], ...] = (
    ("events", (("id", "bigint"), ("kind", "text"), ("step", "bigint"), ("time", "text"), ("source", "text"),
                ("type", "text"), ("content", "text"), ("target", "text"), ("recipients", "json"),
                ("model", "text"), ("meta", "json")),
     "ON CONFLICT DO NOTHING"),
    ("memories", (("persona", "text"), ("state", "json")),
     "ON CONFLICT (world_id, persona) DO UPDATE SET state = excluded.state"),
    ("episodes", (("persona", "text"), ("seq", "bigint"), ("episode", "json")), "ON CONFLICT DO NOTHING"),
    ("usage", (("persona", "text"), ("calls", "bigint"), ("cached_calls", "bigint"), ("prompt_tokens", "bigint"),
               ("completion_tokens", "bigint"), ("cost_usd", "float8")),
     "ON CONFLICT (world_id, persona) DO UPDATE SET calls = excluded.calls, cached_calls = excluded.cached_calls, "
     "prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens, "
     "cost_usd = excluded.cost_usd"),
)
STEP_OUTBOX_COLUMNS: tuple[tuple[str, str], ...] = (
    ("world_id", "text"), ("channel_key", "text"), ("event_id", "bigint"), ("persona", "text"), ("identity", "json"),
    ("text", "text"), ("thread", "text"), ("status", "text"), ("verdict", "json"), ("platform_message_id", "text"),
    ("attempts", "int4"), ("error", "text"), ("created_at", "text"), ("posted_at", "text"),
)


@lru_cache(maxsize=64)
def step_statement(world_fields: tuple[str, ...], fenced: bool) -> str:
    """A step's whole write as one statement, so one round trip that PostgreSQL applies atomically.

    Parameters: ``$1`` the world's id; with ``fenced``, ``$2``-``$4`` the lease's channel, worker
    and token; then the new values of ``world_fields`` (``updated_at`` last), then one array per
    column of ``STEP_TABLES`` and ``STEP_OUTBOX_COLUMNS`` in order. Nothing is written unless the
    lease (held ``FOR SHARE``: a takeover waits for this write) and the world are there. Returns
    the outbox rows inserted (``OUTBOX_COLUMNS``; NULLs when none), each followed by the lease's
    token and whether the step was written.
    """
    numbers = itertools.count(5 if fenced else 2)
    if fenced:
        fence = "fence AS (SELECT token FROM leases WHERE channel_key = $2 AND worker = $3 FOR SHARE)"
        gate = "EXISTS (SELECT 1 FROM fence WHERE token = $4)"
    else:
        fence, gate = "fence AS (SELECT NULL::bigint AS token)", "true"
    if world_fields:
        sets = ", ".join(f"{name} = ${next(numbers)}" for name in world_fields)
        world = f"world AS (UPDATE worlds SET {sets} WHERE id = $1 AND {gate} RETURNING id)"
    else:
        world = f"world AS (SELECT id FROM worlds WHERE id = $1 AND {gate})"
    parts = [fence, world]

    def from_arrays(into: str, columns: tuple[tuple[str, str], ...], *, world_id: bool) -> str:
        """``INSERT INTO into`` of the rows the next arrays hold (with ``world_id``, the world's id
        in that column of each), once the world is written."""
        names = ", ".join(name for name, _ in columns)
        arrays = ", ".join(f"${next(numbers)}::{'text' if kind == 'json' else kind}[]" for _, kind in columns)
        values = ", ".join(f"r.{name}::json" if kind == "json" else f"r.{name}" for name, kind in columns)
        target, source = (f"world_id, {names}", f"$1, {values}") if world_id else (names, values)
        return (f"INSERT INTO {into} ({target}) SELECT {source} FROM unnest({arrays}) AS r({names}) "
                "WHERE EXISTS (SELECT 1 FROM world)")

    for table, columns, conflict in STEP_TABLES:
        parts.append(f"{table}_rows AS ({from_arrays(table, columns, world_id=True)} {conflict})")
    parts.append(f"outbox_rows AS ({from_arrays('outbox', STEP_OUTBOX_COLUMNS, world_id=False)} "
                 f"ON CONFLICT (world_id, event_id) DO NOTHING RETURNING {OUTBOX_COLUMNS})")
    return ("WITH " + ",\n".join(parts) + "\nSELECT outbox_rows.*, step.token, step.written FROM (SELECT "
            "(SELECT token FROM fence) AS token, EXISTS (SELECT 1 FROM world) AS written) AS step "
            "LEFT JOIN outbox_rows ON true")
