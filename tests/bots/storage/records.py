"""Records the storage tests store: worlds, personas, events, memories, outbox entries and steps."""

from __future__ import annotations

from datetime import UTC, datetime

from bots.storage.base import MemoryWrite, OutboxEntry, PersonaRecord, StepWrite, WorldRecord
from simulation.agent import AgentState
from simulation.events import Event, EventKind
from simulation.memory import Episode, EpisodicMemory

T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


def world(id: str = "w1", channel: str = "console:main", **fields: object) -> WorldRecord:
    return WorldRecord(id=id, channel_key=channel, name=f"World {id}", **fields)


def persona(name: str, position: int = 0) -> PersonaRecord:
    return PersonaRecord(name=name, spec={"name": name, "age": 30}, identity={"name": name}, position=position)


def event(id: int, source: str = "Oscar", content: str | None = None, **fields: object) -> Event:
    return Event(
        id=id,
        kind=EventKind.ACTION,
        step=id,
        time=T0,
        source=source,
        type="TALK",
        content=content or f"message {id}",
        **fields,
    )


def memory(name: str = "Oscar", episodes: int = 3, unread_from: int = 0) -> AgentState:
    eps = [
        Episode(step=i, time=T0, kind="stimulus", type="CONVERSATION", content=f"heard {i}", source="Lisa", event_id=i)
        for i in range(episodes)
    ]
    # A memory comes back with its persona record's spec: the one ``persona`` stores.
    return AgentState(persona=persona(name).spec, episodic=EpisodicMemory(episodes=eps), unread_from=unread_from)


def entry(world_id: str, event_id: int, channel: str = "console:main", text: str | None = None) -> OutboxEntry:
    return OutboxEntry(
        world_id=world_id,
        channel_key=channel,
        event_id=event_id,
        persona="Oscar",
        identity={"name": "Oscar"},
        text=text or f"message {event_id}",
        verdict={"level": "ok"},
    )


def step(world_id: str, first: int, *, count: int = 1, channel: str = "console:main", **fields: object) -> StepWrite:
    """``count`` events from ``first`` on, the last one carried by an outbox entry; ``fields``
    replace any of the write's parts."""
    ids = list(range(first, first + count))
    parts: dict[str, object] = {
        "world": {"clock": {"step": ids[-1]}},
        "events": [event(i) for i in ids],
        "memories": {"Oscar": MemoryWrite.since(memory(unread_from=ids[-1]), 0)},
        "outbox": [entry(world_id, ids[-1], channel)],
    }
    return StepWrite(world_id=world_id, **(parts | fields))
