"""Polls: every persona picks one option and says why, in its own voice; results tally and chart.

A poll measures the personas without steering the conversation, so each persona answers in a
separate call that reads its persona and memory but leaves its memory unchanged. An answer that is
not one of the options is asked for once more, then counted as an abstention: a poll never invents
a vote.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field, create_model, field_validator

from simulation.agent import TinyPerson
from simulation.disclaimer import Labelled
from simulation.llm.base import Attribution, ChatRequest, LanguageModel, Message
from simulation.llm.errors import NOT_IN_SHAPE, BudgetExceededError, LLMError, StructuredOutputError
from simulation.prompts import memory_lines, render_episode, system_prompt
from simulation.untrusted import RULE
from simulation.world import TinyWorld

__all__ = ["ABSTAIN", "ChartData", "Poll", "PollAnswer", "PollResult", "build_chart", "chart_data", "render_chart", "run_poll"]

#: The tally's label for personas who gave no valid answer.
ABSTAIN = "(abstained)"
#: Recent memory a persona sees when answering (older memory is in its summary).
RECENT_EPISODES = 24


class Poll(BaseModel):
    question: str
    options: list[str]

    @field_validator("question")
    @classmethod
    def _has_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the poll needs a question")
        return value.strip()

    @field_validator("options")
    @classmethod
    def _distinct(cls, options: list[str]) -> list[str]:
        cleaned = [o.strip() for o in options]
        if any(not o for o in cleaned):
            raise ValueError("poll options cannot be empty")
        if len(cleaned) < 2:
            raise ValueError("the poll needs at least two options")
        if ABSTAIN in cleaned:
            raise ValueError(f"{ABSTAIN!r} is reserved for personas who give no valid answer")
        if len({_key(o) for o in cleaned}) != len(cleaned):
            raise ValueError("poll options must differ from each other")
        return cleaned

    def match(self, choice: str) -> str | None:
        """The option ``choice`` names: exact, ignoring case and punctuation, or by number/letter."""
        key = _key(choice)
        for option in self.options:
            if _key(option) == key:
                return option
        label = choice.strip().rstrip(".):").strip().casefold()
        for i, option in enumerate(self.options):
            if label in (str(i + 1), chr(ord("a") + i)):
                return option
        return None


def _key(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


class PollAnswer(BaseModel):
    persona: str
    #: One of the poll's options, or None for an abstention.
    choice: str | None
    reason: str
    #: What the model answered when it was not a valid option (kept for review).
    raw_choice: str | None = None

    @property
    def abstained(self) -> bool:
        return self.choice is None


class PollResult(Labelled):
    poll: Poll
    answers: list[PollAnswer]

    def tally(self) -> dict[str, int]:
        """Votes per option in the poll's order (zeros included), then abstentions when there are any."""
        counts = {option: 0 for option in self.poll.options}
        abstained = 0
        for answer in self.answers:
            if answer.choice is None:
                abstained += 1
            else:
                counts[answer.choice] += 1
        if abstained:
            counts[ABSTAIN] = abstained
        return counts

    def winner(self) -> str | None:
        """The most chosen option; None on a tie or when nobody voted."""
        votes = {k: v for k, v in self.tally().items() if k != ABSTAIN}
        best = max(votes.values(), default=0)
        leaders = [k for k, v in votes.items() if v == best]
        return leaders[0] if best and len(leaders) == 1 else None


async def run_poll(
    world_or_agents: TinyWorld | Iterable[TinyPerson], poll: Poll, model: LanguageModel | None = None
) -> PollResult:
    """Ask every persona at once; answers come back in the personas' order.

    ``model`` defaults to the world's (or the first agent's) model. A persona whose answer fails
    abstains with the reason; a spent budget stops the whole poll.
    """
    world = world_or_agents if isinstance(world_or_agents, TinyWorld) else None
    agents = world.agents if world is not None else list(world_or_agents)
    if model is None:
        model = world.model if world is not None else (agents[0].model if agents else None)
    if model is None:
        raise ValueError("run_poll needs a model when there are no personas to take it from")
    # Every answer is awaited before an error is raised, so no request is left running unowned.
    settled = await asyncio.gather(*(_answer(agent, poll, model) for agent in agents), return_exceptions=True)
    for outcome in settled:
        if isinstance(outcome, BaseException):
            raise outcome
    outcomes = [o for o in settled if not isinstance(o, BaseException)]
    names = [m for _, m in outcomes if m]
    return PollResult(model_name=names[-1] if names else model.name, poll=poll, answers=[a for a, _ in outcomes])


_RULES = (
    "A researcher is polling the group. Answer the question as yourself, choosing exactly one of the "
    "options, copied word for word, and give your reason in one or two sentences in your own voice. "
    "Never say you are an AI or simulated. " + RULE
)


async def _answer(agent: TinyPerson, poll: Poll, model: LanguageModel) -> tuple[PollAnswer, str | None]:
    reply_model = _reply_model(poll)
    messages = [
        Message(
            role="system",
            content=system_prompt(agent.name, agent.persona_data, agent.world_name, agent.situation, _RULES),
        ),
        Message(role="user", content=_question(agent, poll)),
    ]
    answered = _answered(agent)
    context = {
        "name": agent.name,
        "persona": agent.persona_data,
        "question": poll.question,
        "options": poll.options,
        "answered": answered,
    }
    raw: str | None = None
    model_name: str | None = None
    for attempt in range(2):
        request = ChatRequest(
            messages=messages,
            attribution=Attribution(world=agent.world_id, persona=agent.name),
            task="poll_answer",
            context={**context, "attempt": attempt},
        )
        try:
            reply, result = await model.structured(request, reply_model, schema_name="PollAnswer")
        except BudgetExceededError:
            raise
        except StructuredOutputError:
            return PollAnswer(persona=agent.name, choice=None, reason=NOT_IN_SHAPE, raw_choice=raw), model_name
        except LLMError as error:
            return PollAnswer(persona=agent.name, choice=None, reason=f"no valid answer: {error}", raw_choice=raw), model_name
        model_name = result.model
        choice = poll.match(reply.choice)
        if choice is not None:
            return PollAnswer(persona=agent.name, choice=choice, reason=reply.reason.strip()), model_name
        raw = reply.choice
        messages = [
            *messages,
            Message(role="assistant", content=result.text[:2000]),
            Message(
                role="user",
                content=f"{reply.choice!r} is not one of the options. Choose exactly one of: "
                + "; ".join(poll.options),
            ),
        ]
    return (
        PollAnswer(persona=agent.name, choice=None, reason=f"answered {raw!r}, which is not an option", raw_choice=raw),
        model_name,
    )


def _reply_model(poll: Poll) -> type[BaseModel]:
    """The answer's shape; the options travel as an enum so strict servers only offer those.

    Validation accepts any text (the enum is a hint to the server): near-misses are matched in code
    and misses are re-asked with a message that names the options.
    """
    return create_model(
        "PollAnswer",
        choice=(str, Field(description="Exactly one of the options", json_schema_extra={"enum": poll.options})),
        reason=(str, Field(description="Why, in one or two sentences, in your own voice")),
    )


def _answered(agent: TinyPerson) -> list[dict[str, str]]:
    """The persona's recent words, each with what it last heard before saying them (its question)."""
    heard, answered = "", []
    for episode in agent.episodic.episodes:
        if episode.kind == "stimulus" and episode.type == "CONVERSATION":
            heard = episode.content
        elif episode.kind == "action" and episode.type == "TALK":
            answered.append({"heard": heard, "said": episode.content})
    return answered[-RECENT_EPISODES:]


def _question(agent: TinyPerson, poll: Poll) -> str:
    lines = memory_lines(agent.episodic.summary, [])
    recent = agent.episodic.unconsolidated()[-RECENT_EPISODES:]
    if recent:
        lines += ["Conversation so far:", *(render_episode(e, agent.name) for e in recent)]
    lines += [f"Poll: {poll.question}", "Options:", *(f"- {o}" for o in poll.options)]
    return "\n".join(lines)


# -- charts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChartData:
    """Exactly what the bar chart shows: one bar per label, in order."""

    title: str
    labels: list[str]
    values: list[int]


def chart_data(result: PollResult) -> ChartData:
    tally = result.tally()
    return ChartData(title=result.poll.question, labels=list(tally), values=list(tally.values()))


def build_chart(result: PollResult) -> Any:
    """The chart as a ``matplotlib.figure.Figure`` on the Agg canvas (no pyplot, no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = chart_data(result)
    figure = Figure(figsize=(6.4, 0.6 + 0.5 * max(2, len(data.labels))), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = list(range(len(data.labels)))
    colours = ["#9e9e9e" if label == ABSTAIN else "#4c72b0" for label in data.labels]
    bars = axes.barh(positions, data.values, color=colours)
    axes.set_yticks(positions, labels=[_short(label) for label in data.labels])
    axes.invert_yaxis()  # first option on top, as in the poll
    axes.bar_label(bars, padding=3)
    axes.set_xlim(0, max([1, *data.values]) * 1.15)
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set_title(_short(data.title, 70), fontsize=11)
    axes.set_xlabel("personas")
    figure.text(0.01, 0.01, result.disclaimer, fontsize=7, color="#666666")
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    return figure


def render_chart(result: PollResult) -> bytes:
    """The poll's bar chart as PNG bytes, ready to upload."""
    buffer = io.BytesIO()
    build_chart(result).savefig(buffer, format="png")
    return buffer.getvalue()


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
