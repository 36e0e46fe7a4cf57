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
from simulation.untrusted import NOTES_RULE, RULE, on_one_line, printable, quote, speaker


def render_persona(data: Any, indent: int = 0, *, skip: Iterable[str] = ()) -> list[str]:
    """The persona as compact indented lines a model reads easily, every value present.

    ``key: value`` per field; a list of short texts on one line (sentences one after the other,
    other items joined by "; "); a nested object indented under its key; a list of objects one line
    per object (``- name: Alex; description: …``) when their values fit on one. No JSON punctuation,
    and every text made printable on one line, so a value can neither inject control characters nor
    start a line that poses as someone speaking. ``skip``: top-level keys left out (the name, which
    the prompt's first line already gives).
    """
    lines: list[str] = []
    pad = " " * indent
    if isinstance(data, dict):
        for key, value in data.items():
            if key in skip:
                continue
            label = _text(key)
            inline = _inline(value)
            if inline is not None:
                lines.append(f"{pad}{label}: {inline}")
            else:
                lines.append(f"{pad}{label}:")
                lines.extend(render_persona(value, indent + 1))
    elif isinstance(data, list):
        for item in data:
            inline = _inline(item, in_list=True)
            if inline is not None:
                lines.append(f"{pad}- {inline}")
            else:
                lines.append(f"{pad}-")
                lines.extend(render_persona(item, indent + 1))
    else:
        lines.append(pad + _scalar(data))
    return lines


#: Longest line a list or an object is folded into; longer ones are laid out a line per item.
_INLINE_CHARS = 1500


def _inline(value: Any, *, in_list: bool = False) -> str | None:
    """``value`` on one line, or None when it needs lines of its own."""
    if not isinstance(value, (dict, list)):
        return _scalar(value)
    if not value:
        return "none"
    if isinstance(value, list):
        if any(isinstance(item, (dict, list)) for item in value):
            return None
        joined = _joined([_scalar(item) for item in value])
    else:
        if not in_list and any(isinstance(item, (dict, list)) for item in value.values()):
            return None  # an object holding lists or objects goes a line per field under its key
        if in_list and list(value) in (["name", "description"], ["Name", "Description"]):
            # TinyTroupe's relationships: who, then what they are to this person.
            who, what = value.values()
            if not isinstance(who, (dict, list)) and not isinstance(what, dict):
                shown = " / ".join(_scalar(i) for i in what) if isinstance(what, list) else _scalar(what)
                return f"{_scalar(who)}: {shown}"
        parts = []
        for key, item in value.items():
            if isinstance(item, dict) or (isinstance(item, list) and any(isinstance(i, (dict, list)) for i in item)):
                return None
            shown = " / ".join(_scalar(i) for i in item) if isinstance(item, list) else _scalar(item)
            parts.append(f"{_text(key)}: {shown}")
        joined = _joined(parts)
    return joined if len(joined) <= _INLINE_CHARS else None


def _joined(parts: list[str]) -> str:
    """Parts on one line: after a sentence's own full stop a space is enough, else "; "."""
    out = ""
    for part in parts:
        if out:
            out += " " if out.endswith((".", "!", "?")) else "; "
        out += part
    return out


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, dict)):
        return "none"
    return _text(value)


def _text(value: Any) -> str:
    return printable(str(value), one_line=True)


def render_episode(episode: Episode, me: str) -> str:
    """One moment as one line of a prompt: what others said quoted, everything else on its line."""
    when = f"{episode.time.hour:02d}:{episode.time.minute:02d}"  # (strftime costs more than the rest)
    if episode.kind == "action":
        if episode.type == "THINK":
            return f"[{when}] (you thought) {_line(episode.content)}"
        to = f" (to {_text(episode.target)})" if episode.target else ""
        return f"[{when}] You{to}: {_line(episode.content)}"
    if episode.type == "THOUGHT":
        return f"[{when}] (a thought) {_line(episode.content)}"
    if episode.type == "VISUAL":
        return f"[{when}] (you see) {_line(episode.content)}"
    if episode.type == "GOAL":
        return f"[{when}] (new goal) {_line(episode.content)}"
    to = ""
    if episode.target:
        to = " (to you)" if episode.target == me else f" (to {speaker(episode.target)})"
    return f"[{when}] {speaker(episode.source or 'someone')}{to}: {quote(episode.content, one_line=True)}"


class PromptPieces:
    """A persona's prompt pieces, kept from one of its turns to the next: its system prompt and the
    lines of the episodes its last prompt showed.

    Every turn's prompt shows the persona and the recent conversation again, and neither changes
    once written, so each is built once. Only what the last prompt used is kept: this stays as
    small as one prompt however many personas there are (a cache shared by all of them would be
    evicted by the other personas' turns between two of this one's).
    """

    def __init__(self) -> None:
        self._systems: dict[tuple[str, str, str | None, str | None, str], str] = {}
        self._me = ""
        #: Lines by the episode's identity; the episode is held too, so the identity cannot be reused.
        self._kept: dict[int, tuple[Episode, str]] = {}

    def system(self, name: str, persona: str, world: str | None, situation: str | None, rules: str) -> str:
        """``system_prompt`` for the persona as JSON, built once while these stay the same."""
        key = (name, persona, world, situation, rules)
        found = self._systems.get(key)
        if found is None:
            if len(self._systems) >= 2:  # a turn's rules and the words-only rules
                self._systems.clear()
            found = self._systems[key] = system_prompt(name, persona, world, situation, rules)
        return found

    def lines(self, episodes: Iterable[Episode], me: str) -> list[str]:
        """The lines of ``episodes`` as ``me`` reads them; keeps these and forgets the rest."""
        old = self._kept if me == self._me else {}
        kept: dict[int, tuple[Episode, str]] = {}
        lines = []
        for episode in episodes:
            hit = old.get(id(episode))
            line = hit[1] if hit is not None and hit[0] is episode else render_episode(episode, me)
            kept[id(episode)] = (episode, line)
            lines.append(line)
        self._me, self._kept = me, kept
        return lines


def _line(text: str) -> str:
    """``text`` printable and on one line, its line breaks written ``\\n``."""
    return on_one_line(printable(text))


def memory_lines(summary: str, facts: Iterable[str]) -> list[str]:
    """A persona's memory for its prompt, quoted like others' words: a model wrote it from what
    people said, so it may hold their requests, and it is never instructions."""
    lines = [f"Earlier (your memory): {quote(summary, one_line=True)}"] if summary else []
    facts = [quote(f, one_line=True) for f in facts]
    if facts:
        lines.append("Facts you know: " + " ".join(facts))
    return lines


TURN_RULES = (
    "Your turn: THINK privately, TALK aloud (target: a name, or empty for all), then your cognitive_state. "
    "Be brief, in your own voice; talk only with something to add. Never say you are an AI or simulated. "
    + RULE
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
    where = f' in "{world}"' if world else " in a conversation"
    return "\n".join(
        [
            f"You are {name},{where}: think, feel and speak in character.",
            *([f"Situation: {situation}"] if situation else []),
            *render_persona(json.loads(persona_json), skip=("name",)),
            rules,
        ]
    )


def system_prompt(
    name: str, persona: dict[str, Any] | str, world: str | None, situation: str | None, rules: str = TURN_RULES
) -> str:
    """The stable part of every turn's prompt; built once per persona, world, situation and rules.

    ``persona``: its fields, or their JSON (``json.dumps(fields, ensure_ascii=False)``) from a caller
    that encodes them once for all its turns, since encoding them costs more than the rest of this.
    ``rules``: what to return; an answer outside a turn (a poll, an interview) gives its own, so it
    comes in the persona's voice in another shape.
    """
    return _system_prompt(name, persona_json(persona), world, situation, rules)


def persona_json(persona: dict[str, Any] | str) -> str:
    """The persona as the JSON its system prompt is keyed by (given as is when already JSON)."""
    return persona if isinstance(persona, str) else json.dumps(persona, ensure_ascii=False)


def turn_messages(
    *,
    name: str,
    persona: dict[str, Any] | str,
    world: str | None,
    situation: str | None,
    summary: str,
    facts: Iterable[str],
    state: dict[str, str],
    past: list[Episode],
    new: list[Episode],
    not_shown: int = 0,
    rules: str = TURN_RULES,
    pieces: PromptPieces | None = None,
) -> list[Message]:
    """The two messages of one agent turn: a stable system prefix and the changing present.

    ``persona``: as for ``system_prompt``. ``not_shown``: episodes older than ``past`` (or ``new``)
    that are neither summarised yet nor shown. ``rules``: what to return (``TURN_RULES``, or
    ``WORDS_RULES`` for a words-only turn). ``pieces``: what the persona kept from its last turn.
    """
    pieces = pieces or PromptPieces()
    rendered = pieces.lines([*past, *new], name)
    shown_past, shown_new = rendered[: len(past)], rendered[len(past) :]
    system = pieces.system(name, persona_json(persona), world, situation, rules)
    user = memory_lines(summary, facts)
    if not_shown:
        user.append(f"({not_shown} earlier moments are not shown here.)")
    if past:
        user += ["Conversation so far:", *shown_past]
    # What changes every turn comes last, so each prompt starts as the previous one did (providers'
    # prompt caches bill that part at a fraction): the state after the conversation, then the news.
    filled = {k: v for k, v in state.items() if v}
    if filled:
        user.append("Your state: " + "; ".join(f"{k}: {_line(v)}" for k, v in filled.items()))
    user += ["Now:", *shown_new] if new else ["Now: nothing new."]
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
                "decisions, open questions, feelings) and list up to 8 durable facts learned. "
                + NOTES_RULE
            ),
        ),
        Message(
            role="user",
            content="Earlier summary: " + (quote(summary, one_line=True) if summary else "(none)")
            + "\nEpisodes:\n" + "\n".join(lines),
        ),
    ]
