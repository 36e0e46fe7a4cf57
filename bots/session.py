"""A channel bound to a world: human messages in, persona posts out, everything stored on the way.

Each channel has its own ``TinyWorld``; channels never share state. A human message is stored as
a stimulus before any persona reacts. Each world step is then verified and written (events,
memories, outbox entries, usage) in one transaction, and only after that posted through the
outbox. Steps of one world never overlap; human messages arriving meanwhile wait for the current
step to end and are heard by the next one.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field

from adapters.base import Adapter, ChannelRef, Identity, UserRef, literal
from bots.commands import prefixed
from bots.outbox import Outbox
from bots.persona_names import impersonated, name_refusal
from bots.storage import (
    RECENT_EPISODES_HELD,
    RECENT_EVENTS_HELD,
    AuditRecord,
    MemoryWrite,
    OutboxEntry,
    OutboxStatus,
    PersonaRecord,
    StepWrite,
    Storage,
    StorageUnavailableError,
    UsageRow,
    WorldRecord,
    WorldStatus,
)
from bots.verification import Verdict, VerdictAction, VerificationContext, Verifier, verify_text
from bots.verification.api import pipeline_for
from bots.verification.checks.injection import inspect_input, quote_untrusted
from bots.verification.checks.secrets import SecretsCheck
from bots.verification.checks.secrets import redact as redact_secrets
from bots.verification.personas import check_persona_spec
from config.settings import BotSettings
from config.verification import VerificationPolicy
from simulation.agent import AgentState, TinyPerson
from simulation.clock import SimulatedClock
from simulation.events import Event, EventKind
from simulation.fairness import fair_turn, fair_yield
from simulation.llm.errors import BudgetExceededError
from simulation.llm.usage import UsageLedger
from simulation.persona import PersonaSpec
from simulation.turn_taking import make_policy
from simulation.world import TinyWorld, WorldState

log = logging.getLogger(__name__)

#: Verification outcomes a session keeps for words not yet delivered to the other personas.
VERIFIED_HELD = 1_000
#: Platform ids of the latest human messages a session remembers hearing, so a message seen again
#: (a catch-up after a restart, a redelivered event) is not heard twice.
HEARD_IDS_HELD = 10_000


@functools.cache
def _secrets() -> SecretsCheck:
    """Finds credentials in what people write; made on first use (its detectors take a while to load,
    and the application loads them off the loop at start, with the verifier)."""
    return SecretsCheck()


PALETTE = ("#e06c75", "#61afef", "#98c379", "#c678dd", "#e5c07b", "#56b6c2", "#d19a66", "#be5046", "#7ec699", "#f08dbb")


def identity_for(name: str, settings: BotSettings, *, demo: bool = False) -> Identity:
    digest = hashlib.sha256(name.encode()).digest()
    return Identity(
        tag="demo model" if demo else None,
        name=name,
        avatar_url=settings.avatar_url_template.replace("{seed}", quote(name)) if settings.avatar_url_template else None,
        colour=PALETTE[digest[0] % len(PALETTE)],
    )


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


class PersonaRefusedError(ValueError):
    """A persona whose description asks for malicious behaviour, in a channel that is not red-team."""


class SessionConfig(BaseModel):
    """A channel's own settings, stored with its world."""

    policy: str = "everyone"
    exchanges: int = 1
    #: Persona name -> users who privately receive its thoughts.
    observers: dict[str, list[UserRef]] = Field(default_factory=dict)
    #: Who started the world; hears notices (a persona could not answer, the budget ran out).
    moderator: UserRef | None = None
    channel_name: str | None = None
    #: ``red-team`` lets personas with malicious descriptions run, every post of theirs labelled.
    safety_mode: Literal["team", "red-team"] = "team"
    #: Changes to the verification policy for this channel only.
    verification: dict[str, Any] = Field(default_factory=dict)
    #: Personas admitted only because the channel is in red-team mode.
    red_team_personas: list[str] = Field(default_factory=list)


class Services:
    """What every session shares: storage, verification, outbox, model, the adapter of each platform."""

    def __init__(
        self,
        *,
        storage: Storage,
        verifier_for: Callable[[SessionConfig, str], Awaitable[Verifier]],
        policy_for: Callable[[SessionConfig, str], VerificationPolicy],
        outbox: Outbox,
        adapters: dict[str, Adapter],
        model: Any,
        ledger: UsageLedger,
        settings: BotSettings,
        spawn: Callable[[Awaitable[Any]], asyncio.Task],
        is_moderator: Callable[[UserRef, ChannelRef], Awaitable[bool]],
    ) -> None:
        self.storage = storage
        self.verifier_for = verifier_for
        self.policy_for = policy_for
        self.outbox = outbox
        self.adapters = adapters
        self.model = model
        self.ledger = ledger
        self.settings = settings
        self.spawn = spawn
        #: Whether someone is a moderator here now (asked before anything private to moderators is delivered).
        self.is_moderator = is_moderator


class ChannelSession:
    def __init__(self, record: WorldRecord, world: TinyWorld, channel: ChannelRef, services: Services) -> None:
        self.record = record
        self.world = world
        self.channel = channel
        self.services = services
        self.config = SessionConfig.model_validate(record.config)
        self.lock = asyncio.Lock()
        self._writing = asyncio.Lock()
        self._runner: asyncio.Task | None = None
        self._steps_left = 0
        #: Events of the world's log that are stored (its ``event_count`` at the last write).
        self._persisted_events = world.event_count
        #: Per persona, what its stored memory looks like (``_mark``) and how many of its episodes
        #: are stored: a write carries only what changed since.
        self._memory_marks: dict[str, tuple[int, str]] = {a.name: self._mark(a) for a in world.agents}
        self._stored_episodes: dict[str, int] = {a.name: a.episodic.count for a in world.agents}
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
        #: Verification's outcome for persona words not yet delivered to the other personas, by
        #: event id: they hear what the channel sees, when it sees it.
        self._verified: dict[int, OutboxEntry] = {}
        self._attach(world)

    def _attach(self, world: TinyWorld) -> None:
        """Follow ``world``: its events, turns and memory work, and what its personas hear of each other."""
        world.subscribe(self._on_event)
        world.on_turn_start(self._on_turn_start)
        world.on_turn_end(self._on_turn_end)
        world.on_memory_work(self._on_memory_work)
        world.heard_as = self._heard_as

    # -- identity -----------------------------------------------------------------------------

    @property
    def adapter(self) -> Adapter:
        return self.services.adapters[self.channel.platform]

    @property
    def paused(self) -> bool:
        return self.record.status is WorldStatus.PAUSED

    def identity(self, name: str) -> Identity:
        """How ``name``'s posts appear: its name, avatar, colour and the labels they must carry.

        A persona stored before its name was refused (one that could pass for the bot or the
        platform) keeps its words and memories, and every post of it is labelled as a persona's.
        """
        identity = identity_for(name, self.services.settings, demo=self.services.model.is_demo)
        tags = [identity.tag] if identity.tag else []
        if name in self.config.red_team_personas:
            tags.insert(0, "red-team simulation")
        if impersonated(name, *self._names_taken()):
            tags.insert(0, "simulated persona")
        return identity.model_copy(update={"tag": ", ".join(tags) or None})

    # -- input --------------------------------------------------------------------------------

    async def hear(self, user: UserRef, text: str, message_id: str | None = None) -> Event | None:
        """A person said something in the channel: every persona hears it, then they may answer.

        ``message_id`` (the platform's) is stored with the stimulus, so a message delivered again
        (a platform retry, a catch-up after a restart) is heard once; None is returned for a repeat.
        """
        if message_id is not None and self.heard(message_id):
            return None
        text = await self._screen_input(user, text)
        async with self.lock:
            meta = {"message_id": message_id, "user_id": user.id} if message_id is not None else None
            event = await self.world.broadcast(text, user.name, meta=meta)
            if message_id is not None:
                self._note_heard(message_id)
                self.last_heard_id = message_id
            await self._write()
            self._steps_left = 1 + self.config.exchanges
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

    async def _redact_secrets(self, user: UserRef, text: str) -> str:
        """A key or token someone pasted is removed before the world (prompts, storage, exports) sees it."""
        found = _secrets().find(text)
        if not found:
            return text
        if await self._still_moderator(self.config.moderator):
            await self._quietly(self._reply_private(
                self.config.moderator, self.channel,
                f"{_whose(user)} message contained what looks like a secret (a key, token or password); the "
                "personas heard it with the secret removed. Consider rotating it: it was posted in the channel."))
        return redact_secrets(text, found)

    async def _screen_input(self, user: UserRef, text: str) -> str:
        """Cut oversized messages; mark attempts to instruct the personas as untrusted content.

        A flagged message still reaches the personas (it is part of the conversation), but wrapped
        so the model reads it as something said, never as instructions; the moderator is told.
        """
        limit = self.services.settings.max_message_chars
        if len(text) > limit:
            await self._quietly(self._reply_private(
                user, self.channel,
                f"Your message was {len(text):,} characters long; the personas heard its first {limit:,} "
                "(`bot.max_message_chars`). Send the rest in another message, or raise that setting."))
            text = text[:limit] + " […]"
        text = await self._redact_secrets(user, text)
        finding = inspect_input(text)
        if finding is None:
            return text
        await self.services.storage.record_audit(
            AuditRecord(
                world_id=self.record.id,
                channel_key=self.record.channel_key,
                actor=f"{self.channel.platform}:{user.id} ({user.name})",
                action="input_flagged",
                detail={"kind": finding.kind, "reason": finding.reason, "text": text[:500]},
            )
        )
        if await self._still_moderator(self.config.moderator):
            whose = _whose(user)
            await self._quietly(
                self._reply_private(
                    self.config.moderator,
                    self.channel,
                    f"{whose} message looks like an attempt to instruct the personas ({finding.reason}). "
                    "They hear it as conversation, marked untrusted, and will not follow it.",
                )
            )
        return quote_untrusted(text)

    async def ask(self, user: UserRef, name: str, text: str, *, exchanges: int | None = None) -> Event:
        """Talk to one persona: the others hear it too, but only the one asked answers first;
        ``exchanges`` (default: the channel's) persona-to-persona exchanges may follow."""
        text = await self._screen_input(user, text)
        async with self.lock:
            event = await self.world.talk_to(name, text, user.name)
            await self._write()
            if not self.paused:
                try:
                    events = await self.world.step(only=[self.world.get(name)])
                except BudgetExceededError as error:
                    await self._budget_stop(error)
                    return event
                await self._write(events)
            self._steps_left = self.config.exchanges if exchanges is None else exchanges
        await self.services.outbox.deliver(self.record.channel_key)
        self.kick()
        return event

    @property
    def busy(self) -> bool:
        """Personas are taking turns right now."""
        return self._runner is not None and not self._runner.done()

    def allow_steps(self, steps: int) -> None:
        """Let the world take up to ``steps`` more steps now (0 stops it after the current one)."""
        self._steps_left = max(self._steps_left, steps) if steps else 0
        self.kick()

    def kick(self) -> None:
        """Start the runner if the world has something to do and may do it."""
        if self.paused or self._steps_left <= 0 or self.focus is not None:
            return
        if self._runner is None or self._runner.done():
            self._runner = self.services.spawn(self._run_loop())

    async def run_steps(self, steps: int) -> RunReport:
        """Run exactly ``steps`` steps now (``run N``); returns what the moderator saw come of them."""
        report = RunReport(steps=steps, had_news=any(a.has_unread() for a in self.world.agents))
        produced: list[Event] = []
        for _ in range(steps):
            async with self.lock:
                try:
                    events = await self.world.step()
                except BudgetExceededError as error:
                    await self._budget_stop(error)
                    break
                await self._write(events)
            produced += events
            await self.services.outbox.deliver(self.record.channel_key)
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
        async with self.lock:
            try:
                events = await self.world.step(only=agents)
            except BudgetExceededError as error:
                await self._budget_stop(error)
                raise
            await self._write(events)
        await self.services.outbox.deliver(self.record.channel_key)
        return events

    async def record_stimulus(self, deliver: Callable[[], Awaitable[Event]]) -> Event:
        """Add a stimulus made elsewhere (a story beat) under the lock, store it, let personas react.
        One addressed to a persona is answered by that persona first, as ``ask`` is."""
        async with self.lock:
            event = await deliver()
            await self._write()
            target = self.world.find(event.target) if event.target else None
            if target is not None and not self.paused:
                try:
                    events = await self.world.step(only=[target])
                except BudgetExceededError as error:
                    await self._budget_stop(error)
                    return event
                await self._write(events)
                self._steps_left = self.config.exchanges
        if target is not None:
            await self.services.outbox.deliver(self.record.channel_key)
            self.kick()
        else:
            self.allow_steps(1 + self.config.exchanges)
        return event

    async def vet_text(self, text: str, persona: str | None = None) -> str:
        """``text`` as it may be shown in the channel: checked like a persona post (redactions kept);
        withheld, with the reason, when a check would hold or block it."""
        shown, withheld = await self.vet(text, persona)
        return shown if withheld is None else f"(withheld by verification: {withheld})"

    async def vet(self, text: str, persona: str | None = None) -> tuple[str, str | None]:
        """``text`` as it may be shown (redactions kept) and, when a check would hold or block it,
        why: a card that withholds a persona's words says whose they were and why."""
        verdict = await self._check(text, persona or "", recent=[], max_length=100_000)
        if verdict.action.value in ("hold", "block"):
            return text, "; ".join(verdict.reasons) or verdict.action.value
        return verdict.text, None

    async def unposted(self) -> dict[int, str]:
        """This world's persona messages that verification held or blocked, by event id, with why:
        the words are in the world's log but were never posted, so no card may quote them as said."""
        entries = await self.services.storage.outbox_entries(self.record.id)
        return {e.event_id: "; ".join(e.verdict.get("reasons") or []) or e.status.value for e in entries
                if e.status in (OutboxStatus.HELD, OutboxStatus.BLOCKED)}

    async def _check(self, text: str, persona: str, *, recent: list[str], max_length: int) -> Verdict:
        """The channel's verdict on ``text`` as ``persona``'s; a check that errors holds it (fail closed)."""
        agent = self.world.find(persona) if persona else None
        context = VerificationContext(
            platform=self.channel.platform,
            channel_key=self.record.channel_key,
            world_id=self.record.id,
            world_name=self.world.name,
            persona=persona,
            persona_spec=agent.persona_data if agent else {},
            recent=recent,
            max_length=max_length,
        )
        try:
            verifier = await self.services.verifier_for(self.config, self.record.channel_key)
            return await verifier.verify(text, context)
        except Exception as error:
            log.exception("verification failed for a message of %s", persona or "the bot")
            return Verdict(action=VerdictAction.HOLD, text=text, reasons=[f"verification error: {error}"])

    async def _run_loop(self) -> None:
        while self._steps_left > 0 and not self.paused:
            # A message to every channel starts hundreds of these in one pass; a step's start
            # (turn-taking, typing, the persona tasks) is a slice of CPU.
            await fair_turn()
            async with self.lock:
                try:
                    events = await self.world.step_if_any()
                except BudgetExceededError as error:
                    await self._budget_stop(error)
                    return
                if events is None:
                    self._steps_left = 0
                    return
                self._steps_left -= 1
                await self._write(events)
            await self.services.outbox.deliver(self.record.channel_key)

    async def idle(self) -> None:
        while self._runner is not None and not self._runner.done():
            await asyncio.shield(self._runner)

    # -- control ------------------------------------------------------------------------------

    async def set_status(self, status: WorldStatus) -> None:
        async with self.lock:
            self.record.status = status
            await self.services.storage.update_world(self.record.id, status=status)
        if status is WorldStatus.ACTIVE:
            self._steps_left = max(self._steps_left, 1 + self.config.exchanges)
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
        channels."""
        refusal = await self._name_refusal(spec.name)
        if refusal is not None:
            await self._record_refusal(spec.name, [refusal])
            raise PersonaRefusedError(f"Cannot add this persona: {refusal}")
        check = check_persona_spec(spec.to_tinytroupe_dict(), self.config.safety_mode)
        if not check.allowed:
            await self._record_refusal(spec.name, check.reasons)
            raise PersonaRefusedError(
                f"{literal(spec.name)} cannot join: " + "; ".join(check.reasons) + ". Personas that harass, deceive "
                "or attack the channel run only in a channel a moderator switched to red-team testing "
                "(`safety red-team`)."
            )
        async with self.lock:
            if check.red_team and spec.name not in self.config.red_team_personas:
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
            self._memory_marks[agent.name] = self._mark(agent)
            self._stored_episodes[agent.name] = agent.episodic.count
            if check.red_team:
                await self.save_config()
            return agent

    async def _name_refusal(self, name: str) -> str | None:
        """Why a persona may not be called ``name`` in this channel, or None.

        The name must not pass for the bot, the platform or its staff, must show as plain words, and
        must pass the channel's checks of persona words (links, personal data, toxicity…): it is
        shown in the bot's own messages.
        """
        refusal = name_refusal(name, *self._names_taken())
        if refusal is not None:
            return refusal
        # The offline checks of the channel's policy; the model-based judge is not asked about a name.
        policy = self.verification_policy().merged({"judge": {"enabled": False, "moderation": False}})
        await asyncio.to_thread(pipeline_for, policy)  # built off the loop the first time
        verdict = await verify_text(name, None, policy, platform=self.channel.platform)
        if verdict.action is VerdictAction.PASS:
            return None
        reasons = "; ".join(verdict.reasons) or verdict.action.value
        return (f"the persona name “{literal(name)}” is shown in the channel, and the checks on persona words "
                f"refuse it ({literal(reasons)}). Give the persona a name that is just a name.")

    def _names_taken(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The names the bot goes by on this channel's platform, and the words the platform refuses in
        a poster's name (none known where the platform is not connected; "Troupe" is refused anyway)."""
        adapter = self.services.adapters.get(self.channel.platform)
        if adapter is None:
            return (), ()
        return adapter.bot_names, adapter.refused_name_parts

    async def _record_refusal(self, name: str, reasons: list[str]) -> None:
        await self.services.storage.record_audit(
            AuditRecord(
                world_id=self.record.id,
                channel_key=self.record.channel_key,
                actor="troupe",
                action="persona_refused",
                detail={"persona": name, "reasons": reasons},
            )
        )

    async def remove_persona(self, name: str) -> tuple[TinyPerson, int]:
        """Remove a persona; returns it and how many of its held messages were dropped with it."""
        async with self.lock:
            agent = self.world.get(name)
            dropped = await self.services.storage.remove_persona(self.record.id, agent.name)
            self.world.remove_agent(agent.name)
            self.config.observers.pop(agent.name, None)
            self._memory_marks.pop(agent.name, None)
            self._stored_episodes.pop(agent.name, None)
            await self.save_config()
            return agent, dropped

    async def reset(self) -> int:
        """A fresh conversation with the same personas; returns how many held messages it dropped."""
        async with self.lock:
            fresh = TinyWorld(
                self.world.name,
                [TinyPerson(a.spec, self.services.model) for a in self.world.agents],
                model=self.services.model,
                policy=make_policy(self.config.policy),
                targeted_talk=self.world.targeted_talk,
                situation=self.world.situation,
                clock=SimulatedClock(real_time=self.world.clock.real_time),
                # The same world to usage and budgets: what was spent before the reset still counts.
                id=self.record.id,
            )
            async with self._writing:  # no write of the old world lands after this
                dropped = await self.services.storage.reset_world(
                    self.record.id, clock=fresh.clock.model_dump(mode="json"), policy=fresh.policy.model_dump()
                )
                self.world = fresh
                self._attach(fresh)
                self._verified = {}
                self._persisted_events = 0
                self._steps_left = 0
                self._memory_marks = {}
                self._stored_episodes = {}
                await self._write_now()
        return dropped

    # -- persistence --------------------------------------------------------------------------

    @staticmethod
    def _mark(agent: TinyPerson) -> tuple[int, str]:
        return (agent.episodic.count + agent.episodic.consolidated_until, agent.cognitive_state.model_dump_json())

    async def _write(self, step_events: list[Event] | None = None) -> list[OutboxEntry]:
        """Store what changed since the last write: events, memories, outbox, usage, clock.

        One write at a time: not every caller holds the session lock (a focus group adds its
        questions between turns, a fold is stored when it is done), and two writes taking the same
        new events would check and post them twice.
        """
        async with self._writing:
            return await self._write_now()

    async def _write_now(self) -> list[OutboxEntry]:
        # Sessions wake together when a group commit settles; encoding a step is a slice of CPU.
        await fair_turn()
        new_events = self.world.events_since(self._persisted_events)
        outbox = [await self._verify(e) for e in new_events if e.kind is EventKind.ACTION and e.type == "TALK"]
        # From here to the write nothing yields: the memories written are the ones just looked at.
        memories: dict[str, MemoryWrite] = {}
        marks: dict[str, tuple[int, str]] = {}
        for agent in self.world.agents:
            mark = self._mark(agent)
            if self._memory_marks.get(agent.name) != mark:
                memories[agent.name] = MemoryWrite.since(agent.state(), self._stored_episodes.get(agent.name, 0))
                marks[agent.name] = mark
        write = StepWrite(
            world_id=self.record.id,
            world={"clock": self.world.clock.model_dump(mode="json"), "policy": self.world.policy.model_dump()},
            events=new_events,
            memories=memories,
            outbox=outbox,
            usage=self._usage_rows(),
        )
        stored = await self.services.storage.write_step(write)
        # Events added while this write was checked and stored are the next write's.
        self._persisted_events += len(new_events)
        if len(self.world.events) >= RECENT_EVENTS_HELD + RECENT_EVENTS_HELD // 4:
            # The log's stored past is let go as a restart would, a batch at a time (exports read
            # it from storage).
            self.world.forget_events_before(min(self._persisted_events, self.world.event_count - RECENT_EVENTS_HELD))
        self._memory_marks.update(marks)
        for name, memory in memories.items():
            self._stored_episodes[name] = memory.first + len(memory.episodes)
            if (agent := self.world.find(name)) is not None:
                self._forget_stored_past(agent)
        for entry in stored:
            self._verified[entry.event_id] = entry
        while len(self._verified) > VERIFIED_HELD:  # words nobody was there to hear
            del self._verified[next(iter(self._verified))]
        await fair_turn()  # and the sessions of a whole group commit wake together here
        for entry in stored:
            if entry.status is OutboxStatus.HELD:
                await self._report_held(entry)
            if entry.status in (OutboxStatus.HELD, OutboxStatus.BLOCKED):
                await self._tell_observers(entry)
        return stored

    async def _tell_observers(self, entry: OutboxEntry) -> None:
        """Whoever watches a persona's thoughts also learns when its words were not posted, so a
        thought that promised an answer is not left hanging."""
        fate = ("held for review" if entry.status is OutboxStatus.HELD
                else "blocked by verification")
        for user in await self._still_moderators(self.config.observers.get(entry.persona, [])):
            await self._quietly(self._reply_private(
                user, self.channel, f"{literal(entry.persona)}'s message was {fate}: it is not posted (#{entry.id})."))

    def _heard_as(self, event: Event) -> str | None:
        """What the other personas hear of ``event``: the words as posted (redacted, rewritten), or
        nothing while they wait for a moderator or were refused."""
        entry = self._verified.pop(event.id, None)
        if entry is None:
            return event.content
        if entry.status in (OutboxStatus.HELD, OutboxStatus.BLOCKED):
            return None
        return entry.text

    async def hear_approved(self, entry: OutboxEntry) -> None:
        """A held message a moderator let through (as it was, or edited) is heard by the other
        personas now, as posted."""
        async with self.lock:
            if entry.event_id > 0 and self.world.deliver_later(entry.event_id, entry.text):
                await self._write()

    def _forget_stored_past(self, agent: TinyPerson) -> None:
        """Let go of a persona's stored, folded, no longer recent episodes, as a restart would: a
        channel that runs for months holds its recent past, not its whole life. Done in batches
        of ``RECENT_EPISODES_HELD``, so it costs nothing on most writes."""
        memory = agent.episodic
        if len(memory.episodes) < 2 * RECENT_EPISODES_HELD:
            return
        stored = self._stored_episodes.get(agent.name, memory.first)
        memory.forget_before(min(memory.consolidated_until, memory.count - RECENT_EPISODES_HELD, stored))

    async def _report_held(self, entry: OutboxEntry) -> None:
        reasons = "; ".join(entry.verdict.get("reasons", [])) or "a check asked for review"
        await self.services.storage.record_audit(
            AuditRecord(
                world_id=self.record.id,
                channel_key=self.record.channel_key,
                actor="troupe",
                action="held",
                outbox_id=entry.id,
                detail={"persona": entry.persona, "reasons": entry.verdict.get("reasons", [])},
            )
        )
        if await self._still_moderator(self.config.moderator):
            await self._quietly(
                self._reply_private(
                    self.config.moderator,
                    self.channel,
                    f"Held a message from {literal(entry.persona)} for review (#{entry.id}): {reasons}. "
                    f"`review` shows it; `approve {entry.id}`, `edit {entry.id} NEW TEXT` or `reject {entry.id}`.",
                )
            )

    def _usage_rows(self) -> list[UsageRow]:
        rows = []
        for persona, totals in self.services.ledger.by_persona(self.world.id).items():
            rows.append(
                UsageRow(
                    persona=persona,
                    calls=totals.calls,
                    cached_calls=totals.cached_calls,
                    prompt_tokens=totals.prompt_tokens,
                    completion_tokens=totals.completion_tokens,
                    cost_usd=totals.cost_usd,
                )
            )
        return rows

    async def _verify(self, event: Event) -> OutboxEntry:
        await fair_turn()
        verdict = await self._check(event.content, event.source, recent=self.world.transcript(last=12).splitlines(),
                                    max_length=self.adapter.max_message_length)
        status = {
            "pass": OutboxStatus.PENDING,
            "rewrite": OutboxStatus.PENDING,
            "hold": OutboxStatus.HELD,
            "block": OutboxStatus.BLOCKED,
        }[verdict.action.value]
        return OutboxEntry(
            world_id=self.record.id,
            channel_key=self.record.channel_key,
            event_id=event.id,
            persona=event.source,
            identity=self.identity(event.source).model_dump(),
            text=verdict.text,
            thread=self.channel.thread,
            status=status,
            verdict=verdict.model_dump(mode="json"),
        )

    # -- world callbacks ----------------------------------------------------------------------

    async def _on_turn_start(self, agent: TinyPerson) -> None:
        self.services.spawn(self._quietly(self.adapter.typing(self.channel, self.identity(agent.name))))

    async def _on_turn_end(self, agent: TinyPerson) -> None:
        """Store and post what a persona said as soon as its turn is done, not when the step is.

        Runs under the session lock (inside the step); the step's own write afterwards stores the
        rest (the clock, what the others heard).
        """
        try:
            stored = await self._write()
        except StorageUnavailableError:
            return  # reported once, when it happened; the app is stopping
        if not any(entry.persona == agent.name and entry.status is OutboxStatus.PENDING for entry in stored):
            # Only thought, or said something held back: nobody is composing any more.
            self.services.spawn(self._quietly(self.adapter.stopped_typing(self.channel, self.identity(agent.name))))
        if any(entry.status is OutboxStatus.PENDING for entry in stored):
            self.services.spawn(self.services.outbox.deliver(self.record.channel_key, stored))
            # The post goes out (up to the platform's answer) before the next persona's reply is
            # checked and stored: a millisecond or two sooner in the channel.
            await fair_yield()

    async def _on_memory_work(self, agent: TinyPerson) -> None:
        if agent.memory_work is not None:
            self.services.spawn(self._store_memory_work(agent.memory_work))

    async def _store_memory_work(self, work: asyncio.Task[None]) -> None:
        """Store a persona's consolidated memory, and that call's usage, as soon as it is done.

        Awaiting the work makes it the bot's: ``wait_idle`` waits for it and ``stop`` cancels it.
        """
        await work
        async with self.lock:
            if self.record.status is not WorldStatus.STOPPED:
                await self._write()

    async def _on_event(self, event: Event) -> None:
        # A spent budget is said to the whole channel when the world pauses (``_budget_stop``).
        if event.kind is EventKind.NOTICE and event.type != "budget" and await self._still_moderator(self.config.moderator):
            await self._quietly(self._reply_private(self.config.moderator, self.channel, event.content))
        if event.kind is EventKind.ACTION and event.type == "THINK":
            watchers = await self._still_moderators(self.config.observers.get(event.source, []))
            if not watchers:
                return
            agent = self.world.find(event.source)
            state = agent.cognitive_state if agent else None
            text = f"{literal(event.source)} thinks: {event.content}"
            if state is not None:
                text += f"\n  goals: {state.goals or '-'} · attention: {state.attention or '-'} · emotions: {state.emotions or '-'}"
            for user in watchers:
                await self._quietly(self._reply_private(user, self.channel, text))

    async def _budget_stop(self, error: BudgetExceededError) -> None:
        self._steps_left = 0
        self.record.status = WorldStatus.PAUSED
        await self.services.storage.update_world(self.record.id, status=WorldStatus.PAUSED)
        await self._write()
        said = f"it reached {error.reason}, or start a new world" if error.reason else str(error)
        await self._quietly(
            self.adapter.announce(self.channel,
                                  prefixed(f"“{self.world.name}” is paused: {said}.", self.adapter.command_prefix))
        )

    async def _still_moderator(self, user: UserRef | None) -> bool:
        """Whether ``user`` may still receive what is private to moderators: the right is asked at
        each delivery, so someone who lost it since (settings, roles) stops receiving."""
        return user is not None and await self.services.is_moderator(user, self.channel)

    async def _still_moderators(self, users: list[UserRef]) -> list[UserRef]:
        return [user for user in users if await self._still_moderator(user)]

    def _reply_private(self, user: UserRef, channel: ChannelRef, text: str) -> Awaitable[None]:
        """A private word to someone here, its command hints written as typed on this platform
        (`/approve 7` in the console, `/troupe approve 7` on Discord and Slack)."""
        return self.adapter.reply_private(user, channel, prefixed(text, self.adapter.command_prefix))

    @staticmethod
    async def _quietly(awaitable: Awaitable[Any]) -> None:
        try:
            await awaitable
        except Exception:
            log.warning("platform call failed", exc_info=True)


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


def _whose(user: UserRef) -> str:
    """"Your" for the console's user (called "you"), else "Ana's"."""
    return "Your" if user.name.casefold() == "you" else f"{user.name}'s"
