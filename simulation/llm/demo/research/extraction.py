"""The demo's structured extraction: a schema filled from the persona's facts and the lines it said."""

from __future__ import annotations

import re
from typing import Any

from simulation.llm.base import ChatRequest
from simulation.llm.demo.structured import requested_schema
from simulation.llm.demo.text import STOP_WORDS, stem

_LINE_HEAD = re.compile(r"^(?:\[\d\d:\d\d\]\s*)?(?:\([^)]*\)\s*)?(?:[^:]{1,60}:\s+)?")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_YES = {"yes", "agree", "like", "love", "support", "choose", "would", "definitely"}
_NO = {"no", "not", "never", "against", "wary", "hate", "dislike", "won't", "wouldn't"}


def extract(request: ChatRequest) -> Any:
    """Fills the schema from the material: persona facts by name, else the most relevant line."""
    ctx = request.context
    lines = [str(line) for line in ctx.get("lines", [])]
    persona = ctx.get("persona") or {}
    return _fill(requested_schema(request), "", lines, persona, str(ctx.get("subject", "")))


_TOPIC_KEYS = {"topic", "question", "subject", "theme", "prompt"}


def _body(line: str) -> str:
    return _LINE_HEAD.sub("", line, count=1).strip()


def _said_by(lines: list[str], subject: str) -> list[str]:
    """The subject's own lines when it has any (a record about a persona is built from its words,
    never from someone else's), else every line."""
    return (_own_lines(lines, subject) if subject else []) or lines


def _own_lines(lines: list[str], subject: str) -> list[str]:
    """What the subject said: "You: ..." in a persona's memory, "Name: ..." in a transcript."""
    heads = ("You:", "You (to ", f"{subject}:", f"{subject} (to ")
    return [line for line in lines if re.sub(r"^\[\d\d:\d\d\]\s*", "", line).startswith(heads)]


#: Fields that ask where someone stands: their latest words answer them when nothing says more.
_STANCE_KEYS = {"stance", "opinion", "view", "position", "attitude", "sentiment", "take", "answer", "summary"}


_SHORT_STOP = {"the", "and", "you", "for", "are", "was", "not", "but", "too", "our", "its", "how", "why", "who", "any"}


def _field_words(text: str) -> set[str]:
    """Words that tie a line to a field: short ones too ("pay" in "willingness_to_pay"), endings aside."""
    return {stem(w) for w in re.findall(r"[a-zà-ÿ]{3,}", text.casefold()) if w not in STOP_WORDS and w not in _SHORT_STOP}


def _relevant(lines: list[str], key: str, description: str, subject: str) -> str | None:
    """The topic for topic-like fields; else, among the subject's own words (all lines when it said
    nothing), the line that with the question it answered shares most words with the field; else,
    for a stance, its last words, and for any other field nothing (a field the talk never touched
    stays empty rather than repeating the last message)."""
    bodies = [b for b in (_body(line) for line in lines) if b]
    if not bodies:
        return None
    if key.casefold() in _TOPIC_KEYS:
        return bodies[0]
    own = _own_lines(lines, subject)
    wanted = _field_words(key.replace("_", " ") + " " + description)
    chosen = _said_by(lines, subject)
    best, found, heard = 0, None, ""
    for line in lines:
        body = _body(line)
        if line in chosen and body:
            # "Not yet. I'm wary of roadmap promises" answers "would you pay 5 euros?": both count.
            score = len(_field_words(f"{body} {heard if line in own else ''}") & wanted)
            if score > best:
                best, found = score, body
        if line not in own:
            heard = body
    if found is not None:
        return found
    if key.casefold() not in _STANCE_KEYS and not description:
        return None
    mine = [b for b in (_body(line) for line in own) if b]
    return (mine or [b for b in (_body(line) for line in chosen) if b] or bodies)[-1]


def _fill(schema: dict[str, Any], key: str, lines: list[str], persona: dict[str, Any], subject: str) -> Any:
    kind = schema.get("type")
    nullable = isinstance(kind, list) and "null" in kind
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        if not options:
            return None
        # A field that may be null stays null when the talk never touched it.
        nullable = len(options) < len(schema["anyOf"])
        return _fill({**options[0], "type": [options[0].get("type"), "null"]} if nullable else options[0],
                     key, lines, persona, subject)
    description = str(schema.get("description", ""))
    fact = persona.get(key) if key else None
    if isinstance(fact, dict):
        fact = fact.get("title")
    if key == "name" and subject and not persona:
        fact = None
    if schema.get("enum"):
        text = " ".join(_said_by(lines, subject)).casefold()
        counts = [(text.count(str(v).casefold()), -i, v) for i, v in enumerate(schema["enum"])]
        best = max(counts)
        return best[2] if best[0] or not nullable else None
    if kind == "object":
        return {k: _fill(v, k, lines, persona, subject) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        item = schema.get("items", {})
        if item.get("type") in ("string", ["string", "null"]):
            picked = []
            for line in reversed(_said_by(lines, subject)):
                body = _LINE_HEAD.sub("", line, count=1).strip()
                if body and body not in picked:
                    picked.append(body)
                if len(picked) == 3:
                    break
            return picked[::-1]
        return [_fill(item, key, lines, persona, subject)]
    line = _relevant(lines, key, description, subject)
    if kind in ("integer", "number"):
        if isinstance(fact, (int, float)) and not isinstance(fact, bool):
            return fact
        found = _NUMBER.search(line or "")
        if found:
            return int(float(found.group())) if kind == "integer" else float(found.group())
        return None if nullable else 0
    if kind == "boolean":
        words = set((line or "").casefold().replace(",", " ").replace(".", " ").split())
        return len(words & _YES) > len(words & _NO)
    if kind == "null":
        return None
    if fact is not None and not isinstance(fact, (list, dict)) and str(fact):
        return str(fact)
    if key in ("name", "persona", "who") and subject:
        return subject
    return line if line is not None else (None if nullable else "")
