"""A rule for the fake model that plays agent turns, memory consolidation and speaker picks.

It answers like a model would in shape (valid JSON for the schema asked), and in content it names
the persona from its system prompt and echoes what it just heard, so tests can see who answered
what.
"""

from __future__ import annotations

import json
import re
from typing import Any

_NAME = re.compile(r"^You are ([^,\n]+),")


def _text(content: Any) -> str:
    """A message's text, whether its content is a string or a list of parts."""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def system_text(body: dict[str, Any]) -> str:
    return next((_text(m.get("content")) for m in body.get("messages", []) if m.get("role") == "system"), "")


def user_text(body: dict[str, Any]) -> str:
    return "\n".join(_text(m.get("content")) for m in body.get("messages", []) if m.get("role") == "user")


def persona_of(body: dict[str, Any]) -> str | None:
    match = _NAME.match(system_text(body))
    return match.group(1).strip() if match else None


def new_lines(body: dict[str, Any]) -> list[str]:
    """The prompt's new lines as a reader sees them: ``[09:00] Ana: hello`` (the quotation marks
    around what others said dropped)."""
    text = user_text(body)
    if "Now:\n" not in text:
        return []
    return [_unquote(line) for line in text.split("Now:\n", 1)[1].splitlines()]


def _unquote(line: str) -> str:
    head, sep, said = line.partition(": «")
    if not (sep and said.endswith("»")):
        return line
    head = re.sub(r"«([^»]*)»", r"\1", head)
    return f"{head}: {said[:-1]}"


def kind_of(body: dict[str, Any]) -> str:
    """What a request asks for: an agent's turn, a memory consolidation, a speaker pick, or something else."""
    system = system_text(body)
    if system.startswith("You maintain the memory of"):
        return "consolidate"
    if system.startswith("You direct a group conversation"):
        return "pick_speaker"
    if persona_of(body):
        return "agent_turn"
    return "other"


class TurnRule:
    """Callable responder. ``talk_to`` maps a persona to whom it addresses; ``silent`` only think."""

    def __init__(self) -> None:
        self.talk_to: dict[str, str] = {}
        self.silent: set[str] = set()
        self.next_speaker: str | None = None

    def __call__(self, body: dict[str, Any]) -> str:
        kind = kind_of(body)
        if kind == "consolidate":
            episodes = user_text(body).split("Episodes:\n", 1)[-1].splitlines()
            return json.dumps(
                {"summary": f"I remember {len(episodes)} earlier moments.", "facts": [f"fact {len(episodes)}"]}
            )
        if kind == "pick_speaker":
            candidates = user_text(body).split("Candidates: ", 1)[1].splitlines()[0].split(", ")
            name = self.next_speaker or candidates[-1]
            return json.dumps({"next_speaker": name, "reason": "picked by the test"})
        name = persona_of(body) or "?"
        heard = new_lines(body)
        last = heard[-1] if heard else "nothing"
        actions: list[dict[str, Any]] = [{"type": "THINK", "content": f"{name} considers: {last}", "target": None}]
        if name not in self.silent:
            actions.append(
                {"type": "TALK", "content": f"{name} replies to <{last}>", "target": self.talk_to.get(name)}
            )
        actions.append({"type": "DONE", "content": "", "target": None})
        return json.dumps(
            {"actions": actions, "cognitive_state": {"goals": "answer", "attention": last[:40], "emotions": "calm"}}
        )
