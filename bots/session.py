"""A channel bound to a world: human messages in, persona posts out, everything stored on the way.

Each channel has its own ``TinyWorld``; channels never share state. A human message is stored as
a stimulus before any persona reacts. Steps are taken by one pipeline (``StepPipeline``): each turn
verified, stored and then posted through the outbox. Steps of one world never overlap; human
messages arriving meanwhile wait for the current step to end and are heard by the next one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from adapters.base import Adapter, ChannelRef, Identity, UserRef
from bots.channel_verifier import ChannelVerifier, withheld_by
from bots.commands import prefixed
from bots.input_screen import InputScreen
from bots.moderator_notices import ModeratorNotices
from bots.persona_admission import PersonaAdmission
from bots.persona_identity import Identities
from bots.persona_names import as_a_person
from bots.services import Services, quietly
from bots.session_config import SessionConfig
from bots.step_pipeline import StepPipeline
from bots.storage import OutboxEntry, OutboxStatus, PersonaRecord, StaleOwnerError, WorldRecord, WorldStatus
from bots.world_writer import WorldWriter
from config.verification import VerificationPolicy
from simulation.agent import TinyPerson
from simulation.clock import SimulatedClock
from simulation.events import Event, EventKind
from simulation.fairness import fair_turn
from simulation.llm.errors import BudgetExceededError
from simulation.persona import PersonaSpec
from simulation.turn_taking import make_policy
from simulation.world import TinyWorld

#: Platform ids of the latest human messages a session remembers hearing, so a message seen again
#: (a catch-up after a restart, a redelivered event) is not heard twice.
HEARD_IDS_HELD = 10_000

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    """What ``run N`` came to, as the moderator sees it: messages posted (or on their way), held for
    review, blocked by verification, thoughts, turns that failed; and whether anyone had something
    new to react to."""

    steps: int
    had_news: bool
    posted: int = 0
    held: int = 0
    blocked: int = 0
    thoughts: int = 0
    failed: int = 0

    @property
    def nothing(self) -> bool:
        return not (self.posted or self.held or self.blocked or self.thoughts or self.failed)


class ChannelSession:
    def __init__(self, record: WorldRecord, world: TinyWorld, channel: ChannelRef, services: Services) -> None:
        self.record = record
        self.channel = channel
        self.services = services
        self.config = SessionConfig.model_validate(record.config)
        self.lock = asyncio.Lock()
        self._runner: asyncio.Task | None = None
        self._steps_left = 0
        #: Counts grants of steps: a grant made while a step runs (a message heard as its posts go
        #: out) is the message's own, and that step does not use it up.
        self._grants = 0
        self._identities = Identities(services, channel.platform, self.config)
        self._notices = ModeratorNotices(services, channel, record, self.config)
        self._verifier = ChannelVerifier(services, channel, record, self.config)
        self._screen = InputScreen(services, channel, record, self._notices)
        self._admission = PersonaAdmission(services, channel, record, self.config, self._identities)
        self._bind(world, stored=True)
        #: The focus group running in this channel, if any: it alone decides who speaks meanwhile.
        self.focus: Any = None
        #: The latest focus group here, running or finished: a probe after it asks its personas again.
        self.last_focus: Any = None
        #: The storyteller's latest suggestion, waiting for ``story inject``.
        self.story_beat: Any = None
        #: Platform ids of the human messages the world heard (an ordered set), and the latest one.
        self._heard_ids: dict[str, None] = {}
        self.last_heard_id: str | None = None
        self._index_heard()

    def _bind(self, world: TinyWorld, *, stored: bool) -> None:
        """Take steps of ``world`` and store them; ``stored``: it is in storage as it is."""
        self.world = world
        self._writer = WorldWriter(world, self.record.id, self.services.storage, self.services.ledger, stored=stored,
                                   fence=lambda: self.services.fence(self.channel.key))
        self._pipeline = StepPipeline(services=self.services, channel=self.channel, record=self.record,
                                      writer=self._writer, verifier=self._verifier, notices=self._notices,
                                      identities=self._identities)

    # -- identity -----------------------------------------------------------------------------

    @property
    def adapter(self) -> Adapter:
        return self.services.adapters[self.channel.platform]

    @property
    def paused(self) -> bool:
        return self.record.status is WorldStatus.PAUSED

    def identity(self, name: str) -> Identity:
        """How ``name``'s posts appear in this channel (``Identities.of``)."""
        return self._identities.of(name)

    # -- input --------------------------------------------------------------------------------

    async def hear(self, user: UserRef, text: str, message_id: str | None = None, *, answer: bool = True,
                   thread: str | None = None) -> Event | None:
        """A person said something in the channel (or in ``thread``, a reply to a post there): every
        persona hears it, then they may answer, in that thread. Without ``answer`` (a person past their
        message allowance) it starts no turns: the personas read it when they next speak.

        ``message_id`` (the platform's) is stored with the stimulus, so a message delivered again
        (a platform retry, a catch-up after a restart) is heard once; None is returned for a repeat.
        """
        if message_id is not None and self.heard(message_id):
            return None
        text = await self._screen.screen(user, text)
        async with self.lock:
            meta = {"message_id": message_id, "user_id": user.id} if message_id is not None else None
            event = await self.world.broadcast(text, self._as_heard(user), meta=meta)
            if message_id is not None:
                self._note_heard(message_id)
                self.last_heard_id = message_id
            await self._writer.write()
            if answer:
                if self.channel.thread is None:  # a branch's world lives in its own thread
                    self._pipeline.answer_thread = thread
                self._grant(1 + self.config.exchanges)
        self.kick()
        return event

    def _as_heard(self, user: UserRef) -> str:
        """Who the world hears: the person's name, marked as a person's when it reads like a persona's
        or the bot's."""
        return as_a_person(user.name, (a.name for a in self.world.agents), self._identities.names_taken()[0])

    async def ask(self, user: UserRef, name: str, text: str, *, exchanges: int | None = None) -> Event:
        """Talk to one persona: the others hear it too, but only the one asked answers first;
        ``exchanges`` (default: the channel's) persona-to-persona exchanges may follow."""
        text = await self._screen.screen(user, text)
        return await self._answered(lambda: self.world.talk_to(name, text, self._as_heard(user)),
                                    self.config.exchanges if exchanges is None else exchanges)

    async def record_stimulus(self, deliver: Callable[[], Awaitable[Event]]) -> Event:
        """Add a stimulus made elsewhere (a story beat) under the lock, store it, let personas react.
        One addressed to a persona is answered by that persona first, as ``ask`` is."""
        return await self._answered(deliver, self.config.exchanges)

    async def _answered(self, stimulus: Callable[[], Awaitable[Event]], exchanges: int) -> Event:
        """Add ``stimulus`` and store it; the persona it is addressed to answers at once, in the same
        hold of the lock, then up to ``exchanges`` more steps may follow. One addressed to nobody is
        answered by the runner."""
        posting: list[asyncio.Future] = []
        async with self.lock:
            event = await stimulus()
            await self._writer.write()
            target = self.world.find(event.target) if event.target else None
            if target is not None:
                if not self.paused:
                    try:
                        _, posting = await self._take_step([target])
                    except BudgetExceededError:
                        return event
                self._steps_left = exchanges
                self._grants += 1
        if target is None:
            self.allow_steps(1 + self.config.exchanges)
            return event
        await _done(posting)
        self.kick()
        return event

    async def whole_log(self) -> list[Event]:
        """The world's whole event log: the stored events before those it holds, then those."""
        if self.world.events_first == 0:
            return list(self.world.events)
        stored = await self.services.storage.read_events(self.record.id)
        return stored[: self.world.events_first] + self.world.events

    def _note_heard(self, message_id: str) -> None:
        self._heard_ids[message_id] = None
        if len(self._heard_ids) > HEARD_IDS_HELD:  # the oldest goes; catching up reads recent history
            del self._heard_ids[next(iter(self._heard_ids))]

    def heard(self, message_id: str) -> bool:
        """This platform message is already part of the world."""
        return message_id in self._heard_ids

    def _index_heard(self) -> None:
        for event in self.world.events:
            message_id = event.meta.get("message_id") if event.kind is EventKind.STIMULUS else None
            if message_id:
                self._note_heard(str(message_id))
                self.last_heard_id = str(message_id)

    # -- steps --------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Personas are taking turns right now."""
        return self._runner is not None and not self._runner.done()

    def allow_steps(self, steps: int) -> None:
        """Let the world take up to ``steps`` more steps now (0 stops it after the current one)."""
        if steps:
            self._grant(max(self._steps_left, steps))
        else:
            self._steps_left = 0
        self.kick()

    def _grant(self, steps: int) -> None:
        self._steps_left = steps
        self._grants += 1

    def kick(self) -> None:
        """Start the runner if the world has something to do and may do it."""
        if self.paused or self._steps_left <= 0 or self.focus is not None:
            return
        if self._runner is None or self._runner.done():
            self._runner = self.services.spawn(self._run_loop())

    async def _run_loop(self) -> None:
        while self._steps_left > 0 and not self.paused:
            # A message to every channel starts hundreds of these in one pass; a step's start
            # (turn-taking, typing, the persona tasks) is a slice of CPU.
            await fair_turn()
            grants = self._grants
            try:
                events = await self._step(if_any=True)
            except BudgetExceededError:
                return
            except StaleOwnerError:
                # Another worker took the channel over; it carries on from what is stored.
                log.warning("%s is run by another worker now; its turns stop here", self.channel.key)
                self._steps_left = 0
                return
            if self._grants != grants:
                continue  # steps granted while this one ran (a message heard): they stand whole
            if events is None:
                self._steps_left = 0
                return
            self._steps_left -= 1

    async def run_steps(self, steps: int) -> RunReport:
        """Run exactly ``steps`` steps now (``run N``); returns what the moderator saw come of them."""
        report = RunReport(steps=steps, had_news=any(a.has_unread() for a in self.world.agents))
        produced: list[Event] = []
        for _ in range(steps):
            try:
                produced += await self._step() or []
            except BudgetExceededError:
                break
        talk = {e.id for e in produced if e.kind is EventKind.ACTION and e.type == "TALK"}
        report.thoughts = sum(1 for e in produced if e.kind is EventKind.ACTION and e.type == "THINK")
        report.failed = sum(1 for e in produced if e.kind is EventKind.NOTICE and e.type != "budget")
        for entry in await self.services.storage.outbox_entries(self.record.id):
            if entry.event_id in talk:
                if entry.status is OutboxStatus.HELD:
                    report.held += 1
                elif entry.status is OutboxStatus.BLOCKED:
                    report.blocked += 1
                else:
                    report.posted += 1
        return report

    async def step_only(self, agents: list[TinyPerson]) -> list[Event]:
        """One step in which only ``agents`` act, stored and posted like any other (focus groups)."""
        return await self._step(agents) or []

    async def _step(self, only: list[TinyPerson] | None = None, *, if_any: bool = False) -> list[Event] | None:
        """Take one step now and return once its posts are out (see ``_take_step``)."""
        async with self.lock:
            events, posting = await self._take_step(only, if_any=if_any)
        await _done(posting)
        return events

    async def _take_step(self, only: list[TinyPerson] | None = None, *,
                         if_any: bool = False) -> tuple[list[Event] | None, list[asyncio.Future]]:
        """The one place a step is taken, under the lock (the caller holds it): the pipeline verifies,
        stores and posts each turn; memory work is stored when it is done; a spent budget pauses the
        world and is raised. Returns the step's events (None when nobody had anything to do, with
        ``if_any``) and the posts on their way."""
        step = None
        try:
            step = await self.world.next_step(only, if_any=if_any)
            posting = await self._pipeline.take(step)
        except BudgetExceededError as error:
            await self._budget_stop(error)
            raise
        finally:
            for work in step.memory_work if step is not None else []:
                self.services.spawn(self._store_memory_work(work))
        return (None if step.quiet else step.events), posting

    async def _store_memory_work(self, work: asyncio.Task[None]) -> None:
        """Store a persona's consolidated memory, and that call's usage, as soon as it is done.

        Awaiting the work makes it the bot's: ``wait_idle`` waits for it and ``stop`` cancels it.
        """
        await work
        async with self.lock:
            if self.record.status is not WorldStatus.STOPPED:
                try:
                    await self._writer.write()
                except StaleOwnerError:
                    # Another worker runs the channel now, from what was stored; this fold is its to redo.
                    log.info("%s went to another worker before a memory fold was stored", self.channel.key)

    async def _budget_stop(self, error: BudgetExceededError) -> None:
        self._steps_left = 0
        self.record.status = WorldStatus.PAUSED
        await self.services.storage.update_world(self.record.id, status=WorldStatus.PAUSED)
        await self._writer.write()
        said = f"it reached {error.reason}, or start a new world" if error.reason else str(error)
        await quietly(
            self.adapter.announce(self.channel,
                                  prefixed(f"“{self.world.name}” is paused: {said}.", self.adapter.command_prefix))
        )

    async def idle(self) -> None:
        while self._runner is not None and not self._runner.done():
            await asyncio.shield(self._runner)

    async def hear_approved(self, entry: OutboxEntry) -> None:
        """A held message a moderator let through (as it was, or edited) is heard by the other
        personas now, as posted."""
        async with self.lock:
            if entry.event_id > 0 and self.world.deliver_later(entry.event_id, entry.text):
                await self._writer.write()

    # -- vetting ------------------------------------------------------------------------------

    async def vet_text(self, text: str, persona: str | None = None) -> str:
        """``text`` as it may be shown in the channel: checked like a persona post (redactions kept);
        withheld, with the reason, when a check would hold or block it."""
        shown, withheld = await self.vet(text, persona)
        return shown if withheld is None else f"(withheld by verification: {withheld})"

    async def vet(self, text: str, persona: str | None = None) -> tuple[str, str | None]:
        """``text`` as it may be shown (redactions kept) and, when a check would hold or block it,
        why: a card that withholds a persona's words says whose they were and why."""
        return await self._verifier.vet(self.world, text, persona)

    async def unposted(self) -> dict[int, str]:
        """This world's persona messages that verification held or blocked, by event id, with why:
        the words are in the world's log but were never posted, so no card may quote them as said."""
        entries = await self.services.storage.outbox_entries(self.record.id)
        return {e.event_id: withheld_by(e.verdict) for e in entries
                if e.status in (OutboxStatus.HELD, OutboxStatus.BLOCKED)}

    # -- control ------------------------------------------------------------------------------

    async def set_status(self, status: WorldStatus) -> None:
        async with self.lock:
            self.record.status = status
            await self.services.storage.update_world(self.record.id, status=status)
        if status is WorldStatus.ACTIVE:
            self._grant(max(self._steps_left, 1 + self.config.exchanges))
            self.kick()

    async def save_config(self) -> None:
        self.record.config = self.config.model_dump(mode="json")
        await self.services.storage.update_world(
            self.record.id, config=self.record.config, policy=self.world.policy.model_dump()
        )

    async def set_policy(self, policy: str | None, exchanges: int | None) -> None:
        async with self.lock:
            if policy is not None:
                self.world.policy = make_policy(policy)
                self.config.policy = policy
            if exchanges is not None:
                self.config.exchanges = exchanges
            await self.save_config()

    def verification_policy(self) -> VerificationPolicy:
        return self.services.policy_for(self.config, self.record.channel_key)

    async def set_safety_mode(self, mode: str) -> None:
        async with self.lock:
            self.config.safety_mode = mode  # type: ignore[assignment]
            await self.save_config()

    async def add_persona(self, spec: PersonaSpec) -> TinyPerson:
        """Add a persona after checking its name and description; malicious ones only join red-team
        channels (``PersonaRefusedError`` otherwise)."""
        red_team = await self._admission.admit(spec)
        async with self.lock:
            if red_team and spec.name not in self.config.red_team_personas:
                self.config.red_team_personas.append(spec.name)
            agent = self.world.add_agent(TinyPerson(spec, self.services.model))
            agent.set_time(self.world.clock.step, self.world.clock.now)
            record = PersonaRecord(
                name=agent.name,
                spec=spec.to_tinytroupe_dict(),
                identity=self.identity(agent.name).model_dump(),
                position=len(self.world.agents) - 1,
            )
            try:
                await self.services.storage.save_persona(self.record.id, record, agent.state())
            except Exception:
                self.world.remove_agent(agent.name)
                raise
            self._writer.persona_stored(agent)
            if red_team:
                await self.save_config()
            return agent

    async def remove_persona(self, name: str) -> tuple[TinyPerson, int]:
        """Remove a persona; returns it and how many of its held messages were dropped with it."""
        async with self.lock:
            agent = self.world.get(name)
            dropped = await self.services.storage.remove_persona(self.record.id, agent.name)
            self.world.remove_agent(agent.name)
            self.config.observers.pop(agent.name, None)
            self._writer.persona_gone(agent.name)
            await self.save_config()
            return agent, dropped

    async def reset(self) -> int:
        """A fresh conversation with the same personas; returns how many held messages it dropped."""
        async with self.lock:
            fresh = TinyWorld(
                self.world.name,
                model=self.services.model,
                policy=make_policy(self.config.policy),
                targeted_talk=self.world.targeted_talk,
                situation=self.world.situation,
                clock=SimulatedClock(real_time=self.world.clock.real_time),
                # The same world to usage and budgets: what was spent before the reset still counts.
                id=self.record.id,
            )
            for agent in self.world.agents:  # the same personas, whatever names they were admitted with
                fresh.add_agent(TinyPerson(agent.spec, self.services.model), known=True)
            await self._writer.close()  # no write of the old world lands after this
            dropped = await self.services.storage.reset_world(
                self.record.id, clock=fresh.clock.model_dump(mode="json"), policy=fresh.policy.model_dump()
            )
            self._bind(fresh, stored=False)
            self._steps_left = 0
            await self._writer.write()
        return dropped

    @staticmethod
    async def _quietly(awaitable: Awaitable[Any]) -> None:
        await quietly(awaitable)


async def _done(posting: list[asyncio.Future]) -> None:
    """Until the posts on their way have gone out (or failed, to be retried by the outbox)."""
    if posting:
        await asyncio.wait(posting)
