"""Storing a world as it goes: each write carries what changed since the last one.

New events, the memories that changed, outbox entries, and the usage totals, clock and policy when
they changed go in one transaction. A long-lived world lets go of the past it has stored, as a
restart would, so a channel that runs for months holds its recent past, not its whole life.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from bots.storage import (
    RECENT_EPISODES_HELD,
    RECENT_EVENTS_HELD,
    Fence,
    MemoryWrite,
    OutboxEntry,
    StepWrite,
    Storage,
    UsageRow,
)
from simulation.agent import TinyPerson
from simulation.fairness import fair_turn
from simulation.llm.usage import UsageLedger, UsageTotals
from simulation.world import TinyWorld, Turn


class WorldWriter:
    """The writes of one world. ``stored``: the world as it is now is already in storage (restored
    from it); a new one (a reset) is written whole by its first write. ``fence``: the lease every
    write must still hold (see ``bots.ownership``), or None."""

    def __init__(self, world: TinyWorld, world_id: str, storage: Storage, ledger: UsageLedger, *, stored: bool = True,
                 fence: Callable[[], Fence | None] = lambda: None) -> None:
        self.world = world
        self._fence = fence
        self._world_id = world_id
        self._storage = storage
        self._ledger = ledger
        #: One write at a time: two writes taking the same new events would store them twice.
        self._writing = asyncio.Lock()
        self._closed = False
        #: Events of the world's log that are stored (its ``event_count`` at the last write).
        self._persisted_events = world.event_count if stored else 0
        #: Per persona, what its stored memory looks like (``_mark``) and how many of its episodes
        #: are stored: a write carries only what changed since.
        self._memory_marks: dict[str, tuple[Any, ...]] = {a.name: _mark(a) for a in world.agents} if stored else {}
        self._stored_episodes: dict[str, int] = {a.name: a.episodic.count for a in world.agents} if stored else {}
        #: The world fields (clock, policy) and usage totals as last written: a write carries them
        #: only when they changed, so the several writes of a step do not rewrite them each time.
        self._world_written: dict[str, Any] | None = None
        self._usage_written: dict[str | None, UsageTotals] = {}

    async def write(self, outbox: list[OutboxEntry] | None = None, *, held: Sequence[Turn] = ()) -> list[OutboxEntry]:
        """Store what changed since the last write, with ``outbox`` (the verified words among the new
        events); returns the outbox entries as stored. Nothing, once the world was replaced (``close``).

        ``held``: turns out of their step whose words are still being checked. They are left for a
        later write, with their outbox entries: their events (and what the log gained after them),
        and their personas' memories, which already say they answered."""
        async with self._writing:
            if self._closed:
                return []
            return await self._write(outbox or [], held)

    async def close(self) -> None:
        """No write of this world lands after this (it is being replaced)."""
        async with self._writing:
            self._closed = True

    def persona_stored(self, agent: TinyPerson) -> None:
        """``agent`` was just stored whole (it joined)."""
        self._memory_marks[agent.name] = _mark(agent)
        self._stored_episodes[agent.name] = agent.episodic.count

    def persona_gone(self, name: str) -> None:
        self._memory_marks.pop(name, None)
        self._stored_episodes.pop(name, None)

    async def _write(self, outbox: list[OutboxEntry], held: Sequence[Turn]) -> list[OutboxEntry]:
        world = self.world
        # Sessions wake together when a group commit settles; encoding a step is a slice of CPU.
        await fair_turn()
        new_events = world.events_since(self._persisted_events)
        # From here to the write nothing yields: the memories written are the ones just looked at.
        memories: dict[str, MemoryWrite] = {}
        marks: dict[str, tuple[Any, ...]] = {}
        pending = world.turns_pending
        if held:
            pending = pending | {turn.agent.name for turn in held}
            first_held = min((event.id for turn in held for event in turn.events), default=None)
            if first_held is not None:
                new_events = [event for event in new_events if event.id < first_held]
        for agent in world.agents:
            if agent.name in pending:
                continue  # its turn is written with its events, by a later write
            mark = _mark(agent)
            written = self._memory_marks.get(agent.name)
            if written != mark:
                memories[agent.name] = MemoryWrite.since(agent.state(), self._stored_episodes.get(agent.name, 0),
                                                         row=written is None or written[1:] != mark[1:])
                marks[agent.name] = mark
        fields = {"clock": world.clock.model_dump(mode="json"), "policy": world.policy.model_dump()}
        usage = {persona: replace(totals) for persona, totals in self._ledger.entries(self.world.id).items()
                 if self._usage_written.get(persona) != totals}
        write = StepWrite.model_construct(  # of parts already checked: a write a turn need not check them again
            world_id=self._world_id,
            world=fields if fields != self._world_written else {},
            events=new_events,
            memories=memories,
            outbox=outbox,
            usage=[_usage_row(persona, totals) for persona, totals in usage.items()],
            fence=self._fence(),
        )
        stored = await self._storage.write_step(write)
        self._world_written = fields
        self._usage_written.update(usage)
        # Events added while this write was stored are the next write's.
        self._persisted_events += len(new_events)
        if len(world.events) >= RECENT_EVENTS_HELD + RECENT_EVENTS_HELD // 4:
            # The log's stored past is let go as a restart would, a batch at a time (exports read
            # it from storage).
            world.forget_events_before(min(self._persisted_events, world.event_count - RECENT_EVENTS_HELD))
        self._memory_marks.update(marks)
        for name, memory in memories.items():
            self._stored_episodes[name] = memory.first + len(memory.episodes)
            if (agent := world.find(name)) is not None:
                self._forget_stored_past(agent)
        # The sessions of a group commit wake together here; each goes on only to its next fair turn
        # (a post's delivery, the next step), so none needs one here too.
        return stored

    def _forget_stored_past(self, agent: TinyPerson) -> None:
        """Let go of a persona's stored, folded, no longer recent episodes, as a restart would. Done in
        batches of ``RECENT_EPISODES_HELD``, so it costs nothing on most writes."""
        memory = agent.episodic
        if len(memory.episodes) < 2 * RECENT_EPISODES_HELD:
            return
        stored = self._stored_episodes.get(agent.name, memory.first)
        memory.forget_before(min(memory.consolidated_until, memory.count - RECENT_EPISODES_HELD, stored))


def _usage_row(persona: str | None, totals: UsageTotals) -> UsageRow:
    return UsageRow(
        persona=persona,
        calls=totals.calls,
        cached_calls=totals.cached_calls,
        prompt_tokens=totals.prompt_tokens,
        completion_tokens=totals.completion_tokens,
        cost_usd=totals.cost_usd,
    )


def _mark(agent: TinyPerson) -> tuple[Any, ...]:
    """What tells that a persona's memory changed: every change to it adds an episode, folds some
    (which sets the summary and facts), reads what it heard, or sets its cognitive state (whose fields
    are strings). All but the first tell that its stored row changed, not only its episodes."""
    episodic = agent.episodic
    return (episodic.count, episodic.consolidated_until, agent.unread_from, *vars(agent.cognitive_state).values())
