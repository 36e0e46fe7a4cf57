"""Branches: forks of a channel's world that run beside it, each in a thread of the channel.

``fork NAME`` copies the channel's world (personas, memories, the conversation so far) without a
model call and binds the copy to a thread opened for it (on the console, which has no threads, to a
section of its own: its posts are labelled with its name, and ``branch NAME TEXT`` talks to it).
What is written in a branch's thread is heard by that branch only; the channel's world never hears
it, and a branch never hears the channel. A branch is stored as its parent and the event it was
forked at, with only its own events after that; it is restored with its parent after a restart.
Its model calls are counted in its parent's usage, so every branch draws on one budget.
"""

from __future__ import annotations

import logging
import re
import uuid

from adapters.base import ChannelRef
from bots.services import Services
from bots.session import ChannelSession
from bots.session_manager import SessionManager, _answer_owed, world_state_from_storage
from bots.storage import MemoryWrite, PersonaRecord, StepWrite, UsageRow, WorldRecord, WorldStatus
from simulation.world import TinyWorld, WorldError

log = logging.getLogger(__name__)

#: What a branch may be called: it is typed in commands and shown in thread titles.
BRANCH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
#: Names of the channel's own world in ``compare`` (not available to branches).
MAIN_NAMES = ("main",)
#: Where a branch talks on a platform without threads: a section of the channel, by its name.
SECTION_PREFIX = "branch:"


class Branches:
    """The running branches of every channel, by the thread they talk in."""

    def __init__(self, services: Services, channels: SessionManager) -> None:
        self.services = services
        #: The channels' own worlds, which hear what is written outside branches' threads.
        self.channels = channels
        self._sessions: dict[tuple[str, str], ChannelSession] = {}
        #: Threads of stopped branches, with the branch's name: what is written there reaches no world.
        self._stopped: dict[tuple[str, str], str] = {}

    # -- finding them -------------------------------------------------------------------------

    def session_in(self, channel: ChannelRef) -> ChannelSession | None:
        """The branch whose thread ``channel`` points at, if it is one."""
        return self._sessions.get((channel.key, channel.thread)) if channel.thread is not None else None

    def hearing(self, channel: ChannelRef) -> ChannelSession | None:
        """The world that hears what is written at ``channel``: in a branch's thread that branch,
        anywhere else in the channel the channel's world (None if neither runs)."""
        return self.session_in(channel) or self.channels.get(channel.key)

    def stopped_in(self, channel: ChannelRef) -> str | None:
        """The name of the stopped branch whose thread ``channel`` points at, if it is one."""
        return self._stopped.get((channel.key, channel.thread)) if channel.thread is not None else None

    def of_channel(self, channel_key: str) -> list[ChannelSession]:
        """The running branches of a channel, oldest first."""
        return [s for (key, _), s in self._sessions.items() if key == channel_key]

    def named(self, channel_key: str, name: str) -> ChannelSession | None:
        wanted = name.casefold()
        return next((s for s in self.of_channel(channel_key) if s.world.name.casefold() == wanted), None)

    @staticmethod
    def is_branch(session: ChannelSession) -> bool:
        return session.record.parent_id is not None

    # -- making them --------------------------------------------------------------------------

    async def check_name(self, parent: ChannelSession, name: str) -> None:
        """Refuse (``WorldError``) a name a new branch of ``parent``'s channel may not take."""
        if not BRANCH_NAME.fullmatch(name):
            raise WorldError(f"{name!r} cannot name a branch: use up to 40 letters, digits, '-', '_' or '.', "
                             "starting with a letter or digit (e.g. discount-10)")
        if name.casefold() in MAIN_NAMES:
            raise WorldError(f"“{name}” names the channel's own world; choose another name for the branch")
        taken = {s.world.name.casefold() for s in self.of_channel(parent.record.channel_key)}
        for record in await self.services.storage.branches(parent.record.id):
            taken.add(record.name.casefold())
        if name.casefold() in taken:
            raise WorldError(f"there is already a branch named “{name}” here; choose another name "
                             "(`status` lists the branches)")

    async def fork_world(self, parent: ChannelSession, name: str, *, at: int | None = None) -> TinyWorld:
        """A copy of ``parent``'s world (from right after event ``at``, when given), not yet stored or
        bound; no model call. Its calls count as its parent's (one budget)."""
        await self.check_name(parent, name)
        if at is not None and at > parent.world.event_count:
            raise WorldError(f"there is no event #{at} in “{parent.world.name}”: its events run from #1 to "
                             f"#{parent.world.event_count} (`export md` shows them with their ids)")
        async with parent.lock:
            return await parent.world.fork(name, id=parent.world.id, at=at)

    async def bind(self, parent: ChannelSession, world: TinyWorld, thread: str) -> ChannelSession:
        """Store the fork ``world`` of ``parent`` as a branch talking in ``thread``, and run it."""
        config = parent.config.model_copy(deep=True, update={"branch": world.name})
        record = WorldRecord(
            id=uuid.uuid4().hex,
            channel_key=parent.record.channel_key,
            name=world.name,
            situation=world.situation,
            status=WorldStatus.PAUSED if parent.paused else WorldStatus.ACTIVE,
            config=config.model_dump(mode="json"),
            clock=world.clock.model_dump(mode="json"),
            policy=world.policy.model_dump(),
            targeted_talk=world.targeted_talk,
            parent_id=parent.record.id,
            fork_event=world.event_count,
            thread=thread,
        )
        personas = [PersonaRecord(name=a.name, spec=a.spec.to_tinytroupe_dict(),
                                  identity=parent.identity(a.name).model_dump(), position=i)
                    for i, a in enumerate(world.agents)]
        storage = self.services.storage
        await storage.create_world(record, personas)
        # The memories the personas hold now; their past before that, already folded into each
        # memory's summary, stays with the parent. The log is shared, not written again.
        memories = {a.name: MemoryWrite(state=a.state(), first=a.episodic.first, episodes=list(a.episodic.episodes))
                    for a in world.agents}
        await storage.write_step(StepWrite(world_id=record.id, memories=memories,
                                           fence=self.services.fence(record.channel_key)))
        return self._run(record, world, parent.channel)

    def _run(self, record: WorldRecord, world: TinyWorld, channel: ChannelRef) -> ChannelSession:
        assert record.thread is not None
        session = ChannelSession(record, world, channel.model_copy(update={"thread": record.thread}), self.services)
        self._sessions[(record.channel_key, record.thread)] = session
        return session

    # -- restoring and stopping them ----------------------------------------------------------

    async def restore(self, parent: ChannelSession) -> list[ChannelSession]:
        """Run again the branches of ``parent``'s world (and theirs) as they were stored; the usage
        they stored counts against the one budget they share with it."""
        usage: list[list[UsageRow]] = [await self.services.storage.usage(parent.record.id)]
        restored = await self._restore_under(parent.record, parent.world.id, parent.channel, usage)
        if len(usage) > 1:
            self._share_usage(parent.world.id, usage)
        return restored

    async def _restore_under(self, record: WorldRecord, budget_id: str, channel: ChannelRef,
                             usage: list[list[UsageRow]]) -> list[ChannelSession]:
        restored = []
        for branch in await self.services.storage.branches(record.id):
            if branch.status is WorldStatus.STOPPED and branch.thread is not None:
                self._stopped[(branch.channel_key, branch.thread)] = branch.name
            if branch.status is not WorldStatus.STOPPED and branch.thread is not None and \
                    (branch.channel_key, branch.thread) not in self._sessions:
                try:
                    stored = await self.services.storage.load_world(branch.id)
                    world = TinyWorld.from_state(world_state_from_storage(stored), self.services.model)
                except (ValueError, WorldError) as error:
                    log.error("could not restore the branch %s of %s: %s", branch.name, branch.channel_key, error)
                    continue
                world.id = budget_id
                for agent in world.agents:
                    agent.world_id = budget_id
                usage.append(stored.usage)
                session = self._run(branch, world, channel)
                if _answer_owed(world):  # its answer to the last message was cut short: it is given now
                    session.allow_steps(1 + session.config.exchanges)
                restored.append(session)
            restored += await self._restore_under(branch, budget_id, channel, usage)
        return restored

    def _share_usage(self, budget_id: str, stored: list[list[UsageRow]]) -> None:
        """The usage of a world and its branches, one budget: each wrote the running totals they share,
        so the largest stored totals are the latest."""
        latest: dict[str | None, UsageRow] = {}
        for rows in stored:
            for row in rows:
                known = latest.get(row.persona)
                if known is None or (row.calls, row.cost_usd) > (known.calls, known.cost_usd):
                    latest[row.persona] = row
        ledger = self.services.ledger
        ledger.forget(budget_id)
        ledger.merge({"entries": [{"world": budget_id, **row.model_dump()} for row in latest.values()]})

    async def stop(self, branch: ChannelSession) -> list[str]:
        """Stop a branch (its history is kept) and the branches forked from it; returns their names."""
        stopped = [branch]
        for other in self.of_channel(branch.record.channel_key):
            if other.record.parent_id == branch.record.id:
                stopped.append(other)
        names = []
        for session in stopped:
            if session is not branch:
                names += await self.stop(session)
                continue
            session.allow_steps(0)
            async with session.lock:
                await self.services.storage.stop_world(session.record.id)
                session.record.status = WorldStatus.STOPPED
            assert session.record.thread is not None
            self._sessions.pop((session.record.channel_key, session.record.thread), None)
            self._stopped[(session.record.channel_key, session.record.thread)] = session.world.name
            names.insert(0, session.world.name)
        return names

    def forget(self, channel_key: str) -> list[ChannelSession]:
        """Stop running a channel's branches here, leaving what is stored (the channel's world was
        stopped, or another worker runs the channel now)."""
        gone = self.of_channel(channel_key)
        for session in gone:
            session.allow_steps(0)
            assert session.record.thread is not None
            self._sessions.pop((channel_key, session.record.thread), None)
        return gone
