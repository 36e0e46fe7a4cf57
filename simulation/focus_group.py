"""A moderated focus group run on a world: a question, rounds of answers, probes, a summary.

Round 1 puts the question to each persona in turn; later rounds ask each to react to the others.
Everything goes through the world's own mechanics (a moderator's ``talk_to``, then
``step(only=[persona])``), so every prompt and answer is an ordinary world event that the bot layer
stores, verifies and posts like any other. The group is an async iterator yielding each persona's
turn as it happens, so a caller can write and post between turns; progress callbacks drive status
lines ("round 2/3: Priya is thinking"), and the moderator can queue a probe for the next round.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from simulation.agent import TinyPerson
from simulation.disclaimer import Labelled
from simulation.events import Event, EventKind
from simulation.summary import ConversationSummary, Summarizer
from simulation.world import TinyWorld

__all__ = ["FocusGroup", "FocusProgress", "FocusReport", "FocusTurn"]

log = logging.getLogger(__name__)

Stage = Literal["thinking", "answered", "probe", "summarizing", "done"]


@dataclass(frozen=True)
class FocusProgress:
    round: int
    rounds: int
    stage: Stage
    #: The persona concerned (thinking, answered), else None.
    persona: str | None
    #: A line to show as is, e.g. "round 2/3: Priya is thinking".
    text: str


class FocusTurn(BaseModel):
    """One persona's turn in one round: the moderator's prompt and what came of it."""

    round: int
    persona: str
    prompt: str
    #: What the persona said (TALK), in order; empty when it only thought.
    said: list[str]
    #: Every event of the turn, the moderator's prompt first, for whoever stores and posts them.
    events: list[Event]


class FocusReport(Labelled):
    question: str
    rounds: int
    personas: list[str]
    turns: list[FocusTurn]
    probes: list[str] = Field(default_factory=list)
    #: Probes queued after the last round, never asked.
    unasked_probes: list[str] = Field(default_factory=list)
    summary: ConversationSummary

    def answers_of(self, persona: str) -> list[str]:
        return [text for turn in self.turns if turn.persona == persona for text in turn.said]


#: Rounds a focus group adds for probes that arrive during its last round.
EXTRA_PROBE_ROUNDS = 2

ProgressHook = Callable[[FocusProgress], Awaitable[None] | None]
BetweenRounds = Callable[[int], Awaitable[str | None] | str | None]
Stepper = Callable[[list[TinyPerson]], Awaitable[list[Event]]]

def follow_up(others: list[str]) -> str:
    """A later round's question for one persona, naming the others it heard (none in a group of one)."""
    if not others:
        return "thinking it over, what would you add to your answer, and why?"
    heard = others[0] if len(others) == 1 else f"{', '.join(others[:-1])} and {others[-1]}"
    them = "" if len(others) == 1 else " with them"
    return f"you've heard {heard} now. Where do you agree or disagree{them}, and why?"


class FocusGroup:
    """Drive with ``async for turn in group`` (then read ``group.report``) or ``await group.run()``.

    ``personas`` (names or agents, default: everyone in the world) answer in that order.
    ``on_progress`` is called before and after each turn and before the summary; ``between_rounds(k)``
    after round k may return a probe for round k+1 (as may ``probe()`` at any time). ``step``
    replaces ``world.step(only=...)`` when a caller must wrap it (locks, storage).
    """

    def __init__(
        self,
        world: TinyWorld,
        question: str,
        rounds: int = 2,
        personas: Iterable[str | TinyPerson] | None = None,
        *,
        summarizer: Summarizer | None = None,
        moderator: str = "moderator",
        on_progress: ProgressHook | None = None,
        between_rounds: BetweenRounds | None = None,
        step: Stepper | None = None,
    ) -> None:
        if rounds < 1:
            raise ValueError("a focus group needs at least one round")
        if not question.strip():
            raise ValueError("a focus group needs a question")
        self.world = world
        self.question = question.strip()
        self.rounds = rounds
        chosen = list(personas) if personas is not None else world.agents
        # A persona named twice ("Priya, priya nair") still answers once per round.
        found = [world.get(p if isinstance(p, str) else p.name) for p in chosen]
        self.personas = list({agent.name: agent for agent in found}.values())
        if not self.personas:
            raise ValueError("a focus group needs at least one persona")
        self.summarizer = summarizer or Summarizer(world.model)
        self.moderator = moderator
        self.on_progress = on_progress
        self.between_rounds = between_rounds
        self._step = step or (lambda agents: world.step(only=agents))
        self.planned_rounds = rounds
        self.turns: list[FocusTurn] = []
        self.asked_probes: list[str] = []
        self.report: FocusReport | None = None
        self._pending: list[str] = []
        self._started = False
        self._labels = _labels(self.personas)

    def probe(self, text: str) -> None:
        """Queue a moderator's probe: the next round asks it instead of the usual follow-up."""
        if text.strip():
            self._pending.append(text.strip())

    async def run(self) -> FocusReport:
        async for _ in self:
            pass
        assert self.report is not None
        return self.report

    def __aiter__(self) -> AsyncIterator[FocusTurn]:
        if self._started:
            raise RuntimeError("this focus group has already run; create a new one to ask again")
        self._started = True
        return self._drive()

    async def _drive(self) -> AsyncIterator[FocusTurn]:
        start = self.world.events[-1].id if self.world.events else 0
        round_ = 0
        while True:
            round_ += 1
            if round_ > self.rounds:
                # A probe that came during the last round is asked in one more round, not dropped.
                if not self._pending or round_ > self.planned_rounds + EXTRA_PROBE_ROUNDS:
                    break
                self.rounds = round_
            prompt: str | None = self.question
            if round_ > 1:
                probes, self._pending = self._pending, []
                self.asked_probes += probes
                prompt = " ".join(probes) if probes else None  # None: each is asked about the others
                if probes:
                    await self._progress(round_, "probe", None, f"round {round_}/{self.rounds}: the moderator asks: {prompt}")
            for agent in self.personas:
                label = self._labels[agent.name]
                await self._progress(round_, "thinking", agent.name, f"round {round_}/{self.rounds}: {label} is thinking")
                turn = await self._turn(round_, agent, prompt)
                self.turns.append(turn)
                answered = "answered" if turn.said else "had nothing to add"
                await self._progress(round_, "answered", agent.name, f"round {round_}/{self.rounds}: {label} {answered}")
                yield turn
            if round_ < self.rounds and self.between_rounds is not None:
                probe = self.between_rounds(round_)
                if inspect.isawaitable(probe):
                    probe = await probe
                if probe:
                    self.probe(probe)
        await self._progress(self.rounds, "summarizing", None, "summarising the focus group")
        summary = await self.summarizer.summarize(self.world, since_event_id=start)
        self.report = FocusReport(
            model_name=summary.model_name,
            question=self.question,
            rounds=self.rounds,
            personas=[a.name for a in self.personas],
            turns=self.turns,
            probes=self.asked_probes,
            unasked_probes=list(self._pending),
            summary=summary,
        )
        await self._progress(self.rounds, "done", None, "focus group finished")

    async def _turn(self, round_: int, agent: TinyPerson, prompt: str | None) -> FocusTurn:
        if prompt is None:
            prompt = follow_up([self._labels[a.name] for a in self.personas if a is not agent])
        text = f"{self._labels[agent.name]}, {_after_name(prompt)}"
        asked = await self.world.talk_to(agent.name, text, source=self.moderator)
        produced = await self._step([agent])
        said = [
            e.content
            for e in produced
            if e.kind is EventKind.ACTION and e.type == "TALK" and e.source == agent.name
        ]
        return FocusTurn(round=round_, persona=agent.name, prompt=text, said=said, events=[asked, *produced])

    async def _progress(self, round_: int, stage: Stage, persona: str | None, text: str) -> None:
        if self.on_progress is None:
            return
        try:
            outcome: Any = self.on_progress(FocusProgress(round_, self.rounds, stage, persona, text))
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:  # a status line that fails to show must not stop the research
            log.exception("focus group progress hook failed")


def _after_name(text: str) -> str:
    """``text`` made to follow "Priya, ": "Would you..." -> "would you...", acronyms kept."""
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _labels(agents: list[TinyPerson]) -> dict[str, str]:
    """First names where they are unambiguous among the participants, else full names."""
    firsts = [a.first_name.casefold() for a in agents]
    return {a.name: a.first_name if firsts.count(a.first_name.casefold()) == 1 else a.name for a in agents}
