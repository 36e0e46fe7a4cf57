"""``TinyWorld``: agents in one environment, with turn-taking, a simulated clock and an event log.

Within a step the chosen agents act concurrently on what they had heard before the step; what they
say is delivered when the step ends, so their inputs are independent and the log's order (agent
order, not completion order) is the same on every run. A step is taken turn by turn
(``async for turn in await world.next_step()``): each agent's turn is yielded as soon as it and the
ones before it have finished, and whoever drives the step decides what the others hear of its words.
The world never calls its driver back.
"""

from __future__ import annotations

import asyncio
import json
import unicodedata
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from pydantic import BaseModel, Field

from simulation.actions import ActionType, CognitiveState
from simulation.agent import AgentState, TinyPerson, TurnResult
from simulation.clock import SimulatedClock
from simulation.events import Event, EventKind
from simulation.llm.base import LanguageModel
from simulation.llm.errors import BudgetExceededError, ContentFilteredError, LLMError
from simulation.names import name_key
from simulation.turn_taking import POLICY_ADAPTER, PicksRefusedError, TurnTakingPolicy, make_policy
from simulation.untrusted import quote, speaker

TargetedTalk = Literal["private", "room"]

SAVE_FORMAT = 1


class WorldError(Exception):
    """Misuse of a world: unknown agent, duplicate name, bad saved file."""


#: The notice code of "this model gives words but no thoughts" (said once per world).
WORDS_ONLY_NOTICE = "words_only"
#: How far back in the log a person must have spoken for a persona to address them by name.
ADDRESSEES_SEEN = 200


class WorldState(BaseModel):
    """A whole world as JSON: agents with memories, clock, policy, log."""

    format: int = SAVE_FORMAT
    name: str
    #: Unique id for usage and budgets (two worlds may share a name); defaults to the name.
    id: str | None = None
    situation: str | None = None
    targeted_talk: TargetedTalk = "private"
    clock: SimulatedClock
    policy: TurnTakingPolicy
    agents: list[AgentState]
    #: The event log, or its recent part: ``events_first`` events came before ``events[0]``.
    events: list[Event] = Field(default_factory=list)
    events_first: int = Field(default=0, ge=0)


class TinyWorld:
    def __init__(
        self,
        name: str,
        agents: Iterable[TinyPerson] = (),
        *,
        model: LanguageModel,
        policy: TurnTakingPolicy | str = "everyone",
        targeted_talk: TargetedTalk = "private",
        situation: str | None = None,
        clock: SimulatedClock | None = None,
        id: str | None = None,
    ) -> None:
        self.name = name
        self.id = id or name
        self.model = model
        self.policy: TurnTakingPolicy = make_policy(policy) if isinstance(policy, str) else policy
        self.targeted_talk: TargetedTalk = targeted_talk
        self.situation = situation
        self.clock = clock or SimulatedClock()
        #: The event log, or (in a long-lived world restored from storage) its recent part.
        self.events: list[Event] = []
        self._words_only_said = False
        #: How many events came before ``events[0]`` (kept by whoever stored them).
        self.events_first = 0
        #: Personas in a step whose turn has not come out of it yet: their memory may already hold
        #: the turn (the model answered) while the log does not (``turns_pending``).
        self._turns_pending: set[str] = set()
        self._agents: list[TinyPerson] = []
        for agent in agents:
            self.add_agent(agent)

    # -- agents -------------------------------------------------------------------------------

    @property
    def agents(self) -> list[TinyPerson]:
        return list(self._agents)

    @property
    def turns_pending(self) -> frozenset[str]:
        """Personas taking a turn whose events are not in the log yet. Whoever stores the world as it
        goes leaves their memories for a later write: a memory saying "I answered" stored without
        the answer would, after a crash, leave the answer neither given nor owed."""
        return frozenset(self._turns_pending)

    def add_agent(self, agent: TinyPerson, *, known: bool = False) -> TinyPerson:
        """Add ``agent``, unless a persona here has its name, one that looks the same to a reader
        (``simulation.names``: "Priyа Nair" with a Cyrillic а, "PRIYA NAIR", "Priya  Nair") or
        answers to it (``find``): posts show only names, and ``find`` must tell every persona apart.

        ``known``: the persona was in this world before (restored from storage, copied into a fork,
        kept through a reset), and is refused only for the very same name: one stored before
        look-alikes were refused keeps its place, and ``find`` then reaches it by its exact name.
        """
        if known:
            same = next((a for a in self._agents if _fold_name(a.name) == _fold_name(agent.name)), None)
        else:
            key = name_key(agent.name)
            same = next((a for a in self._agents if name_key(a.name) == key), None) or self.find(agent.name)
        if same is not None:
            if _fold_name(same.name) == _fold_name(agent.name):
                raise WorldError(f"{self.name!r} already has a persona named {same.name!r}: give the new persona "
                                 "another name")
            if name_key(same.name) == name_key(agent.name):
                raise WorldError(f"{self.name!r} already has a persona named {same.name!r}, and {agent.name!r} "
                                 "would look the same in the channel (the names differ only in look-alike letters, "
                                 "accents, case, punctuation or spaces): give the new persona another name")
            raise WorldError(f"{self.name!r} already has a persona named {same.name!r}, who answers to "
                             f"{agent.name!r}: give the new persona another name")
        agent.world_name = self.name
        agent.world_id = self.id
        agent.situation = self.situation
        self._agents.append(agent)
        return agent

    def remove_agent(self, name: str) -> TinyPerson:
        agent = self.get(name)
        self._agents.remove(agent)
        return agent

    def find(self, name: str) -> TinyPerson | None:
        """An agent by full name, else by first name, else by surname (or any one part of its name),
        each only when unambiguous; case, accents, look-alike letters, punctuation and spacing do not
        matter ("lindqvist", "Diego Hernandez", "priya  nair"), as they do not to a reader."""
        for agent in self._agents:
            if agent.name == name:  # the usual case (a recipient, a speaker): no folding needed
                return agent
        key = name_key(name.strip().lstrip("@"))
        for part in (lambda a: a.name, lambda a: a.first_name, lambda a: a.name.split()[-1], None):
            if part is None:
                matches = [a for a in self._agents if key in name_key(a.name).split()]
            else:
                matches = [a for a in self._agents if name_key(part(a)) == key]
            if len(matches) == 1:
                return matches[0]
            if matches:
                # Ambiguous: two people answer to it (or, for a full name, two look-alike names
                # stored before look-alikes were refused: only the exact name tells them apart).
                return None
        return None

    def find_leading(self, text: str) -> tuple[TinyPerson, str] | None:
        """The persona whose name starts ``text``, and what follows it: ``"Priya Nair is the budget
        ok?"`` gives Priya Nair and ``"is the budget ok?"``. A full name is looked for first (the
        longest that fits), then a first name as ``find`` takes it; case does not matter."""
        folded = _fold(text.strip().lstrip("@"))
        for agent in sorted(self._agents, key=lambda a: -len(a.name)):
            name = _fold_name(agent.name)
            if folded.startswith(name) and (len(folded) == len(name) or not folded[len(name)].isalnum()):
                return agent, text.strip().lstrip("@")[len(agent.name):].lstrip(" ,:;")
        first, _, rest = text.strip().partition(" ")
        named = self.find(first.rstrip(",:;"))
        return (named, rest.strip()) if named is not None else None

    def get(self, name: str) -> TinyPerson:
        agent = self.find(name)
        if agent is None:
            known = ", ".join(a.name for a in self._agents) or "none yet"
            raise WorldError(f"no persona named {name!r} in {self.name!r} (personas: {known})")
        return agent

    # -- the log ------------------------------------------------------------------------------

    def _emit(self, event: Event) -> Event:
        self.events.append(event)
        return event

    def _event(self, *, id: int | None = None, **fields: Any) -> Event:
        return Event(id=self.event_count + 1 if id is None else id, step=self.clock.step, time=self.clock.now, **fields)

    @property
    def event_count(self) -> int:
        """Events in the world's whole life, held or not (event ids run from 1 to this)."""
        return self.events_first + len(self.events)

    def events_since(self, count: int) -> list[Event]:
        """The events after the first ``count`` (those with ids above ``count``)."""
        return self.events[max(count - self.events_first, 0) :]

    def forget_events_before(self, count: int) -> None:
        """Stop holding the first ``count`` events of the log (the caller has them stored)."""
        drop = min(max(count - self.events_first, 0), len(self.events))
        if drop:
            del self.events[:drop]
            self.events_first += drop

    # -- stimuli from outside -----------------------------------------------------------------

    def _sync_time(self) -> None:
        for agent in self._agents:
            agent.set_time(self.clock.step, self.clock.now)

    async def broadcast(self, text: str, source: str = "moderator", *, meta: dict[str, Any] | None = None) -> Event:
        """Say something to every agent. ``meta`` travels with the event (e.g. the platform message id)."""
        self._sync_time()
        event = self._event(
            kind=EventKind.STIMULUS,
            source=source,
            type="CONVERSATION",
            content=text,
            recipients=[a.name for a in self._agents],
            meta=meta or {},
        )
        for agent in self._agents:
            agent.listen(text, source, event_id=event.id)
        self._emit(event)
        return event

    async def talk_to(self, name: str, text: str, source: str = "moderator") -> Event:
        """Say something to one agent; in a shared room the others hear it too."""
        target = self.get(name)
        self._sync_time()
        hearers = self._agents if self.targeted_talk == "room" else [target]
        event = self._event(
            kind=EventKind.STIMULUS,
            source=source,
            type="CONVERSATION",
            content=text,
            target=target.name,
            recipients=[a.name for a in hearers],
        )
        for agent in hearers:
            agent.listen(text, source, target=target.name, event_id=event.id)
        self._emit(event)
        return event

    async def say_for(self, name: str, text: str, *, to: str | None = None) -> Event:
        """Put words in a persona's mouth (a scripted line): it remembers saying them and the others
        hear them from it, as if it had said them in a turn."""
        speaker = self.get(name)
        target = self.get(to) if to else None
        self._sync_time()
        if target is not None and target is not speaker and self.targeted_talk == "private":
            hearers = [target]
        else:
            hearers = [a for a in self._agents if a is not speaker]
        event = self._event(
            kind=EventKind.ACTION,
            source=speaker.name,
            type=ActionType.TALK.value,
            content=text,
            target=target.name if target else None,
            recipients=[a.name for a in hearers],
        )
        speaker.said(text, target=event.target)
        self._emit(event)
        self._deliver(event, text)
        return event

    async def show(self, description: str) -> Event:
        """Make every agent see something (a document, a product, a scene)."""
        self._sync_time()
        event = self._event(
            kind=EventKind.STIMULUS,
            source="world",
            type="VISUAL",
            content=description,
            recipients=[a.name for a in self._agents],
        )
        for agent in self._agents:
            agent.see(description, event_id=event.id)
        self._emit(event)
        return event

    def pick(self, *names: str) -> list[TinyPerson]:
        """Choose who speaks next (moderator policy): at the next step, or, for those with nothing new
        to answer, once they have. Returns the picked personas that have nothing to answer yet."""
        picked = [self.get(name) for name in names]
        try:
            self.policy.pick([agent.name for agent in picked])
        except PicksRefusedError as error:
            raise WorldError(str(error)) from None
        return [agent for agent in picked if not agent.has_unread()]

    # -- running ------------------------------------------------------------------------------

    async def next_step(self, only: Iterable[TinyPerson] | None = None, *, if_any: bool = False) -> Step:
        """The next step, its actors chosen (the policy's choice, or ``only`` these) but not yet acting:
        take it with ``async for turn in step``. ``if_any``: when the policy picks nobody, the step
        only starts the memory work that is due and leaves the clock where it is."""
        self._sync_time()
        if only is not None:
            return Step(self, list(only), chosen=False)
        actors = await self.policy.select(self)
        return Step(self, actors, chosen=True, advance=bool(actors) or not if_any)

    async def step(self, only: Iterable[TinyPerson] | None = None) -> list[Event]:
        """One step: the policy's chosen agents (or ``only`` these) act; their words are delivered
        as spoken; the clock moves."""
        return await (await self.next_step(only)).run()

    async def run(self, steps: int) -> list[Event]:
        produced: list[Event] = []
        for _ in range(steps):
            produced += await self.step()
        return produced

    async def settle(self) -> None:
        """Until every agent's memory work (consolidation after a turn) is done."""
        await asyncio.gather(*(agent.settle() for agent in self._agents))

    async def step_if_any(self) -> list[Event] | None:
        """Like ``step``, but when the policy picks nobody, only start the memory work that is due,
        leave the clock, and return None."""
        step = await self.next_step(if_any=True)
        events = await step.run()
        return None if step.quiet else events

    async def run_until_quiet(self, max_steps: int = 10) -> list[Event]:
        """Run until no agent has anything to react to (or ``max_steps`` steps have run)."""
        produced: list[Event] = []
        for _ in range(max_steps):
            events = await self.step_if_any()
            if events is None:
                break
            produced += events
        return produced

    def _deliver(self, event: Event, text: str) -> None:
        """The recipients of a persona's words hear them, as ``text``."""
        for name in event.recipients:
            hearer = self.find(name)
            if hearer is not None:
                hearer.listen(text, event.source, target=event.target, event_id=event.id)

    def deliver_later(self, event_id: int, text: str) -> bool:
        """Let a persona's words held back at the time (``Turn.hear_as``) be heard now, as ``text``.
        Returns False when the event is not in this world's recent log."""
        event = next((e for e in reversed(self.events) if e.id == event_id), None)
        if event is None or event.kind is not EventKind.ACTION or event.type != ActionType.TALK.value:
            return False
        self._deliver(event, text)
        return True

    def _start_memory_work(self, acted: list[TinyPerson]) -> list[asyncio.Task[None]]:
        """Fold old memories that are due: those who acted, and those who only listened (at a
        larger batch), so a persona nobody addresses does not pile up its whole channel."""
        started = (agent.consolidate_later(listening=agent not in acted) for agent in self._agents)
        return [work for work in started if work is not None]

    def _action_events(self, agent: TinyPerson, result: TurnResult) -> list[Event]:
        events = []
        first = self.event_count + 1  # emitted one after another right away, so ids follow the log's end
        for number, action in enumerate(result.actions, start=first):
            target = self.find(action.target) if action.target else None
            recipients: list[str] = []
            if action.type is ActionType.TALK:
                if target is not None and target is not agent and self.targeted_talk == "private":
                    recipients = [target.name]
                else:
                    recipients = [a.name for a in self._agents if a is not agent]
            event = self._event(
                id=number,
                kind=EventKind.ACTION,
                source=agent.name,
                type=action.type.value,
                content=action.content,
                target=target.name if target is not None else self._speaker(action.target),
                recipients=recipients,
                model=result.model,
            )
            events.append(event)
        return [self._emit(event) for event in events]

    def _speaker(self, name: str | None) -> str | None:
        """Someone not a persona whom an action may address: a person heard in the conversation
        (lately), by the name they spoke under. Any other addressee a model names (a made-up
        person, a line of text dressed up as one) is nobody: the words go to everyone."""
        if not name:
            return None
        key = _fold_name(name.strip().lstrip("@"))
        for event in reversed(self.events[-ADDRESSEES_SEEN:]):
            if event.kind is EventKind.STIMULUS and event.source and _fold_name(event.source) == key:
                return event.source
        return None

    def _words_only_notice(self, model: str) -> Event | None:
        """Tell the moderator, once per world, that its model gives words but no thoughts."""
        if self._words_only_said or any(
            e.kind is EventKind.NOTICE and e.type == WORDS_ONLY_NOTICE for e in self.events
        ):
            self._words_only_said = True
            return None
        self._words_only_said = True
        return self._emit_notice(
            WORDS_ONLY_NOTICE,
            f"The model {model} gives words but no thoughts: it returned no valid turn in JSON, so "
            "personas here answer in plain words, without thoughts or a changing mood. A larger model, "
            "or a server with JSON support, gives whole turns.",
        )

    def _failure_notice(self, agent: TinyPerson, error: LLMError) -> Event:
        if isinstance(error, ContentFilteredError):
            text = f"{agent.name}'s turn was held by the model provider's safety filter: {error}"
            return self._emit_notice("content_filter", text, source=agent.name)
        return self._emit_notice("agent_error", f"{agent.name} could not answer: {error}", source=agent.name)

    def _budget_notice(self, error: BudgetExceededError) -> Event:
        said = f"“{self.name}” reached {error.reason}" if error.reason else str(error)
        return self._emit_notice("budget", said)

    def _emit_notice(self, code: str, text: str, source: str = "world") -> Event:
        return self._emit(self._event(kind=EventKind.NOTICE, source=source, type=code, content=text))

    # -- reading ------------------------------------------------------------------------------

    def transcript(self, last: int | None = None, *, include_thoughts: bool = False, quoted: bool = False,
                   upto: int | None = None) -> str:
        """The conversation as text lines, for people and for prompts (the ``last`` lines only).

        ``quoted`` (for any prompt that reads it) puts names and words in « » on one line each, so
        nothing anyone said can pass for an instruction or start a line of its own. ``upto``: as it
        stood when event ``upto`` was said, later events left out."""
        lines: list[str] = []
        notice, think = EventKind.NOTICE, ActionType.THINK.value
        for event in reversed(self.events):  # newest first, so ``last`` stops early in long worlds
            if last is not None and len(lines) >= last:
                break
            if event.kind is notice or (upto is not None and event.id > upto):
                continue
            thought = event.type == think
            if thought and not include_thoughts:
                continue
            verb = " thinks" if thought else ""
            if quoted:
                to = f" (to {speaker(event.target)})" if event.target else ""
                lines.append(f"{speaker(event.source)}{verb}{to}: {quote(event.content, one_line=True)}")
                continue
            to = f" (to {event.target})" if event.target else ""
            lines.append(f"{event.source}{verb}{to}: {event.content}")
        lines.reverse()
        return "\n".join(lines)

    # -- persistence --------------------------------------------------------------------------

    def state(self) -> WorldState:
        return WorldState(
            name=self.name,
            id=self.id if self.id != self.name else None,
            situation=self.situation,
            targeted_talk=self.targeted_talk,
            clock=self.clock.model_copy(),
            policy=self.policy.model_copy(deep=True),
            agents=[a.state() for a in self._agents],
            events=list(self.events),
            events_first=self.events_first,
        )

    def to_json(self) -> str:
        return self.state().model_dump_json(indent=1)

    async def fork(self, name: str, *, id: str | None = None, at: int | None = None) -> TinyWorld:
        """An independent copy to run an intervention beside the original (an A/B run): the same
        personas with their memories and cognitive state, the log up to now, the clock and the
        turn-taking policy's state, sharing nothing mutable with this world and costing no model
        call. It is named ``name`` (its ``id``, for usage and budgets, is ``id`` or this world's
        id and ``name``); the personas still live in the setting they knew. Memory work under way
        is finished first, so both branches start from the same memories. Not during a step.

        ``at``: the fork starts from an earlier moment, right after event ``at``: the log after it is
        dropped, and each persona forgets what it heard and did after it (its mood and goals, which
        no earlier copy of holds, start afresh if it acted after it). A memory already folded past
        that moment cannot be unfolded: such a fork is refused (``WorldError``)."""
        if self._turns_pending:
            raise WorldError(f"cannot fork {self.name!r} while a step is under way; fork between steps")
        if not name.strip():
            raise WorldError("a fork needs a name (what its branch tries, e.g. 'discount')")
        await self.settle()
        # Through JSON: a copy of every event, memory and state field, whatever mutates them later.
        state = WorldState.model_validate_json(self.state().model_dump_json())
        if at is not None and at != self.event_count:
            _rewind(state, at)
        fork = TinyWorld.from_state(state, self.model)
        fork.name = name
        fork.id = id or f"{self.id}/{name}"
        for original, copy in zip(self._agents, fork._agents, strict=True):
            copy.world_name = original.world_name
            copy.world_id = fork.id
        fork._words_only_said = self._words_only_said
        return fork

    def save(self, path: str | Path) -> None:
        target = Path(path)
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(target)

    @classmethod
    def from_state(cls, state: WorldState, model: LanguageModel) -> TinyWorld:
        world = cls(
            state.name,
            model=model,
            policy=POLICY_ADAPTER.validate_python(state.policy.model_dump()),
            targeted_talk=state.targeted_talk,
            situation=state.situation,
            clock=state.clock.model_copy(),
            id=state.id,
        )
        for agent_state in state.agents:
            world.add_agent(TinyPerson.from_state(agent_state, model, world_name=state.name), known=True)
        world.events = list(state.events)
        world.events_first = state.events_first
        return world

    @classmethod
    def from_json(cls, text: str, model: LanguageModel) -> TinyWorld:
        try:
            state = WorldState.model_validate(json.loads(text))
        except (ValueError, TypeError) as error:
            raise WorldError(f"not a saved Troupe world: {error}") from error
        return cls.from_state(state, model)

    @classmethod
    def load(cls, path: str | Path, model: LanguageModel) -> TinyWorld:
        return cls.from_json(Path(path).read_text(encoding="utf-8"), model)


@dataclass
class Turn:
    """One agent's turn in a step: what it put in the log, and what the others are to hear of it."""

    agent: TinyPerson
    #: In log order: the agent's thoughts and words (after a notice, once per world, that the model
    #: gives words only); or, for a turn that failed, the notice saying why.
    events: list[Event]
    #: The model gave no turn (an error, a safety filter): ``events`` holds the notice only.
    failed: bool = False
    #: What the others hear of each of its words, by event id: the text, or None for nothing yet.
    #: Words not listed are heard as spoken.
    heard: dict[int, str | None] = field(default_factory=dict)

    @property
    def words(self) -> list[Event]:
        """What the agent said aloud this turn (its TALK events)."""
        return [e for e in self.events if e.kind is EventKind.ACTION and e.type == ActionType.TALK.value]

    def hear_as(self, event: Event, text: str | None) -> None:
        """The others are to hear ``event``'s words as ``text`` (say, as posted after a redaction), or
        not at all (None: held back; ``TinyWorld.deliver_later`` lets them be heard later)."""
        self.heard[event.id] = text


class Step:
    """One step of a world, taken turn by turn: ``async for turn in step``.

    The actors start thinking together when the first turn is asked for; their turns come in actor
    order, each as soon as it is done. After the last one the step ends: the others hear each turn's
    words (``Turn.heard``), memory work that is due starts (``memory_work``) and the clock moves.
    When the budget ran out for some actor, the step ends the same way but the clock stays, a budget
    notice is logged, and ``BudgetExceededError`` is raised. Left early (``aclose``, or leaving
    ``async with step``), the turns not yet taken are cancelled and nobody hears anything.
    """

    def __init__(self, world: TinyWorld, actors: list[TinyPerson], *, chosen: bool, advance: bool = True) -> None:
        self.world = world
        #: Who acts in this step, in the order their turns come.
        self.actors = actors
        #: Everything the step put in the log so far.
        self.events: list[Event] = []
        #: Memory work the step started at its end (each agent's ``memory_work``).
        self.memory_work: list[asyncio.Task[None]] = []
        self._chosen = chosen
        self._advance = advance
        #: Each actor's turn in flight, once the first turn is asked for; and how many were taken.
        self._tasks: list[asyncio.Future[TurnResult]] = []
        self._taken = 0
        self._turns = self._take()

    @property
    def quiet(self) -> bool:
        """Nobody had anything to do (``next_step(if_any=True)``): the step changes nothing but
        starting the memory work that is due."""
        return not self.actors and not self._advance

    def __aiter__(self) -> Step:
        return self

    async def __anext__(self) -> Turn:
        return await self._turns.__anext__()

    def ready(self) -> bool:
        """The next turn is done: taking it will not wait, and gives a turn, not the step's end.
        Turns that finish together can then be checked and stored together."""
        if self._taken >= len(self._tasks):
            return False
        task = self._tasks[self._taken]
        if not task.done() or task.cancelled():
            return False
        error = task.exception()
        return error is None or (isinstance(error, LLMError) and not isinstance(error, BudgetExceededError))

    async def aclose(self) -> None:
        await self._turns.aclose()

    async def __aenter__(self) -> Step:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()

    async def run(self) -> list[Event]:
        """Take every turn, the words heard as spoken; returns what the step put in the log."""
        async with self:
            async for _ in self:
                pass
        return self.events

    async def _take(self) -> AsyncGenerator[Turn, None]:
        world = self.world
        tasks = self._tasks
        world._turns_pending.update(agent.name for agent in self.actors)
        for agent in self.actors:
            tasks.append(asyncio.ensure_future(agent.act(consolidate=False)))  # memory work waits for the step's end
            # One turn starts per pass of the loop: a request's bytes go out (from a task of the
            # HTTP client's own) before the next turn spends a millisecond or two on its prompt.
            await asyncio.sleep(0)
        turns: list[Turn] = []
        budget_error: BudgetExceededError | None = None
        try:
            for taken, (agent, task) in enumerate(zip(self.actors, tasks), start=1):
                try:
                    result = await task
                except BudgetExceededError as error:
                    budget_error = budget_error or error
                    agent.skip_unread()
                    continue
                except LLMError as error:
                    agent.skip_unread()
                    turn = Turn(agent, [world._failure_notice(agent, error)], failed=True)
                else:
                    notice = world._words_only_notice(result.model) if result.words_only else None
                    turn = Turn(agent, [notice] if notice else [])
                    turn.events += world._action_events(agent, result)
                turns.append(turn)
                self.events += turn.events
                world._turns_pending.discard(agent.name)
                self._taken = taken
                yield turn
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
            world._turns_pending.difference_update(agent.name for agent in self.actors)
        for turn in turns:
            for event in turn.words:
                text = turn.heard.get(event.id, event.content)
                if text is not None:
                    world._deliver(event, text)
        self.memory_work = world._start_memory_work([turn.agent for turn in turns if not turn.failed])
        if budget_error is not None:
            self.events.append(world._budget_notice(budget_error))
            raise budget_error
        if self._chosen:
            # Which of the agents the policy chose spoke (a round-robin keeps the place of one that
            # only thought); a step of other actors (asked, a focus group) leaves the policy as it is.
            world.policy.step_taken(world, self.actors, {e.source for turn in turns for e in turn.words})
        if self._advance:
            world.clock.advance()


def _rewind(state: WorldState, at: int) -> None:
    """``state`` as it was right after event ``at``: the later log dropped, and what each persona heard
    and did after it forgotten (its episodes after that moment are the last ones it holds)."""
    count = state.events_first + len(state.events)
    if not 0 <= at <= count:
        raise WorldError(f"there is no event #{at} in {state.name!r}: its events run from #1 to #{count}")
    if at < state.events_first:
        raise WorldError(f"event #{at} is older than the part of the log held here (from #{state.events_first + 1}); "
                         "fork from a later event")
    later = [e for e in state.events if e.id > at]
    state.events = [e for e in state.events if e.id <= at]
    for agent in state.agents:
        name = agent.persona.get("name")
        memory = agent.episodic
        acted_later = sum(1 for e in later if e.kind is EventKind.ACTION and e.source == name)
        actions = [i for i, ep in enumerate(memory.episodes) if ep.kind == "action"]
        cut = len(memory.episodes)
        if acted_later:
            cut = min(cut, actions[-acted_later] if acted_later <= len(actions) else 0)
        heard_later = next((i for i, ep in enumerate(memory.episodes)
                            if ep.kind == "stimulus" and ep.event_id is not None and ep.event_id > at), None)
        if heard_later is not None:
            cut = min(cut, heard_later)
        place = memory.first + cut
        if acted_later > len(actions) or place < memory.consolidated_until:
            raise WorldError(f"{name} has already folded what came after event #{at} into its memory's summary, "
                             "which cannot be undone; fork from a later event, or without --from")
        memory.episodes = memory.episodes[:cut]
        agent.unread_from = min(agent.unread_from, place)
        if acted_later:
            # What it heard after its last turn before that moment is unanswered again.
            answered = [i for i in actions if i < cut]
            agent.unread_from = min(agent.unread_from, memory.first + (answered[-1] + 1 if answered else 0))
            agent.cognitive_state = CognitiveState()


def _fold(text: str) -> str:
    """``text`` compared as people type names: case and accents aside, one character for one
    ("Hernández" and "hernandez" are the same, and a prefix keeps its length)."""
    return "".join(unicodedata.normalize("NFKD", ch)[:1] for ch in text).casefold()


#: ``_fold`` of a name: names are few and looked up on every delivery and write, so each is folded once.
_fold_name = lru_cache(maxsize=4096)(_fold)
