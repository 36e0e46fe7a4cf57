"""Binds channels to worlds: starts, stops and restores the session of every channel."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from adapters.base import ChannelRef, UserRef
from bots.outbox import channel_from_key
from bots.services import Services
from bots.session import ChannelSession
from bots.session_config import SessionConfig
from bots.storage import StorageError, WorldRecord, WorldStatus
from simulation.agent import AgentState
from simulation.clock import SimulatedClock
from simulation.events import EventKind
from simulation.turn_taking import make_policy
from simulation.world import TinyWorld, WorldError, WorldState

log = logging.getLogger(__name__)


class SessionManager:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._sessions: dict[str, ChannelSession] = {}

    def get(self, channel_key: str) -> ChannelSession | None:
        return self._sessions.get(channel_key)

    def all(self) -> list[ChannelSession]:
        return list(self._sessions.values())

    async def start(self, channel: ChannelRef, moderator: UserRef, name: str, situation: str | None) -> ChannelSession:
        settings = self.services.settings
        config = SessionConfig(
            policy=settings.default_policy,
            exchanges=settings.default_exchanges,
            moderator=moderator,
            channel_name=channel.name,
        )
        if not await self.services.take(channel.key):
            raise StorageError(f"another Troupe worker runs {channel.key} now; try again in a moment")
        world_id = uuid.uuid4().hex
        world = TinyWorld(
            name,
            model=self.services.model,
            policy=make_policy(config.policy),
            targeted_talk="room",
            situation=situation,
            clock=SimulatedClock(real_time=True),  # a channel's messages happen when people write them
            id=world_id,
        )
        record = WorldRecord(
            id=world_id,
            channel_key=channel.key,
            name=name,
            situation=situation,
            config=config.model_dump(mode="json"),
            clock=world.clock.model_dump(mode="json"),
            policy=world.policy.model_dump(),
            targeted_talk="room",
        )
        await self.services.storage.create_world(record)
        session = ChannelSession(record, world, channel.model_copy(update={"thread": None}), self.services)
        self._sessions[channel.key] = session
        return session

    async def stop(self, channel: ChannelRef) -> None:
        session = self._sessions.get(channel.key)
        if session is None:
            return
        session.allow_steps(0)
        async with session.lock:
            await self.services.storage.stop_world(session.record.id)
            session.record.status = WorldStatus.STOPPED
        self._sessions.pop(channel.key, None)

    async def restore(self, take: Callable[[str], Awaitable[bool]] | None = None,
                      limit: int | None = None) -> list[ChannelSession]:
        """Bring back every bound channel's world as it was stored; resume interrupted turns.

        ``take``: whether this worker may run a channel (it took the channel's lease); channels it
        may not are left to the worker that runs them. ``limit``: at most this many in all.
        """
        restored = []
        for record in await self.services.storage.active_worlds():
            if record.channel_key in self._sessions:
                continue
            if limit is not None and len(self._sessions) >= limit:
                break
            if take is not None and not await take(record.channel_key):
                continue
            session = await self.adopt(record)
            if session is not None:
                restored.append(session)
        return restored

    async def adopt(self, record: WorldRecord) -> ChannelSession | None:
        """Run a stored world here (at a start, or taken over from a worker that stopped or died);
        turns its persona owed an answer are resumed. None if it cannot be rebuilt."""
        try:
            session = await self._load(record)
        except (StorageError, ValueError, WorldError) as error:  # a stored world that cannot be rebuilt
            log.error("could not restore the world of %s: %s", record.channel_key, error)
            return None
        if _answer_owed(session.world):
            session.allow_steps(1 + session.config.exchanges)
        return session

    def forget(self, channel_key: str) -> ChannelSession | None:
        """Stop running a channel here without changing what is stored: another worker runs it now."""
        session = self._sessions.pop(channel_key, None)
        if session is not None:
            session.allow_steps(0)
        return session

    async def last_stopped(self, channel: ChannelRef) -> WorldRecord | None:
        """The world most recently stopped in ``channel``, which ``reopen`` can bring back."""
        stopped = [r for r in await self.services.storage.all_worlds()
                   if r.channel_key == channel.key and r.status is WorldStatus.STOPPED and r.parent_id is None]
        return max(stopped, key=lambda r: r.updated_at) if stopped else None

    async def reopen(self, record: WorldRecord) -> ChannelSession:
        """Bind a stopped world to its channel again, as it was stored.

        A world that cannot be rebuilt (a persona stored by an older version that no longer passes
        the persona checks) raises and stays stopped, its rows untouched.
        """
        session = await self._build(record)
        await self.services.storage.update_world(record.id, status=WorldStatus.ACTIVE)
        record.status = WorldStatus.ACTIVE
        self._sessions[record.channel_key] = session
        return session

    async def _load(self, record: WorldRecord) -> ChannelSession:
        session = await self._build(record)
        self._sessions[record.channel_key] = session
        return session

    async def _build(self, record: WorldRecord) -> ChannelSession:
        """The session of a stored world, not yet bound to its channel."""
        stored = await self.services.storage.load_world(record.id)
        world = TinyWorld.from_state(world_state_from_storage(stored), self.services.model)
        # Usage so far counts against the world's budget after a restart too.
        self.services.ledger.forget(record.id)
        self.services.ledger.merge({"entries": [{"world": record.id, **row.model_dump()} for row in stored.usage]})
        config = SessionConfig.model_validate(record.config)
        channel = channel_from_key(record.channel_key, config.channel_name)
        return ChannelSession(record, world, channel, self.services)


def _answer_owed(world: TinyWorld) -> bool:
    """Someone spoke to the world and its answer was interrupted: no persona acted since, or a step
    was cut short (its actions are stored, the step's end, which moves the clock, is not) while
    a persona still had the words unread.

    Personas who merely have not read each other's last words do not speak up at a restart.
    """
    agents = {a.name for a in world.agents}
    for event in reversed(world.events):
        if event.kind is EventKind.ACTION:
            if event.step < world.clock.step:
                return False  # the latest step ended: whatever it left unsaid was not owed
            return any(agent.has_unread() for agent in world.agents)
        if event.kind is EventKind.STIMULUS and event.source not in agents:
            return any(agent.has_unread() for agent in world.agents)
    return False


def world_state_from_storage(stored: Any) -> WorldState:
    """Rebuild a ``WorldState`` from the stored rows of a world."""
    record: WorldRecord = stored.record
    # A stored memory already carries its persona record's spec (``StoredWorld``). Memories and
    # events are already validated: they go in as they are, not dumped and validated again
    # (seconds for a long-lived world).
    agents = [stored.memories[p.name] if p.name in stored.memories else AgentState(persona=p.spec)
              for p in stored.personas]
    data: dict[str, Any] = {
        "name": record.name,
        "id": record.id,
        "situation": record.situation,
        "targeted_talk": record.targeted_talk,
        "clock": record.clock or {},
        "policy": record.policy or {"kind": SessionConfig.model_validate(record.config).policy},
        "agents": agents,
        "events": stored.events,
        "events_first": stored.events_first,
    }
    return WorldState.model_validate(data)
