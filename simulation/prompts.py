"""The words sent to the model: persona, past, present, and what to return.

The persona goes in whole (every value verbatim; nothing is trimmed to save tokens) in a compact
indented form that costs fewer tokens than pretty JSON. Instructions stay short: the structured
output schema already tells the model the shape of its answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from simulation.llm.base import Message
from simulation.memory import Episode
from simulation.untrusted import RULE, quote, speaker


def render_persona(data: Any, indent: int = 0) -> list[str]:
    """Indented ``key: value`` lines; lists as ``- item``; values verbatim."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, (dict, list)) and value:
                lines.append(f"{pad}{key}:")
                lines.extend(render_persona(value, indent + 1))
            else:
                lines.append(f"{pad}{key}: {_scalar(value)}")
    elif isinstance(data, list):
        for item in data:
            if isinstance(item, dict) and item and all(not isinstance(v, (dict, list)) for v in item.values()):
                lines.append(pad + "- " + "; ".join(f"{k}: {_scalar(v)}" for k, v in item.items()))
            elif isinstance(item, (dict, list)):
                lines.append(f"{pad}-")
                lines.extend(render_persona(item, indent + 1))
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(pad + _scalar(data))
    return lines


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, dict)):
        return "none"
    return str(value)


def render_episode(episode: Episode, me: str) -> str:
    when = episode.time.strftime("%H:%M")
    if episode.kind == "action":
        if episode.type == "THINK":
            return f"[{when}] (you thought) {episode.content}"
        to = f" (to {episode.target})" if episode.target else ""
        return f"[{when}] You{to}: {episode.content}"
    if episode.type == "THOUGHT":
        return f"[{when}] (a thought) {episode.content}"
    if episode.type == "VISUAL":
        return f"[{when}] (you see) {episode.content}"
    if episode.type == "GOAL":
        return f"[{when}] (new goal) {episode.content}"
    to = ""
    if episode.target:
        to = " (to you)" if episode.target == me else f" (to {speaker(episode.target)})"
    return f"[{when}] {speaker(episode.source or 'someone')}{to}: {quote(episode.content)}"


TURN_RULES = (
    "Return your turn as JSON: actions in order — THINK (private reasoning), TALK (what you say; "
    "target = one person's name or null for everyone), then DONE — and your updated cognitive_state "
    "(goals, attention, emotions). Talk like a person in a team chat: short, in your own voice. "
    "Talk only when you have something to add; otherwise just THINK and DONE. Never say you are an AI "
    "or simulated. " + RULE
)


#: The rules of a turn in words only, for a model that gives no valid JSON turn: the same voice,
#: none of the shape.
WORDS_RULES = (
    "Write only what you say next in the chat, as yourself: one to three sentences, no name in front, "
    "no JSON, no quotation marks, nobody else's lines. Talk like a person in a team chat: short, in "
    "your own voice. Never say you are an AI or simulated. " + RULE
)


@lru_cache(maxsize=1024)
def _system_prompt(name: str, persona_json: str, world: str | None, situation: str | None, rules: str) -> str:
    where = f' in "{world}"' if world else ""
    return "\n".join(
        [
            f"You are {name}, a person taking part in a conversation{where}. Think, feel and speak as "
            f"{name}, in character.",
            *([f"Situation: {situation}"] if situation else []),
            "Persona:",
            *render_persona(json.loads(persona_json)),
            rules,
        ]
    )


def system_prompt(
    name: str, persona: dict[str, Any], world: str | None, situation: str | None, rules: str = TURN_RULES
) -> str:
    """The stable part of every turn's prompt; built once per persona, world, situation and rules."""
    return _system_prompt(name, json.dumps(persona, ensure_ascii=False), world, situation, rules)


def turn_messages(
    *,
    name: str,
    persona: dict[str, Any],
    world: str | None,
    situation: str | None,
    summary: str,
    facts: Iterable[str],
    state: dict[str, str],
    past: list[Episode],
    new: list[Episode],
    not_shown: int = 0,
    rules: str = TURN_RULES,
) -> list[Message]:
    """The two messages of one agent turn: a stable system prefix and the changing present.

    ``not_shown``: episodes older than ``past`` (or ``new``) that are neither summarised yet nor shown.
    ``rules``: what to return (``TURN_RULES``, or ``WORDS_RULES`` for a words-only turn).
    """
    system = system_prompt(name, persona, world, situation, rules)
    user: list[str] = []
    if summary:
        user += ["Earlier (your memory):", summary]
    facts = list(facts)
    if facts:
        user += ["Facts you know:", *(f"- {f}" for f in facts)]
    filled = {k: v for k, v in state.items() if v}
    if filled:
        user.append("Your state: " + "; ".join(f"{k}: {v}" for k, v in filled.items()))
    if not_shown:
        user.append(f"({not_shown} earlier moments are not shown here.)")
    if past:
        user += ["Conversation so far:", *(render_episode(e, name) for e in past)]
    user += ["Now:", *(render_episode(e, name) for e in new)] if new else ["Now: nothing new."]
    return [Message(role="system", content=system), Message(role="user", content="\n".join(user))]


def consolidation_messages(*, name: str, summary: str, episodes: list[Episode]) -> list[Message]:
    """Ask the model to fold old episodes into the running summary and a few durable facts."""
    lines = [render_episode(e, name) for e in episodes]
    return [
        Message(
            role="system",
            content=(
                f"You maintain the memory of {name}. Merge the earlier summary and the episodes below "
                "into one updated first-person summary (under 120 words: who said what that matters, "
                "decisions, open questions, feelings) and list up to 8 durable facts learned."
            ),
        ),
        Message(
            role="user",
            content="Earlier summary: " + (summary or "(none)") + "\nEpisodes:\n" + "\n".join(lines),
        ),
    ]


def in_character_prompt(
    name: str, persona: dict[str, Any], world: str | None, situation: str | None, rules: str
) -> str:
    """A persona's system prompt for answering outside a turn (a poll, an interview).

    Same opening and persona as a turn, so the answer comes in the persona's own voice; ``rules``
    replaces the turn rules because the reply has another shape.
    """
    where = f' in "{world}"' if world else ""
    return "\n".join(
        [
            f"You are {name}, a person taking part in a conversation{where}. Think, feel and speak as "
            f"{name}, in character.",
            *([f"Situation: {situation}"] if situation else []),
            "Persona:",
            *render_persona(persona),
            rules,
        ]
    )
