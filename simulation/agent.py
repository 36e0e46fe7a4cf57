"""``TinyPerson``: a simulated person with a persona, memory, a cognitive state and a voice.

One turn is one model call returning the whole turn (thoughts, words, new cognitive state) as a
validated ``AgentTurn``. The agent never touches a platform: a world (or a caller) feeds it stimuli
and takes its actions.

Folding old episodes into the running summary is a second model call. It runs after the turn
that made it due, in the background (``memory_work``), so a reply never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field

from simulation.actions import Action, ActionType, AgentTurn, CognitiveState
from simulation.clock import DEFAULT_START
from simulation.context import current_persona
from simulation.fairness import fair_turn
from simulation.llm.base import Attribution, ChatRequest, ChatResult, LanguageModel, Message, schema_instruction
from simulation.llm.capabilities import StructuredMode
from simulation.llm.errors import ContextLengthExceededError, LLMError, StructuredOutputError
from simulation.llm.schema import strict_json_schema
from simulation.llm.tokens import estimated_prompt_tokens
from simulation.memory import (
    Consolidation,
    Episode,
    EpisodicMemory,
    MemoryConfig,
    SemanticMemory,
)
from simulation.persona import PersonaSpec
from simulation.prompts import (
    TURN_RULES,
    WORDS_RULES,
    PromptPieces,
    consolidation_messages,
    persona_json,
    turn_messages,
)
from simulation.words import spoken_words

log = logging.getLogger(__name__)

#: Moments shown verbatim when a prompt is retried after the server said it was too long.
SHRUNK_MOMENTS = 4
#: Most tokens a words-only turn may take: a few sentences.
WORDS_MAX_TOKENS = 160
#: Words-only calls a turn may make before it is given up.
WORDS_TRIES = 2
#: Tokens kept free in a context window for a turn's reply.
TURN_REPLY_TOKENS = 512


def reply_room(mode: StructuredMode) -> int:
    """Tokens a turn needs besides its prompt: the reply, and the schema where it travels in the prompt."""
    return TURN_REPLY_TOKENS + (_schema_tokens() if mode.schema_in_prompt else 0)


@lru_cache(maxsize=1)
def _schema_tokens() -> int:
    instruction = Message(role="system", content=schema_instruction(strict_json_schema(AgentTurn)))
    return estimated_prompt_tokens([instruction])


class TurnResult(BaseModel):
    """What one ``act()`` produced, and which model produced it."""

    actions: list[Action]
    model: str
    cached: bool = False
    #: The model gave no valid turn: these are the persona's words alone (no thoughts, same state).
    words_only: bool = False


class AgentState(BaseModel):
    """Everything about an agent that changes as it lives; saved and restored with its world."""

    persona: dict[str, Any]
    cognitive_state: CognitiveState = Field(default_factory=CognitiveState)
    episodic: EpisodicMemory = Field(default_factory=EpisodicMemory)
    semantic: SemanticMemory = Field(default_factory=SemanticMemory)
    #: Index into episodic episodes of the first one this agent has not yet reacted to.
    unread_from: int = 0
    memory_config: MemoryConfig = Field(default_factory=MemoryConfig)


class TinyPerson:
    """A simulated person.

    ``time`` and ``step`` come from the world's clock when the agent lives in one; a standalone
    agent uses a default clock that does not move.
    """

    def __init__(
        self,
        spec: PersonaSpec,
        model: LanguageModel,
        *,
        memory: MemoryConfig | None = None,
        world_name: str | None = None,
    ) -> None:
        self.spec = spec
        self.model = model
        self.world_name = world_name
        #: Usage and budgets are accounted to this id (the world's, when in one).
        self.world_id: str | None = world_name
        self.situation: str | None = None
        self.cognitive_state = CognitiveState()
        self.episodic = EpisodicMemory()
        self.semantic = SemanticMemory()
        self.memory_config = memory or MemoryConfig()
        self._unread_from = 0
        self._now: tuple[int, datetime] = (0, DEFAULT_START)
        self._lock = asyncio.Lock()
        #: The memory consolidation started after a turn, while it runs (see ``settle``).
        self.memory_work: asyncio.Task[None] | None = None
        self._prompt_pieces = PromptPieces()

    # -- identity -----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def spec(self) -> PersonaSpec:
        return self._spec

    @spec.setter
    def spec(self, spec: PersonaSpec) -> None:
        self._spec = spec
        self._name = spec.name  # read many times a turn
        #: The persona as a dict, copied once per spec (specs are immutable): prompts, the demo
        #: model and saved state all read this copy instead of copying again on every turn.
        self.persona_data = spec.to_tinytroupe_dict()
        #: And as JSON, the key of its system prompt, encoded once rather than at every turn.
        self.persona_json = persona_json(self.persona_data)

    @property
    def first_name(self) -> str:
        return self.name.split()[0]

    def __repr__(self) -> str:
        return f"TinyPerson({self.name!r})"

    def set_time(self, step: int, time: datetime) -> None:
        self._now = (step, time)

    # -- stimuli ------------------------------------------------------------------------------

    def _perceive(
        self,
        type_: str,
        content: str,
        source: str | None = None,
        target: str | None = None,
        event_id: int | None = None,
    ) -> Episode:
        step, time = self._now
        episode = Episode(
            step=step,
            time=time,
            kind="stimulus",
            type=type_,
            content=content,
            source=source,
            target=target,
            event_id=event_id,
        )
        self.episodic.add(episode)
        return episode

    def listen(
        self, text: str, source: str = "someone", *, target: str | None = None, event_id: int | None = None
    ) -> Episode:
        """Hear something said, by ``source``, to everyone or (``target``) to someone."""
        return self._perceive("CONVERSATION", text, source, target, event_id)

    def see(self, description: str, *, event_id: int | None = None) -> Episode:
        return self._perceive("VISUAL", description, event_id=event_id)

    def think(self, text: str, *, event_id: int | None = None) -> Episode:
        """Put a thought in the agent's mind; it acts on it at its next turn."""
        return self._perceive("THOUGHT", text, event_id=event_id)

    def internalize_goal(self, goal: str, *, event_id: int | None = None) -> Episode:
        self.cognitive_state.goals = goal if not self.cognitive_state.goals else f"{goal}; {self.cognitive_state.goals}"
        return self._perceive("GOAL", goal, event_id=event_id)

    def define(self, key: str, value: Any) -> None:
        """Set (or add) a persona field, e.g. ``define("age", 31)`` or ``define("preferences.likes", [...])``."""
        self.spec = self.spec.define(key, value)

    def said(self, text: str, *, target: str | None = None) -> Episode:
        """Remember saying ``text`` (words given to the agent, e.g. a scenario's scripted line)."""
        caught_up = not self.has_unread()
        step, time = self._now
        episode = Episode(step=step, time=time, kind="action", type=ActionType.TALK.value, content=text, target=target)
        self.episodic.add(episode)
        if caught_up:
            self._unread_from = self.episodic.count
        return episode

    def skip_unread(self) -> None:
        """Treat pending stimuli as handled (after a turn that could not be taken)."""
        self._unread_from = self.episodic.count

    @property
    def unread_from(self) -> int:
        """The place of the first episode this agent has not reacted to yet."""
        return self._unread_from

    def has_unread(self) -> bool:
        return self._first_new < self.episodic.count

    def unread(self) -> list[Episode]:
        """Stimuli not yet acted on and not yet folded into the summary (those are the memory's now)."""
        return self.episodic.since(self._first_new)

    @property
    def _first_new(self) -> int:
        return max(self._unread_from, self.episodic.consolidated_until)

    def addressed_by(self, episodes: list[Episode]) -> bool:
        """Whether any of these stimuli is aimed at this agent by target, name or @mention."""
        names = {self.name.casefold(), self.first_name.casefold()}
        for e in episodes:
            if e.kind != "stimulus":
                continue
            if e.target and e.target.casefold() in names:
                return True
            text = e.content.casefold()
            if any(n in text for n in names):
                return True
        return False

    # -- acting -------------------------------------------------------------------------------

    async def act(self, *, consolidate: bool = True) -> TurnResult:
        """Take one turn: a single model call returning thoughts, words and the new state.

        Raises the model layer's typed errors (``LLMError`` subclasses); on error the stimuli stay
        unread and memory is unchanged, so the turn can be retried or skipped cleanly. With
        ``consolidate=False`` the caller starts the memory work (``consolidate_later``) when it
        suits it, e.g. once the turn's words are on their way.
        """
        token = current_persona.set(self.name)
        try:
            return await self._act(consolidate)
        finally:
            current_persona.reset(token)

    async def _act(self, consolidate: bool) -> TurnResult:
        async with self._lock:
            await fair_turn()
            capabilities = self.model.capabilities
            await capabilities.ready()
            # Unread episodes already folded into the summary are not repeated verbatim.
            first_new = self._first_new
            past = self.episodic.between(self.episodic.consolidated_until, first_new)
            new = self.episodic.since(first_new)
            past, new, not_shown = _newest(past, new, self.memory_config.shown_at_most)
            try:
                turn, result, words_only = await self._turn(past, new, not_shown)
            except ContextLengthExceededError as error:
                # The server's window is smaller than the prompt: learn it, then try once more with
                # only the newest moments (the persona whole, the memory summary kept).
                if error.limit:
                    await capabilities.learn_context(error.limit)
                fewer_past, fewer_new, fewer_not_shown = _newest(past, new, SHRUNK_MOMENTS)
                try:
                    turn, result, words_only = await self._turn(fewer_past, fewer_new, fewer_not_shown)
                except ContextLengthExceededError as again:
                    raise self._too_long(again) from again
            actions = _clean_actions(turn)
            step, time = self._now
            for action in actions:
                self.episodic.add(
                    Episode(
                        step=step,
                        time=time,
                        kind="action",
                        type=action.type.value,
                        content=action.content,
                        target=action.target,
                    )
                )
            self._unread_from = self.episodic.count
            self.cognitive_state = turn.cognitive_state
            if consolidate:
                self.consolidate_later()
            return TurnResult(actions=actions, model=result.model, cached=result.cached, words_only=words_only)

    async def _turn(self, past: list[Episode], new: list[Episode], not_shown: int) -> tuple[AgentTurn, ChatResult, bool]:
        """One turn's model call(s): the structured turn, or the persona's words alone when the
        model gives no valid turn (after its re-ask) or is known to give none. Returns the turn,
        the call's result and whether it was words only."""
        capabilities = self.model.capabilities
        limit = capabilities.context_tokens
        if limit:
            past, new, not_shown = self._fit(past, new, not_shown, limit)
        if not capabilities.words_only:
            try:
                turn, result = await self.model.structured(self._request(past, new, not_shown, TURN_RULES), AgentTurn)
                await capabilities.turn_taken(words_only=False)
                return turn, result, False
            except StructuredOutputError as error:
                log.info("%s: no valid turn, answering in words only: %s", self.name, error)
                await capabilities.turn_taken(words_only=True)
        request = self._request(past, new, not_shown, WORDS_RULES).model_copy(
            update={"task": "agent_words", "max_tokens": WORDS_MAX_TOKENS}
        )
        heard = {e.source for e in [*past, *new] if e.source}
        for attempt in range(WORDS_TRIES):
            # A second try samples anew: a small model's first reply may be only echoed lines.
            sent = request if attempt == 0 else request.model_copy(update={"seed": attempt, "temperature": 0.9})
            result = await self.model.complete(sent)
            words = spoken_words(result.text, self.name, heard, cut_off=result.finish_reason == "length")
            if words:
                break
        else:
            raise StructuredOutputError(f"{self.model.name} gave no words for {self.name}", raw=result.text)
        turn = AgentTurn(actions=[Action(type=ActionType.TALK, content=words)], cognitive_state=self.cognitive_state)
        return turn, result, True

    def _request(self, past: list[Episode], new: list[Episode], not_shown: int, rules: str) -> ChatRequest:
        bounded = self.model.capabilities.bounded_replies
        return ChatRequest(
            max_tokens=TURN_REPLY_TOKENS if bounded else None,
            messages=turn_messages(
                name=self.name,
                persona=self.persona_json,
                world=self.world_name,
                situation=self.situation,
                summary=self.episodic.summary,
                facts=self.semantic.facts,
                state=self.cognitive_state.model_dump(),
                past=past,
                new=new,
                not_shown=not_shown,
                rules=rules,
                pieces=self._prompt_pieces,
            ),
            attribution=Attribution(world=self.world_id, persona=self.name),
            task="agent_turn",
            # The moments themselves, not copies: an offline model reads what it needs of them.
            context={"name": self.name, "persona": self.persona_data, "past": past, "new": new},
        )

    def _fit(
        self, past: list[Episode], new: list[Episode], not_shown: int, limit: int
    ) -> tuple[list[Episode], list[Episode], int]:
        """The newest moments whose prompt fits ``limit`` tokens with room for the reply; the
        persona and the memory summary always stay. Raises ``ContextLengthExceededError`` when even
        the prompt with one moment does not fit."""
        room = limit - reply_room(self.model.capabilities.structured_mode)
        while True:
            needed = estimated_prompt_tokens(self._request(past, new, not_shown, TURN_RULES).messages)
            if needed <= room:
                return past, new, not_shown
            if past:
                past, not_shown = past[1:], not_shown + 1
            elif len(new) > 1:
                new, not_shown = new[1:], not_shown + 1
            else:
                raise self._too_long(ContextLengthExceededError("", limit=limit, requested=needed))

    def _too_long(self, error: ContextLengthExceededError) -> ContextLengthExceededError:
        """The error a user reads when even the smallest prompt does not fit: which setting to raise."""
        capabilities = self.model.capabilities
        window = error.limit or capabilities.context_tokens
        size = f" of {window:,} tokens" if window else ""
        needs = f" (it needs about {error.requested:,})" if error.requested else ""
        cap = capabilities.configured_context_tokens
        setting = (
            f"raise TROUPE_LLM_CONTEXT_TOKENS (now {cap:,}) and, if needed, the server's context size"
            if cap and (not window or cap <= window)
            else "raise the server's context size (llama.cpp: --n_ctx / -c; Ollama: num_ctx; vLLM: "
            "--max-model-len; LM Studio: the model's context length) and set TROUPE_LLM_CONTEXT_TOKENS to match"
        )
        return ContextLengthExceededError(
            f"{self.name}'s smallest prompt (persona, memory summary and the newest moment) does not fit "
            f"the model's context window{size}{needs}: {setting}, or shorten the persona",
            status=error.status,
            limit=window,
            requested=error.requested,
        )

    async def listen_and_act(self, text: str, source: str = "someone") -> TurnResult:
        self.listen(text, source)
        return await self.act()

    async def settle(self) -> None:
        """Until the memory work started by earlier turns is done (it never raises)."""
        while (work := self.memory_work) is not None and not work.done():
            await asyncio.wait([work])

    def consolidate_later(self, *, listening: bool = False) -> asyncio.Task[None] | None:
        """Start folding old episodes into the summary, if due, so the prompt stays bounded.

        Returns the work started, or None. Turns may run meanwhile: they only append episodes, and
        the fold applies to the ones it read. One fold runs at a time; a failed one is tried again
        after the next turn. ``listening``: the agent only heard things this time, so the fold
        waits for a larger batch (``MemoryConfig.listening_batch``).
        """
        if self.memory_work is not None:
            return None
        config = self.memory_config
        batch = config.listening_batch if listening else config.batch
        old = self.episodic.due_for_consolidation(config.window, batch, config.fold_at_most)
        if not old:
            return None
        self.memory_work = work = asyncio.ensure_future(self._consolidate(old))
        work.add_done_callback(self._memory_work_done)
        return work

    def _memory_work_done(self, work: asyncio.Task[None]) -> None:
        if self.memory_work is work:
            self.memory_work = None

    async def _consolidate(self, old: list[Episode]) -> None:
        try:
            try:
                await self._fold(old)
            except ContextLengthExceededError as error:
                # Fold the older half now (the rest at a later turn) so the request fits the window.
                if error.limit:
                    await self.model.capabilities.learn_context(error.limit)
                if len(old) < 2:
                    raise
                await self._fold(old[: len(old) // 2])
        except LLMError as error:
            log.warning("%s: memory consolidation failed, tried again after the next turn: %s", self.name, error)
        except Exception:
            log.exception("%s: memory consolidation failed", self.name)

    async def _fold(self, old: list[Episode]) -> None:
        # Personas whose turns end together start their folds together; building a fold's request
        # and sending it is a slice of CPU like a turn's.
        await fair_turn()
        request = ChatRequest(
            messages=consolidation_messages(name=self.name, summary=self.episodic.summary, episodes=old),
            attribution=Attribution(world=self.world_id, persona=self.name),
            task="consolidate",
            background=True,
            context={"name": self.name, "summary": self.episodic.summary, "episodes": old},
        )
        consolidation, _ = await self.model.structured(request, Consolidation)
        self.episodic.apply(consolidation, len(old))
        self.semantic.add(consolidation.facts[:8])

    # -- persistence --------------------------------------------------------------------------

    def state(self) -> AgentState:
        # Of the agent's own parts, already valid: built at every storage write, not checked again.
        return AgentState.model_construct(
            persona=self.persona_data,
            cognitive_state=self.cognitive_state,
            episodic=self.episodic,
            semantic=self.semantic,
            unread_from=self._unread_from,
            memory_config=self.memory_config,
        )

    @classmethod
    def from_state(
        cls, state: AgentState, model: LanguageModel, *, world_name: str | None = None
    ) -> TinyPerson:
        person = cls(
            PersonaSpec.from_data(state.persona, source="saved world"),
            model,
            memory=state.memory_config,
            world_name=world_name,
        )
        person.cognitive_state = state.cognitive_state.model_copy()
        # Episodes never change once recorded: a new list of the same ones is a full copy, and
        # a world with tens of thousands of them is restored in milliseconds instead of seconds.
        person.episodic = state.episodic.model_copy(update={"episodes": list(state.episodic.episodes)})
        person.semantic = state.semantic.model_copy(update={"facts": list(state.semantic.facts)})
        person._unread_from = state.unread_from
        return person


def _newest(past: list[Episode], new: list[Episode], most: int) -> tuple[list[Episode], list[Episode], int]:
    """The newest ``most`` of a prompt's verbatim episodes, and how many older ones are left out."""
    if len(past) + len(new) <= most:
        return past, new, 0
    if len(new) >= most:
        return [], new[-most:], len(past) + len(new) - most
    kept = most - len(new)
    return past[-kept:], new, len(past) - kept


def _clean_actions(turn: AgentTurn) -> list[Action]:
    """Keep the actions that carry something; stop at the first DONE."""
    kept: list[Action] = []
    for action in turn.actions:
        if action.type is ActionType.DONE:
            break
        if action.content:
            kept.append(action)
    return kept
