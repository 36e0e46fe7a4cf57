"""The SQL the store runs, in SQLite's dialect (``?`` parameters, ``json_extract``, ``RETURNING``)."""

from __future__ import annotations

from typing import Any

from bots.storage.base import RECENT_EPISODES_HELD, RECENT_EVENTS_HELD, utcnow
from bots.storage.rows import (
    AUDIT_COLUMNS,
    OUTBOX_COLUMNS,
    WORLD_COLUMNS,
    time_text,
    world_changes,
)

INSERT_INBOX = "INSERT INTO inbox (channel_key, event, received_at) VALUES (?, ?, ?)"
DELETE_INBOX = "DELETE FROM inbox WHERE id = ?"
SELECT_INBOX = "SELECT id, channel_key, event FROM inbox ORDER BY id"
SELECT_CHANNEL_INBOX = "SELECT id, channel_key, event FROM inbox WHERE channel_key = ? ORDER BY id"

#: The database's clock, in seconds since the epoch: every worker reads expiry by the same clock.
NOW = "((julianday('now') - 2440587.5) * 86400.0)"
#: A free or expired lease is taken with a greater token; one's own is renewed with the same one.
TAKE_LEASE = f"""
INSERT INTO leases (channel_key, worker, token, expires_at) VALUES (?1, ?2, 1, {NOW} + ?3)
ON CONFLICT (channel_key) DO UPDATE SET
    token = CASE WHEN leases.worker = ?2 THEN leases.token ELSE leases.token + 1 END,
    worker = ?2,
    expires_at = {NOW} + ?3
WHERE leases.worker = ?2 OR leases.expires_at <= {NOW}
RETURNING token
"""
RENEW_LEASES = f"UPDATE leases SET expires_at = {NOW} + ? WHERE worker = ? RETURNING channel_key, token"
RELEASE_LEASES = f"UPDATE leases SET worker = '', expires_at = {NOW} WHERE worker = ?"
FREE_ALL_LEASES = f"UPDATE leases SET worker = '', expires_at = {NOW} WHERE worker <> ''"
RELEASE_LEASE = f"UPDATE leases SET worker = '', expires_at = {NOW} WHERE worker = ? AND channel_key = ?"
SELECT_LEASES = f"SELECT channel_key, worker, token, expires_at, expires_at <= {NOW} FROM leases ORDER BY channel_key"
SELECT_FENCE = "SELECT token FROM leases WHERE channel_key = ? AND worker = ?"
#: A worker's heartbeat, with its own lease term: it is alive until that long after it was seen.
UPSERT_WORKER = f"""
INSERT INTO workers (id, host, pid, started_at, seen_at, lease_s) VALUES (?, ?, ?, ?, {NOW}, ?)
ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, lease_s = excluded.lease_s
"""
#: The workers alive: seen within their own lease term (not the reader's).
SELECT_WORKERS = (f"SELECT id, host, pid, started_at, seen_at, lease_s FROM workers WHERE seen_at + lease_s >= {NOW} "
                  "ORDER BY started_at, id")
DELETE_WORKER = "DELETE FROM workers WHERE id = ?"
FORGET_WORKERS = "DELETE FROM workers"
EARLIER_RUNS_LEFT = "SELECT 1 WHERE EXISTS (SELECT 1 FROM workers) OR EXISTS (SELECT 1 FROM leases WHERE worker <> '')"

INSERT_WORLD = f"INSERT INTO worlds ({WORLD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
SELECT_WORLD = f"SELECT {WORLD_COLUMNS} FROM worlds WHERE id = ?"
SELECT_CHANNEL_WORLD = (
    f"SELECT {WORLD_COLUMNS} FROM worlds WHERE channel_key = ? AND status <> 'stopped' AND parent_id IS NULL"
)
SELECT_ACTIVE_WORLDS = (
    f"SELECT {WORLD_COLUMNS} FROM worlds WHERE status <> 'stopped' AND parent_id IS NULL ORDER BY created_at, id"
)
SELECT_BRANCHES = f"SELECT {WORLD_COLUMNS} FROM worlds WHERE parent_id = ? ORDER BY created_at, id"
HAS_BRANCHES = "SELECT 1 FROM worlds WHERE parent_id = ? LIMIT 1"
WORLD_EXISTS = "SELECT 1 FROM worlds WHERE id = ?"
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

#: A stretch of a world's log (``bots.storage.lineage``): ids above the first bound, up to the second.
SELECT_EVENT_RANGE = """
SELECT id, kind, step, time, source, type, content, target, recipients, model, meta
FROM events WHERE world_id = ? AND id > ? AND id <= ? ORDER BY id
"""
SELECT_LAST_EVENT = "SELECT max(id) FROM events WHERE world_id = ?"

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
#: A world's entries for a stretch of its log (``bots.storage.lineage``).
SELECT_OUTBOX_RANGE = (
    f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE world_id = ? AND event_id > ? AND event_id <= ? ORDER BY id"
)
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
INSERT_AUDIT = (
    "INSERT INTO audit (at, world_id, channel_key, actor, action, outbox_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
SELECT_ADAPTER_STATE = "SELECT value FROM adapter_state WHERE platform = ? AND key = ?"
UPSERT_ADAPTER_STATE = (
    "INSERT INTO adapter_state (platform, key, value, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (platform, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
)
DELETE_ADAPTER_STATE = "DELETE FROM adapter_state WHERE platform = ? AND key = ?"
TAKE_ADAPTER_STATE = "DELETE FROM adapter_state WHERE platform = ? AND key = ? RETURNING value"
DELETE_STALE_ADAPTER_STATE = (
    "DELETE FROM adapter_state WHERE platform = ? AND substr(key, 1, ?) = ? AND updated_at < ?"
)
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


def select_outbox_by_keys(count: int) -> str:
    """Outbox rows for ``count`` (world_id, event_id) pairs, probing the unique index per pair."""
    values = ", ".join(["(?, ?)"] * count)
    return (
        f"WITH keys (world_id, event_id) AS (VALUES {values}) "
        f"SELECT {', '.join('o.' + c.strip() for c in OUTBOX_COLUMNS.split(','))} "
        "FROM keys JOIN outbox AS o ON o.world_id = keys.world_id AND o.event_id = keys.event_id"
    )


def world_update(world_id: str, fields: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """An UPDATE for these world fields; columns in a fixed order so equal shapes batch together."""
    changes = world_changes(fields)
    sets = ", ".join(f"{name} = ?" for name in [*changes, "updated_at"])
    return f"UPDATE worlds SET {sets} WHERE id = ?", (*changes.values(), time_text(utcnow()), world_id)
