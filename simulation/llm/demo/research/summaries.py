"""The demo's conversation summaries: topics in the order they were raised, who is for, who would wait,
and each persona's stance quoted exactly as it said it."""

from __future__ import annotations

import re
from typing import Any

from simulation.llm.base import ChatRequest
from simulation.llm.demo.leads import lead_vote
from simulation.llm.demo.text import capitalised, first_sentence


def _clip(text: str, limit: int) -> str:
    """``text`` as written, cut at a word boundary to at most ``limit`` characters (a quote must match)."""
    text = text.strip()
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0].rstrip(",;:—-")


_ADDRESSEE = re.compile(r"^\s*[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*)?,\s+")


#: A summary's word for a yes, a "not yet" and a no.
_VOTE_WORDS = ("For it.", "Would wait.", "Against it.")


#: A later round's "you've heard the others now, where do you agree?" goes on with the same topic.
_FOLLOW_UP = re.compile(r"^(?:you've heard\b|thinking it over\b)", re.IGNORECASE)


def _topics(events: list[dict[str, Any]], speakers: list[str]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The conversation cut where a person asks something new: each topic, as asked, with the
    personas' words said on it. The same question put to each persona in turn (a focus group) is
    one topic, and coming back to an earlier question adds to it."""
    topics: list[tuple[str, list[dict[str, Any]]]] = []
    current: list[dict[str, Any]] | None = None
    for event in events:
        if event.get("kind") == "stimulus" and event.get("source") not in speakers:
            # "Priya, would you pay…" asks Priya; the topic is what is asked.
            asked = " ".join(_ADDRESSEE.sub("", str(event.get("content", ""))).split())
            if not asked or (_FOLLOW_UP.match(asked) and current is not None):
                continue
            known = next((said for topic, said in topics if topic.casefold() == asked.casefold()), None)
            if known is None:
                topics.append((asked, []))
                known = topics[-1][1]
            current = known
        elif event.get("kind") == "action" and event.get("type") == "TALK":
            if current is None:  # personas talking before anyone asked: their first words set the topic
                topics.append((str(event.get("content", "")), []))
                current = topics[-1][1]
            current.append(event)
    return [(topic, said) for topic, said in topics if said]


def _label(topic: str, words: int) -> str:
    """A topic as quoted in a summary: its first ``words`` words."""
    cut = topic.split()
    return f"\"{capitalised(' '.join(cut[:words]))}{'…' if len(cut) > words else ''}\""


def _statement(text: str, limit: int = 160) -> str:
    """The first sentence of ``text`` that is no question ("About the new logo? A feature nobody
    uses is a cost." states the second), exactly as written."""
    sentences = re.findall(r"\S.*?[.!?](?=\s|$)|\S.+$", text.strip(), re.DOTALL)
    stated = next((x for x in sentences if not x.rstrip().endswith("?")), text)
    return first_sentence(stated, limit)


def summarize(request: ChatRequest) -> dict[str, Any]:
    """Topics in the order people raised them; on each, who is for it, who would wait and what the
    others said; each persona's stance is its answer on the latest topic it spoke to."""
    events = request.context.get("events", [])
    speakers = list(request.context.get("speakers", []))
    talks = [e for e in events if e.get("kind") == "action" and e.get("type") == "TALK"]
    topics = _topics(events, speakers)
    several = len(topics) > 1
    labels = [_label(topic, 14) for topic, _ in topics] or ["the topic"]
    points: list[str] = []
    latest: dict[str, dict[str, Any]] = {}
    for topic, said in topics:
        on = f"On {_label(topic, 8)}: " if several else ""
        grouped: dict[str, list[str]] = {}
        stances: list[str] = []
        for name in speakers:
            own = [e for e in said if e.get("source") == name]
            if not own:
                continue
            # A persona's stance is its answer to what was asked, not a later "Good question. My take: …"
            answer = own[0]
            content = str(answer["content"])
            vote = lead_vote(content, [w.rstrip(".").casefold() for w in _VOTE_WORDS])
            stance = f"{capitalised(vote)}." if vote else _statement(content)
            if vote:
                grouped.setdefault(stance, []).append(name)
            else:
                stances.append(f"{on}{name}: {stance}")
            latest[name] = {
                "persona": name,
                # Where several topics came up, a yes or no says which question it answered.
                "stance": f"{stance[:-1]} (on {_label(topic, 8)})." if vote and several else stance,
                # An answer opening "Not yet…" is put in a word; the quote then gives its reason too.
                "quotes": [{"event_id": answer["id"], "text": _clip(content, 160) if vote else _statement(content, 120)}],
            }
        # Yes/no answers are grouped by their word ("Would wait: Henrik Lindqvist, Tomasz Kowalski").
        votes = [f"{word.rstrip('.')}: {', '.join(grouped[word])}" for word in _VOTE_WORDS if word in grouped]
        if votes:  # one line a topic when there are several
            points += [on + "; ".join(votes)] if several else votes
        points += stances
    about = labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])}, then {labels[-1]}"
    overview = (
        f"{len(speakers)} persona{'s' if len(speakers) != 1 else ''} ({', '.join(speakers)}) talked about "
        f"{about} in {len(talks)} message{'s' if len(talks) != 1 else ''}. (Composed by the offline demo model.)"
    )
    positions = [latest[name] for name in speakers if name in latest]
    return {"overview": overview, "key_points": points, "positions": positions}
