"""The one path a persona's words take from its turn to the channel and to the other personas.

The world yields each turn of a step as it is done; for each: its notices and thoughts go privately
to who may hear them, its words are verified, stored with their outbox entries in one transaction,
handed to the outbox to post, and the other personas are to hear them as posted (redacted or
rewritten), or not at all while they are held or when they were refused. The world lets them be
heard when the step ends, so every turn of a step answers what came before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from adapters.base import Adapter, ChannelRef
from bots.channel_verifier import ChannelVerifier
from bots.moderator_notices import ModeratorNotices
from bots.persona_identity import Identities
from bots.services import Services, quietly
from bots.storage import OutboxEntry, OutboxStatus, StorageUnavailableError, WorldRecord
from bots.world_writer import WorldWriter
from simulation.events import Event
from simulation.fairness import fair_turn, fair_yield
from simulation.world import Step, TinyWorld, Turn

#: What the verdict's action means for the outbox entry.
STATUS_OF = {"pass": OutboxStatus.PENDING, "rewrite": OutboxStatus.PENDING, "hold": OutboxStatus.HELD, "block": OutboxStatus.BLOCKED}


class StepPipeline:
    def __init__(
        self,
        *,
        services: Services,
        channel: ChannelRef,
        record: WorldRecord,
        writer: WorldWriter,
        verifier: ChannelVerifier,
        notices: ModeratorNotices,
        identities: Identities,
    ) -> None:
        self._services = services
        self._channel = channel
        #: The thread people last wrote in (a reply to a persona's post), where the personas answer
        #: until someone writes in the channel again; None for the channel (or the session's own thread).
        self.answer_thread: str | None = None
        self._record = record
        self._writer = writer
        self._verifier = verifier
        self._notices = notices
        self._identities = identities

    @property
    def _adapter(self) -> Adapter:
        return self._services.adapters[self._channel.platform]

    async def take(self, step: Step) -> list[asyncio.Future]:
        """Take ``step`` turn by turn, each persona's words posted as soon as its turn is done, not when
        the step is; then store the rest (the clock, what the others heard). Returns the deliveries it
        started: the posts on their way. Raises what the step raises (a spent budget). A quiet step
        (nobody had anything to do) stores nothing.

        Turns already done when one is taken (the personas of a step think at once, so theirs often
        end together) go with it: their words are checked side by side and stored in one write, so
        the last of them is not posted a check and a write later for each one before it."""
        for agent in step.actors:
            self._services.spawn(quietly(self._adapter.typing(self._channel, self._identities.of(agent.name))))
        posting: list[asyncio.Future] = []
        async with step:
            async for turn in step:
                turns = [turn]
                while step.ready():
                    turns.append(await step.__anext__())
                await self._take_turns(turns, step.world, posting)
        if not step.quiet:
            await self._writer.write()
        return posting

    async def _take_turns(self, turns: list[Turn], world: TinyWorld, posting: list[asyncio.Future]) -> None:
        """Verify, store and post the words of ``turns`` (in the step's order); a delivery started is
        added to ``posting``. Their checks run side by side; each turn is stored and posted as soon
        as its own words and those of the turns before it are checked, together with the turns after
        it whose checks are done by then: a slow check holds back no turn before it."""
        for turn in turns:
            await self._notices.turn(turn, world)  # its notices and thoughts, privately
        turns = [turn for turn in turns if not turn.failed]
        for turn in turns:
            for word in turn.words:
                turn.hear_as(word, None)  # nothing of it is heard unless it is verified and stored
        if len(turns) == 1 and len(turns[0].words) <= 1:
            # Alone (most turns): no task to check its words beside others'.
            entries = [await self._verified(word) for word in turns[0].words]
            await self._store_and_post(turns, entries, posting)
            return
        checks = [[asyncio.ensure_future(self._verified(word)) for word in turn.words] for turn in turns]
        try:
            done = 0
            while done < len(turns):
                await asyncio.gather(*checks[done])
                upto = done + 1
                while upto < len(turns) and all(check.done() for check in checks[upto]):
                    upto += 1
                entries = [check.result() for turn_checks in checks[done:upto] for check in turn_checks]
                await self._store_and_post(turns[done:upto], entries, posting, held=turns[upto:])
                done = upto
        finally:
            for turn_checks in checks:
                for check in turn_checks:
                    check.cancel()

    async def _store_and_post(self, turns: list[Turn], entries: list[OutboxEntry], posting: list[asyncio.Future],
                              held: Sequence[Turn] = ()) -> None:
        """Store ``turns`` (with ``entries``, the outbox entries of their words) in one write, and post
        what may be posted. ``held``: later turns still being checked, left for a later write."""
        try:
            stored = await self._writer.write(entries, held=held)
        except StorageUnavailableError:
            return  # reported once, when it happened; the app is stopping
        by_event = {entry.event_id: entry for entry in stored}
        pending: list[OutboxEntry] = []
        for turn in turns:
            pending += await self._settled(turn, [by_event[word.id] for word in turn.words if word.id in by_event])
        if pending:
            posting.append(self._services.outbox.deliver_soon(self._record.channel_key, pending))
            # The posts go out (up to the platform's answer) before the next persona's reply is
            # checked and stored: a millisecond or two sooner in the channel.
            await fair_yield()
        heard = {entry.event_id: entry.text for entry in pending}
        for turn in turns:
            for word in turn.words:
                if word.id in heard:
                    turn.hear_as(word, heard[word.id])  # as posted, when the step ends

    async def _settled(self, turn: Turn, stored: list[OutboxEntry]) -> list[OutboxEntry]:
        """Say what became of a turn's stored words (held, blocked); returns those to post."""
        for entry in stored:
            await self._notices.not_posted(entry)
        pending = [entry for entry in stored if entry.status is OutboxStatus.PENDING]
        if not any(entry.persona == turn.agent.name for entry in pending):
            # Only thought, or said something held back: nobody is composing any more.
            self._services.spawn(quietly(self._adapter.stopped_typing(self._channel, self._identities.of(turn.agent.name))))
        return pending

    async def _verified(self, word: Event) -> OutboxEntry:
        """The outbox entry of a persona's words: as the channel's checks let them be posted, held or not at all."""
        await fair_turn()
        world = self._writer.world
        recent = world.transcript(last=12, upto=word.id).splitlines()  # the conversation as it stood when said
        verdict = await self._verifier.verdict(world, word.content, word.source, recent=recent,
                                               max_length=self._adapter.max_message_length)
        return OutboxEntry(
            world_id=self._record.id,
            channel_key=self._record.channel_key,
            event_id=word.id,
            persona=word.source,
            identity=self._identities.of(word.source).model_dump(),
            text=verdict.text,
            thread=self.answer_thread or self._channel.thread,
            status=STATUS_OF[verdict.action.value],
            verdict=verdict.model_dump(mode="json"),
        )
