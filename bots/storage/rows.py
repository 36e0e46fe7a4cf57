"""Models as table rows and rows as models.

A row is a tuple of the values the tables keep (JSON and times as text, enums as their values), in
the order of the column lists below. Nothing here is particular to SQLite: any SQL backend with
these tables reads and writes rows through it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from enum import Enum
from typing import Any

import pydantic_core
from pydantic import BaseModel

from bots.storage.base import (
    AuditRecord,
    MemoryWrite,
    OutboxEntry,
    PersonaRecord,
    StorageError,
    UsageRow,
    WorldRecord,
    WorldStatus,
)
from simulation.agent import AgentState
from simulation.events import Event
from simulation.memory import Episode

WORLD_COLUMNS = (
    "id, channel_key, name, situation, status, config, clock, policy, targeted_talk, created_at, updated_at, "
    "parent_id, fork_event, thread"
)
OUTBOX_COLUMNS = (
    "id, world_id, channel_key, event_id, persona, identity, text, thread, status, verdict, "
    "platform_message_id, attempts, error, created_at, posted_at"
)
AUDIT_COLUMNS = "id, at, world_id, channel_key, actor, action, outbox_id, detail"
#: Fields ``update_world`` and ``StepWrite.world`` may change, and how each is stored.
WORLD_FIELDS = ("name", "situation", "status", "config", "clock", "policy", "targeted_talk")
WORLD_JSON_FIELDS = frozenset({"config", "clock", "policy"})
#: What a memory row leaves out: episodes have their own table, the persona its record.
MEMORY_ROW_EXCLUDES: dict[str, Any] = {"persona": True, "episodic": {"episodes", "first"}}

# -- models as rows ---------------------------------------------------------------------------


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


def to_json(value: Any) -> str:
    """Compact JSON. It runs for several rows of every step, so pydantic's encoder does it, a few
    times faster than the standard library's (and the same text, but for an aware datetime in UTC
    written with ``Z``, as models already are). Raises ``TypeError`` for a value JSON cannot hold."""
    if not value:
        if value == {}:
            return "{}"
        if value == []:
            return "[]"
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    try:
        return pydantic_core.to_json(value, fallback=_json_default).decode()
    except pydantic_core.PydanticSerializationError as error:
        raise TypeError(str(error)) from error


def enum_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def time_text(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def world_params(record: WorldRecord) -> tuple[Any, ...]:
    return (
        record.id,
        record.channel_key,
        record.name,
        record.situation,
        enum_value(record.status),
        to_json(record.config),
        to_json(record.clock),
        to_json(record.policy),
        record.targeted_talk,
        time_text(record.created_at),
        time_text(record.updated_at),
        record.parent_id,
        record.fork_event,
        record.thread,
    )


def world_changes(fields: dict[str, Any]) -> dict[str, Any]:
    """These world fields as stored, in ``WORLD_FIELDS`` order (so equal shapes batch together)."""
    unknown = sorted(set(fields) - set(WORLD_FIELDS))
    if unknown:
        raise ValueError(f"cannot update world field(s) {', '.join(unknown)}; known: {', '.join(WORLD_FIELDS)}")
    changes: dict[str, Any] = {}
    for name in WORLD_FIELDS:
        if name not in fields:
            continue
        value = fields[name]
        if name in WORLD_JSON_FIELDS:
            value = to_json(value)
        elif name == "status":
            value = WorldStatus(enum_value(value)).value
        changes[name] = value
    return changes


def persona_params(world_id: str, persona: PersonaRecord) -> tuple[Any, ...]:
    return (world_id, persona.name, to_json(persona.spec), to_json(persona.identity), persona.position)


def event_params(world_id: str, event: Event) -> tuple[Any, ...]:
    return (
        world_id,
        event.id,
        enum_value(event.kind),
        event.step,
        time_text(event.time),
        event.source,
        event.type,
        event.content,
        event.target,
        to_json(event.recipients),
        event.model,
        to_json(event.meta),
    )


def outbox_params(entry: OutboxEntry) -> tuple[Any, ...]:
    return (
        entry.world_id,
        entry.channel_key,
        entry.event_id,
        entry.persona,
        to_json(entry.identity),
        entry.text,
        entry.thread,
        enum_value(entry.status),
        to_json(entry.verdict),
        entry.platform_message_id,
        entry.attempts,
        entry.error,
        time_text(entry.created_at),
        time_text(entry.posted_at),
    )


def usage_params(world_id: str, row: UsageRow) -> tuple[Any, ...]:
    return (
        world_id,
        row.persona or "",
        row.calls,
        row.cached_calls,
        row.prompt_tokens,
        row.completion_tokens,
        row.cost_usd,
    )


def memory_params(world_id: str, name: str, state: AgentState) -> tuple[Any, ...]:
    return (world_id, name, state.model_dump_json(exclude=MEMORY_ROW_EXCLUDES))


def episode_params(world_id: str, name: str, memory: MemoryWrite) -> Iterator[tuple[Any, ...]]:
    for seq, episode in enumerate(memory.episodes, start=memory.first):
        yield (world_id, name, seq, episode.model_dump_json())


def audit_params(record: AuditRecord) -> tuple[Any, ...]:
    return (
        time_text(record.at),
        record.world_id,
        record.channel_key,
        record.actor,
        record.action,
        record.outbox_id,
        to_json(record.detail),
    )


# -- rows as models ---------------------------------------------------------------------------


def memories_from_rows(
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


def world_from_row(row: Sequence[Any]) -> WorldRecord:
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
        parent_id=row[11],
        fork_event=row[12],
        thread=row[13],
    )


def persona_from_row(row: Sequence[Any]) -> PersonaRecord:
    return PersonaRecord(name=row[0], spec=json.loads(row[1]), identity=json.loads(row[2]), position=row[3])


def event_from_row(row: Sequence[Any]) -> Event:
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


def outbox_from_row(row: Sequence[Any]) -> OutboxEntry:
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


def audit_from_row(row: Sequence[Any]) -> AuditRecord:
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


def usage_from_row(row: Sequence[Any]) -> UsageRow:
    return UsageRow(
        persona=row[0] or None,
        calls=row[1],
        cached_calls=row[2],
        prompt_tokens=row[3],
        completion_tokens=row[4],
        cost_usd=row[5],
    )

