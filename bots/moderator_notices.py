"""What a channel's moderator, and whoever observes a persona, are told privately.

The moderator hears the world's notices (a persona could not answer), words held for review and
input that was flagged; an observer hears a persona's thoughts and when its words were not posted.
The right to hear it is asked at each delivery, so someone who lost it since hears nothing more.
"""

from __future__ import annotations

from collections.abc import Awaitable

from adapters.base import Adapter, ChannelRef, UserRef, literal, quoted
from bots.commands import prefixed
from bots.services import Services, quietly
from bots.session_config import SessionConfig
from bots.storage import AuditRecord, OutboxEntry, OutboxStatus, WorldRecord
from simulation.events import EventKind
from simulation.world import TinyWorld, Turn


class ModeratorNotices:
    def __init__(self, services: Services, channel: ChannelRef, record: WorldRecord, config: SessionConfig) -> None:
        self._services = services
        self._channel = channel
        self._record = record
        self._config = config

    @property
    def _adapter(self) -> Adapter:
        return self._services.adapters[self._channel.platform]

    async def still_moderator(self, user: UserRef | None) -> bool:
        """Whether ``user`` may still receive what is private to moderators: the right is asked at
        each delivery, so someone who lost it since (settings, roles) stops receiving."""
        return user is not None and await self._services.is_moderator(user, self._channel)

    async def still_moderators(self, users: list[UserRef]) -> list[UserRef]:
        return [user for user in users if await self.still_moderator(user)]

    def reply_private(self, user: UserRef, text: str) -> Awaitable[None]:
        """A private word to someone here, its command hints written as typed on this platform
        (`/approve 7` in the console, `/troupe approve 7` on Discord and Slack)."""
        return self._adapter.reply_private(user, self._channel, prefixed(text, self._adapter.command_prefix))

    async def tell(self, user: UserRef, text: str) -> None:
        await quietly(self.reply_private(user, text))

    async def tell_moderator(self, text: str) -> None:
        moderator = self._config.moderator
        if moderator is not None and await self.still_moderator(moderator):
            await self.tell(moderator, text)

    async def turn(self, turn: Turn, world: TinyWorld) -> None:
        """A turn's notices go to the moderator (a spent budget is said to the whole channel when the
        world pauses), its thoughts to the persona's observers."""
        for event in turn.events:
            if event.kind is EventKind.NOTICE and event.type != "budget":
                await self.tell_moderator(event.content)
            if event.kind is EventKind.ACTION and event.type == "THINK":
                watchers = await self.still_moderators(self._config.observers.get(event.source, []))
                if not watchers:
                    continue
                agent = world.find(event.source)
                state = agent.cognitive_state if agent else None
                # The model's words, its thought and its state alike, stay inside the quote.
                text = f"{literal(event.source)} thinks:\n{quoted(event.content)}"
                if state is not None:
                    text += "\n" + quoted(f"goals: {state.goals or '-'} · attention: {state.attention or '-'} · "
                                           f"emotions: {state.emotions or '-'}")
                for user in watchers:
                    await self.tell(user, text)

    async def not_posted(self, entry: OutboxEntry) -> None:
        """Words held for review are reported to the moderator; whoever watches the persona's thoughts
        also learns that its words were not posted, so a thought that promised an answer is not left
        hanging."""
        if entry.status is OutboxStatus.HELD:
            await self._report_held(entry)
        if entry.status in (OutboxStatus.HELD, OutboxStatus.BLOCKED):
            fate = "held for review" if entry.status is OutboxStatus.HELD else "blocked by verification"
            for user in await self.still_moderators(self._config.observers.get(entry.persona, [])):
                await self.tell(user, f"{literal(entry.persona)}'s message was {fate}: it is not posted (#{entry.id}).")

    async def _report_held(self, entry: OutboxEntry) -> None:
        reasons = "; ".join(entry.verdict.get("reasons", [])) or "a check asked for review"
        await self._services.storage.record_audit(
            AuditRecord(
                world_id=self._record.id,
                channel_key=self._record.channel_key,
                actor="troupe",
                action="held",
                outbox_id=entry.id,
                detail={"persona": entry.persona, "reasons": entry.verdict.get("reasons", [])},
            )
        )
        await self.tell_moderator(
            f"Held a message from {literal(entry.persona)} for review (#{entry.id}): {literal(reasons)}. "
            f"`review` shows it; `approve {entry.id}`, `edit {entry.id} NEW TEXT` or `reject {entry.id}`."
        )
