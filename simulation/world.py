"""``TinyWorld``: agents in one environment, with turn-taking, a simulated clock and an event log.

Within a step the chosen agents act concurrently on what they had heard before the step; what they
say is delivered when the step ends, so their inputs are independent and the log's order (agent
order, not completion order) is the same on every run. Observers see each agent's actions as soon as
that agent and the ones before it have finished.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from simulation.actions import ActionType
from simulation.agent import AgentState, TinyPerson, TurnResult
from simulation.clock import SimulatedClock
from simulation.events import Event, EventKind
from simulation.llm.base import LanguageModel
from simulation.llm.errors import BudgetExceededError, ContentFilteredError, LLMError
from simulation.untrusted import quote, speaker
from simulation.turn_taking import POLICY_ADAPTER, ModeratorPolicy, RoundRobinPolicy, TurnTakingPolicy, make_policy

log = logging.getLogger(__name__)

Observer = Callable[[Event], Awaitable[None] | None]
TurnListener = Callable[[TinyPerson], Awaitable[None] | None]
TargetedTalk = Literal["private", "room"]

SAVE_FORMAT = 1


class WorldError(Exception):
    """Misuse of a world: unknown agent, duplicate name, bad saved file."""


#: The notice code of "this model gives words but no thoughts" (said once per world).
WORDS_ONLY_NOTICE = "words_only"


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
        #: What the others hear of a persona's words: the text to deliver, or None to hold it back.
        #: Set by whoever checks words before they are said aloud (the bot's verification, which may
        #: redact or hold them); by default, the words as spoken.
        self.heard_as: Callable[[Event], str | None] = lambda event: event.content
        self._agents: list[TinyPerson] = []
        self._observers: list[Observer] = []
        self._turn_listeners: list[TurnListener] = []
        self._turn_end_listeners: list[TurnListener] = []
        self._memory_listeners: list[TurnListener] = []
        for agent in agents:
            self.add_agent(agent)

    # -- agents -------------------------------------------------------------------------------

    @property
    def agents(self) -> list[TinyPerson]:
        return list(self._agents)

    def add_agent(self, agent: TinyPerson) -> TinyPerson:
        if self.find(agent.name) is not None:
            raise WorldError(f"{self.name!r} already has a persona named {agent.name!r}")
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
        each only when unambiguous; case and accents do not matter ("lindqvist", "Diego Hernandez")."""
        key = _fold(name.strip().lstrip("@"))
        for agent in self._agents:
            if _fold(agent.name) == key:
                return agent
        for part in (lambda a: a.first_name, lambda a: a.name.split()[-1], None):
            if part is None:
                matches = [a for a in self._agents if key in _fold(a.name).split()]
            else:
                matches = [a for a in self._agents if _fold(part(a)) == key]
            if len(matches) == 1:
                return matches[0]
            if matches:
                return None  # ambiguous: two people answer to it
        return None

    def find_leading(self, text: str) -> tuple[TinyPerson, str] | None:
        """The persona whose name starts ``text``, and what follows it: ``"Priya Nair is the budget
        ok?"`` gives Priya Nair and ``"is the budget ok?"``. A full name is looked for first (the
        longest that fits), then a first name as ``find`` takes it; case does not matter."""
        folded = _fold(text.strip().lstrip("@"))
        for agent in sorted(self._agents, key=lambda a: -len(a.name)):
            name = _fold(agent.name)
            if folded.startswith(name) and (len(folded) == len(name) or not folded[len(name)].isalnum()):
                return agent, text.strip().lstrip("@")[len(agent.name):].lstrip(" ,:;")
        first, _, rest = text.strip().partition(" ")
        agent = self.find(first.rstrip(",:;"))
        return (agent, rest.strip()) if agent is not None else None

    def get(self, name: str) -> TinyPerson:
        agent = self.find(name)
        if agent is None:
            known = ", ".join(a.name for a in self._agents) or "none yet"
            raise WorldError(f"no persona named {name!r} in {self.name!r} (personas: {known})")
        return agent

    # -- observers ----------------------------------------------------------------------------

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Call ``observer(event)`` for every new event; returns a function that unsubscribes."""
        return _register(self._observers, observer)

    def on_turn_start(self, listener: TurnListener) -> Callable[[], None]:
        """Call ``listener(agent)`` when an agent starts a turn (for typing indicators)."""
        return _register(self._turn_listeners, listener)

    def on_turn_end(self, listener: TurnListener) -> Callable[[], None]:
        """Call ``listener(agent)`` once an agent's actions of this step are in the log, before the
        step ends, so its words can be stored and posted while slower agents are still thinking."""
        return _register(self._turn_end_listeners, listener)

    def on_memory_work(self, listener: TurnListener) -> Callable[[], None]:
        """Call ``listener(agent)`` when an agent starts memory work (``agent.memory_work``) at the
        end of a step, after every reply of the step is in the log."""
        return _register(self._memory_listeners, listener)

    async def _notify(self, callbacks: list[Any], arg: Any) -> None:
        for callback in list(callbacks):
            try:
                outcome = callback(arg)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:  # a listener's failure must not break the world
                log.exception("world listener failed")

    async def _emit(self, event: Event) -> None:
        self.events.append(event)
        await self._notify(self._observers, event)

    def _event(self, **fields: Any) -> Event:
        return Event(id=self.event_count + 1, step=self.clock.step, time=self.clock.now, **fields)

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
        await self._emit(event)
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
        await self._emit(event)
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
        await self._emit(event)
        self._deliver(speaker.name, event, self.heard_as(event))
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
        await self._emit(event)
        return event

    def pick(self, *names: str) -> list[TinyPerson]:
        """Choose who speaks next (moderator policy): at the next step, or, for those with nothing new
        to answer, once they have. Returns the picked personas that have nothing to answer yet."""
        if not isinstance(self.policy, ModeratorPolicy):
            raise WorldError(f"picking speakers needs the moderator policy (this world uses {self.policy.kind!r})")
        picked = [self.get(name) for name in names]
        for agent in picked:
            if agent.name not in self.policy.picks:  # picked twice, it still takes one turn
                self.policy.picks.append(agent.name)
        return [agent for agent in picked if not agent.has_unread()]

    # -- running ------------------------------------------------------------------------------

    async def step(self, only: Iterable[TinyPerson] | None = None) -> list[Event]:
        """One step: the policy's chosen agents (or ``only`` these) act; their words are delivered;
        the clock moves."""
        self._sync_time()
        if only is not None:
            produced = await self._act(list(only))
        else:
            actors = await self.policy.select(self)
            produced = await self._act(actors)
            self._turns_taken(actors, produced)
        self.clock.advance()
        return produced

    async def run(self, steps: int) -> list[Event]:
        produced: list[Event] = []
        for _ in range(steps):
            produced += await self.step()
        return produced

    async def settle(self) -> None:
        """Until every agent's memory work (consolidation after a turn) is done."""
        await asyncio.gather(*(agent.settle() for agent in self._agents))

    async def step_if_any(self) -> list[Event] | None:
        """Like ``step``, but when the policy picks nobody, do nothing and return None."""
        self._sync_time()
        actors = await self.policy.select(self)
        if not actors:
            await self._start_memory_work([])
            return None
        produced = await self._act(actors)
        self._turns_taken(actors, produced)
        self.clock.advance()
        return produced

    def _turns_taken(self, actors: list[TinyPerson], produced: list[Event]) -> None:
        """Tell a round-robin policy which of the agents it chose spoke, so one that only thought keeps
        its place. A step with other actors (``only``: asked, a focus group) leaves the rotation as it is."""
        if isinstance(self.policy, RoundRobinPolicy):
            speakers = {e.source for e in produced if e.type == ActionType.TALK.value}
            for agent in actors:
                self.policy.turn_taken(self, agent, agent.name in speakers)

    async def run_until_quiet(self, max_steps: int = 10) -> list[Event]:
        """Run until no agent has anything to react to (or ``max_steps`` steps have run)."""
        produced: list[Event] = []
        for _ in range(max_steps):
            events = await self.step_if_any()
            if events is None:
                break
            produced += events
        return produced

    async def _act(self, actors: list[TinyPerson]) -> list[Event]:
        for agent in actors:
            await self._notify(self._turn_listeners, agent)
        # Memory work waits until every reply of the step is out.
        tasks = []
        for agent in actors:
            tasks.append(asyncio.ensure_future(agent.act(consolidate=False)))
            # One turn starts per pass of the loop: a request's bytes go out (from a task of the
            # HTTP client's own) before the next turn spends a millisecond or two on its prompt.
            await asyncio.sleep(0)
        acted: list[TinyPerson] = []
        produced: list[Event] = []
        deliveries: list[tuple[TinyPerson, Event]] = []
        budget_error: BudgetExceededError | None = None
        try:
            for agent, task in zip(actors, tasks):
                try:
                    result = await task
                except BudgetExceededError as error:
                    budget_error = budget_error or error
                    agent.skip_unread()
                    continue
                except LLMError as error:
                    agent.skip_unread()
                    produced.append(await self._notice(agent, error))
                    continue
                acted.append(agent)
                if result.words_only:
                    await self._words_only_notice(result.model)
                for event in self._action_events(agent, result):
                    await self._emit(event)
                    produced.append(event)
                    if event.type == ActionType.TALK.value:
                        deliveries.append((agent, event))
                await self._notify(self._turn_end_listeners, agent)
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
        for speaker, event in deliveries:
            self._deliver(speaker.name, event, self.heard_as(event))
        await self._start_memory_work(acted)
        if budget_error is not None:
            said = f"“{self.name}” reached {budget_error.reason}" if budget_error.reason else str(budget_error)
            produced.append(await self._emit_notice("budget", said))
            raise budget_error
        return produced

    def _deliver(self, speaker: str, event: Event, text: str | None) -> None:
        if text is None:
            return
        for name in event.recipients:
            hearer = self.find(name)
            if hearer is not None:
                hearer.listen(text, speaker, target=event.target, event_id=event.id)

    def deliver_later(self, event_id: int, text: str) -> bool:
        """Let a persona's words held back at the time (``heard_as``) be heard now, as ``text``.
        Returns False when the event is not in this world's recent log."""
        event = next((e for e in reversed(self.events) if e.id == event_id), None)
        if event is None or event.kind is not EventKind.ACTION or event.type != ActionType.TALK.value:
            return False
        self._deliver(event.source, event, text)
        return True

    async def _start_memory_work(self, acted: list[TinyPerson]) -> None:
        """Fold old memories that are due: those who acted, and those who only listened (at a
        larger batch), so a persona nobody addresses does not pile up its whole channel."""
        for agent in self._agents:
            if agent.consolidate_later(listening=agent not in acted) is not None:
                await self._notify(self._memory_listeners, agent)

    def _action_events(self, agent: TinyPerson, result: TurnResult) -> list[Event]:
        events = []
        for action in result.actions:
            target = self.find(action.target) if action.target else None
            recipients: list[str] = []
            if action.type is ActionType.TALK:
                if target is not None and target is not agent and self.targeted_talk == "private":
                    recipients = [target.name]
                else:
                    recipients = [a.name for a in self._agents if a is not agent]
            event = self._event(
                kind=EventKind.ACTION,
                source=agent.name,
                type=action.type.value,
                content=action.content,
                target=target.name if target is not None else action.target,
                recipients=recipients,
                model=result.model,
            )
            events.append(event)
        # Emitted one after another right away, so ids follow the log's current end.
        return _renumber(events, self.event_count + 1)

    async def _words_only_notice(self, model: str) -> None:
        """Tell the moderator, once per world, that its model gives words but no thoughts."""
        if self._words_only_said or any(
            e.kind is EventKind.NOTICE and e.type == WORDS_ONLY_NOTICE for e in self.events
        ):
            self._words_only_said = True
            return
        self._words_only_said = True
        await self._emit_notice(
            WORDS_ONLY_NOTICE,
            f"The model {model} gives words but no thoughts: it returned no valid turn in JSON, so "
            "personas here answer in plain words, without thoughts or a changing mood. A larger model, "
            "or a server with JSON support, gives whole turns.",
        )

    async def _notice(self, agent: TinyPerson, error: LLMError) -> Event:
        if isinstance(error, ContentFilteredError):
            text = f"{agent.name}'s turn was held by the model provider's safety filter: {error}"
            return await self._emit_notice("content_filter", text, source=agent.name)
        return await self._emit_notice("agent_error", f"{agent.name} could not answer: {error}", source=agent.name)

    async def _emit_notice(self, code: str, text: str, source: str = "world") -> Event:
        event = self._event(kind=EventKind.NOTICE, source=source, type=code, content=text)
        await self._emit(event)
        return event

    # -- reading ------------------------------------------------------------------------------

    def transcript(self, last: int | None = None, *, include_thoughts: bool = False, quoted: bool = False) -> str:
        """The conversation as text lines, for people and for prompts (the ``last`` lines only).

        ``quoted`` (for any prompt that reads it) puts names and words in « » on one line each, so
        nothing anyone said can pass for an instruction or start a line of its own."""
        lines: list[str] = []
        for event in reversed(self.events):  # newest first, so ``last`` stops early in long worlds
            if last is not None and len(lines) >= last:
                break
            if event.kind is EventKind.NOTICE:
                continue
            if event.type == ActionType.THINK.value and not include_thoughts:
                continue
            verb = " thinks" if event.type == ActionType.THINK.value else ""
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
            world.add_agent(TinyPerson.from_state(agent_state, model, world_name=state.name))
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


def _renumber(events: list[Event], first_id: int) -> list[Event]:
    return [e.model_copy(update={"id": first_id + i}) for i, e in enumerate(events)]


def _register(callbacks: list[Any], callback: Any) -> Callable[[], None]:
    """Add ``callback``; returns a function that removes it again (once, harmlessly twice)."""
    callbacks.append(callback)
    return lambda: callbacks.remove(callback) if callback in callbacks else None


def _fold(text: str) -> str:
    """``text`` compared as people type names: case and accents aside, one character for one
    ("Hernández" and "hernandez" are the same, and a prefix keeps its length)."""
    return "".join(unicodedata.normalize("NFKD", ch)[:1] for ch in text).casefold()
