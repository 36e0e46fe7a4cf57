"""A persona's words out of a model's free-text reply, for models that give no valid JSON turn.

Small local models asked for "only what you say" still wrap it: in quotes, behind the speaker's
name, as a JSON object, or followed by lines for the other people in the chat. This keeps the
persona's own words and nothing that would put words in someone else's mouth.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

#: Longest words-only reply kept, in characters (cut at a sentence end).
MAX_WORDS_CHARS = 800

_TEXT_KEYS = ("content", "text", "message", "say", "says", "reply", "response", "answer", "words", "talk")
_ROLE_NAMES = ("moderator", "user", "assistant", "system", "narrator", "me", "you")
_QUOTES = "\"'“”‘’«»`"
_SENTENCE_END = re.compile(r"[.!?…](?=\s|$)")


def spoken_words(text: str, name: str, others: Iterable[str] = (), *, cut_off: bool = False) -> str:
    """What ``name`` says in ``text``: one message, without a name in front, wrapping quotes, JSON,
    or lines that speak for ``others`` (other personas, the moderator). Empty if nothing is left.
    ``cut_off``: the reply ran out of tokens, so its unfinished last sentence is dropped."""
    text = _from_json(text.strip())
    names = {n.casefold() for n in (name, name.split()[0] if name.split() else name) if n}
    speakers = {o.casefold() for o in others if o} | {n.split()[0].casefold() for n in others if n and n.split()}
    speakers |= set(_ROLE_NAMES)
    kept: list[str] = []
    for line in text.splitlines():
        speaker, rest = _speaker(line)
        folded = speaker.casefold() if speaker is not None else None
        if folded in names:
            line = rest
        elif folded in speakers or (speaker is not None and _looks_like_a_name(speaker, after_words=bool(kept))):
            if kept:
                break  # the reply goes on as someone else
            continue  # an echo of the line being answered
        kept.append(_TIMES.sub("", line))
    words = " ".join(part.strip() for part in kept if part.strip())
    words = _bounded(_unquote(words), cut_off=cut_off)
    return words if words.strip(" .…") else ""  # dots alone are no words


def _from_json(text: str) -> str:
    """The spoken text inside a JSON reply (``{"content": …}``, an actions list), else ``text``."""
    fenced = re.match(r"^```(?:json)?\s*(.*?)\s*```$", text, re.DOTALL)
    candidate = fenced.group(1) if fenced else text
    if not candidate.startswith(("{", "[")):
        return text
    try:
        value = json.loads(candidate)
    except ValueError:
        return text
    found = _spoken_in(value)
    return found if found is not None else ""


def _spoken_in(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and str(item.get("type", "")).upper() in ("THINK", "DONE"):
                continue
            found = _spoken_in(item)
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key in _TEXT_KEYS:
            if isinstance(value.get(key), str) and value[key].strip():
                return value[key]
        for key in ("actions", *value.keys()):
            if isinstance(value.get(key), (list, dict)):
                found = _spoken_in(value[key])
                if found:
                    return found
    return None


_SPEAKER = re.compile(r"^\s*(?:\*\*|__)?\[?([^\W\d_][\w .'’-]{0,40}?)\]?(?:\*\*|__)?\s*:(?:\*\*|__)?\s+(.*)$")


#: A line of the prompt's own transcript form echoed back: ``[09:12] «Priya Nair»: …``.
_TRANSCRIPT = re.compile(r"^\s*\[\d{1,2}:\d{2}\]\s*(?:«([^»]{1,60})»|([^:«»]{1,60}?))\s*(?:\([^)]*\))?\s*:\s*(.*)$")


#: Clock times the prompt's transcript puts before each line, echoed at the start of a reply line.
_TIMES = re.compile(r"^(?:\s*\[\d{1,2}:\d{2}\])+\s*")


def _speaker(line: str) -> tuple[str | None, str]:
    """``("Priya", "text")`` for a line written as ``Priya: text`` (or ``**Priya:** text``, or the
    prompt's own ``[09:12] «Priya»: text``)."""
    echoed = _TRANSCRIPT.match(line)
    if echoed is not None:
        return (echoed.group(1) or echoed.group(2) or "").strip(), echoed.group(3)
    match = _SPEAKER.match(line)
    if match is None or len(match.group(1).split()) > 4:
        return None, line
    return match.group(1).strip(), match.group(2)


def _looks_like_a_name(label: str, *, after_words: bool) -> bool:
    """A "Label:" that reads as a person's name: two or three capitalised words ("Priya Nair"), or
    after the persona's own words any capitalised label (the reply goes on as someone else)."""
    words = label.split()
    if not label.istitle():
        return False
    return after_words or 2 <= len(words) <= 3


def _unquote(text: str) -> str:
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES and text.count(text[0]) <= 2:
        text = text[1:-1].strip()
    return text


def _bounded(text: str, *, cut_off: bool) -> str:
    if len(text) <= MAX_WORDS_CHARS and not cut_off:
        return text
    head = text[:MAX_WORDS_CHARS]
    ends = list(_SENTENCE_END.finditer(head))
    if ends:
        return head[: ends[-1].end()]
    # No sentence was finished: what there is, marked as cut (or nothing, if that is nothing but marks).
    head = head.rstrip()
    return head + "…" if head.strip(" .…") else ""
