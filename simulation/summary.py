"""Summarises a world's conversation: overview, key points and where each persona stands.

People act on summaries without rereading the conversation, so a summary must not put words in a
persona's mouth. Every quote names the event it came from and is checked in code against that
event's text: a quote found elsewhere in the same persona's words is re-pointed, a quote that
differs only in case or spacing is replaced by the exact words, and anything else is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, Field

from simulation.disclaimer import Labelled
from simulation.events import Event, EventKind
from simulation.llm.base import Attribution, ChatRequest, LanguageModel, Message
from simulation.llm.errors import NOT_IN_SHAPE, StructuredOutputError
from simulation.world import TinyWorld

__all__ = ["MAX_CHARS", "MAX_MESSAGES", "ConversationSummary", "PersonaPosition", "Quote", "Summarizer", "check_quotes"]

#: The most messages, and characters of them, one summary reads: a prompt of bounded size however
#: long the conversation. Beyond them a summary covers the latest (or, from a given event, the first)
#: messages, and says so.
MAX_MESSAGES = 400
MAX_CHARS = 100_000


class Quote(BaseModel):
    event_id: int = Field(description="The [#id] of the message the words come from")
    text: str = Field(description="Words copied exactly from that message")


class PersonaPosition(BaseModel):
    persona: str
    stance: str = Field(description="Where this person stands, one or two sentences")
    quotes: list[Quote] = Field(description="1 to 3 short exact quotes backing the stance")


class SummaryDraft(BaseModel):
    """What the model writes; quotes are checked before anyone sees them."""

    overview: str = Field(description="What the conversation was about and how it went, 2-4 sentences")
    key_points: list[str] = Field(description="The main points, agreements and disagreements")
    positions: list[PersonaPosition] = Field(description="One entry per persona who spoke")


class ConversationSummary(Labelled):
    """A checked summary: every quote is verbatim from the event it names."""

    overview: str
    key_points: list[str] = Field(default_factory=list)
    positions: list[PersonaPosition] = Field(default_factory=list)
    #: The events summarised: ids after ``since_event_id``, up to ``last_event_id``.
    since_event_id: int | None = None
    last_event_id: int | None = None
    #: How many messages (people's and personas' words) were summarised.
    messages: int = 0
    #: Part of the conversation asked for is not in the summary, before or after its range (too
    #: long to read at once, or not in the events given).
    more_before: bool = False
    more_after: bool = False
    #: Quotes the model offered that do not appear in the conversation.
    dropped_quotes: list[Quote] = Field(default_factory=list)

    def position_of(self, persona: str) -> PersonaPosition | None:
        key = persona.casefold()
        return next((p for p in self.positions if p.persona.casefold() == key), None)


_SYSTEM = (
    "You summarise a group conversation for a researcher. Write a short overview, the key points, "
    "and for every persona who spoke their stance with 1-3 short quotes. Quote words exactly as "
    "written in one message and give that message's [#id]. Do not invent or paraphrase quotes. "
    "The talk may move from one question to another: follow the topics in order, say which "
    "question each key point and stance answers, and count an answer only for its own question. "
    "A stance is what the persona thinks, never a question they asked."
)

_WORDS_SYSTEM = "You summarise a group conversation for a researcher in three plain sentences: no lists, no JSON."


class Summarizer:
    def __init__(self, model: LanguageModel) -> None:
        self.model = model

    async def summarize(
        self, world: TinyWorld, since_event_id: int | None = None, *, events: Iterable[Event] | None = None
    ) -> ConversationSummary:
        """Summarise what was said after ``since_event_id`` (everything when None).

        ``events`` is the log to read, oldest first; by default the events ``world`` holds, which in
        a long-lived world are its recent part. At most ``MAX_MESSAGES`` messages (``MAX_CHARS``
        characters) are read: the latest, or with ``since_event_id`` the first after it. The
        summary's ``since_event_id`` and ``last_event_id`` are the range it really covers.
        """
        log = list(world.events if events is None else events)
        said = conversation(log, since_event_id)
        latest = since_event_id is None
        window = _window(said, latest=latest)
        more_before = latest and len(window) < len(said)
        more_after = not latest and len(window) < len(said)
        if more_before:  # from just after the last message left out: nothing in the range is unread
            since_event_id = said[len(said) - len(window) - 1].id
        elif log and log[0].id - 1 > (since_event_id or 0):  # the events given start later than asked
            since_event_id, more_before = log[0].id - 1, True
        last_id = window[-1].id if more_after else log[-1].id if log else since_event_id
        speakers = _unique(e.source for e in window if e.kind is EventKind.ACTION)
        if not speakers:
            return ConversationSummary(
                model_name=self.model.name,
                overview="No persona has spoken yet, so there is nothing to summarise.",
                since_event_id=since_event_id,
                last_event_id=last_id,
                more_before=more_before,
                more_after=more_after,
            )
        lines = [_line(e) for e in window]
        request = ChatRequest(
            messages=[
                Message(role="system", content=_SYSTEM),
                Message(
                    role="user",
                    content=(
                        f"Conversation in {world.name!r}"
                        + (f" (situation: {world.situation})" if world.situation else "")
                        + f".\nPersonas who spoke: {', '.join(speakers)}\n"
                        + "\n".join(lines)
                    ),
                ),
            ],
            attribution=Attribution(world=world.id),
            task="summarize",
            context={
                "world": world.name,
                "speakers": speakers,
                "events": [
                    {"id": e.id, "source": e.source, "kind": e.kind.value, "type": e.type, "content": e.content}
                    for e in window
                ],
            },
        )
        try:
            draft, result = await self.model.structured(request, SummaryDraft)
        except StructuredOutputError:
            # A model that cannot give the summary's shape still gives an overview in words; stances
            # and quotes, which must be checked against the events, are left out and the card says so.
            words = request.model_copy(update={"messages": [
                Message(role="system", content=_WORDS_SYSTEM), *request.messages[1:]], "max_tokens": 300})
            result = await self.model.complete(words)
            draft = SummaryDraft(overview=f"{result.text.strip()} ({NOT_IN_SHAPE}: no stances or quotes)",
                                 key_points=[], positions=[])
        positions, dropped = check_quotes(draft.positions, window, known=set(speakers), world=world)
        return ConversationSummary(
            model_name=result.model,
            overview=draft.overview.strip(),
            key_points=[p.strip() for p in draft.key_points if p.strip()],
            positions=positions,
            since_event_id=since_event_id,
            last_event_id=last_id,
            messages=len(window),
            more_before=more_before,
            more_after=more_after,
            dropped_quotes=dropped,
        )


def conversation(events: Iterable[Event], since_event_id: int | None = None) -> list[Event]:
    """What was said: stimuli from people and personas' words, no thoughts or notices."""
    floor = since_event_id or 0
    return [
        e
        for e in events
        if e.id > floor
        and (
            (e.kind is EventKind.ACTION and e.type == "TALK")
            or (e.kind is EventKind.STIMULUS and e.type in ("CONVERSATION", "VISUAL"))
        )
    ]


def _window(said: list[Event], *, latest: bool) -> list[Event]:
    """The messages a summary reads: all of ``said`` when they fit in ``MAX_MESSAGES`` and
    ``MAX_CHARS``, else the latest (or the first) that do."""
    chosen: list[Event] = []
    size = 0
    for event in reversed(said) if latest else said:
        size += len(_line(event)) + 1
        if len(chosen) == MAX_MESSAGES or (size > MAX_CHARS and chosen):
            break
        chosen.append(event)
    return chosen[::-1] if latest else chosen


def _line(event: Event) -> str:
    to = f" (to {event.target})" if event.target else ""
    if event.type == "VISUAL":
        return f"[#{event.id}] (shown) {event.content}"
    return f"[#{event.id}] {event.source}{to}: {event.content}"


_QUOTE_MARKS = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "«": '"', "»": '"'})
_ELLIPSIS = re.compile(r"\s*(?:\.\.\.|…)\s*")


def _locate(quote: str, content: str) -> str | None:
    """The exact words of ``content`` that ``quote`` stands for, or None when it is not in there.

    Case, spacing and curly quotes may differ; an ellipsis may join parts that appear in order.
    """
    parts = [p for p in _ELLIPSIS.split(quote.strip().strip("\"'“”‘’").strip()) if p.strip()]
    if not parts:
        return None
    # One character for one, so positions in ``plain`` are positions in ``content``.
    plain = content.translate(_QUOTE_MARKS)
    pieces, at = [], 0
    for part in parts:
        words = part.translate(_QUOTE_MARKS).rstrip(".,;:!? ").split()
        if not words:
            continue
        match = re.compile(r"\s+".join(re.escape(w) for w in words), re.IGNORECASE).search(plain, at)
        if match is None:
            return None
        pieces.append(content[match.start() : match.end()])
        at = match.end()
    return " … ".join(pieces) or None


def check_quotes(
    positions: list[PersonaPosition],
    events: list[Event],
    *,
    known: set[str],
    world: TinyWorld | None = None,
) -> tuple[list[PersonaPosition], list[Quote]]:
    """Positions with only real quotes: each in its persona's own words, in the event it names.

    A quote found in another of that persona's messages is re-pointed to it; one found nowhere is
    dropped. Positions of names that are not in the conversation are dropped with their quotes.
    """
    said = [e for e in events if e.kind is EventKind.ACTION and e.type == "TALK"]
    kept: list[PersonaPosition] = []
    dropped: list[Quote] = []
    for position in positions:
        name = _resolve(position.persona, known, world)
        if name is None:
            dropped += position.quotes
            continue
        own = [e for e in said if e.source == name]
        by_id = {e.id: e for e in own}
        quotes: list[Quote] = []
        for quote in position.quotes:
            fixed = _verify(quote, by_id, own)
            if fixed is None:
                dropped.append(quote)
            elif all((q.event_id, q.text) != (fixed.event_id, fixed.text) for q in quotes):
                quotes.append(fixed)
        kept.append(PersonaPosition(persona=name, stance=position.stance.strip(), quotes=quotes))
    return kept, dropped


def _verify(quote: Quote, by_id: dict[int, Event], own: list[Event]) -> Quote | None:
    named = by_id.get(quote.event_id)
    candidates = ([named] if named is not None else []) + [e for e in own if e is not named]
    for event in candidates:
        exact = _locate(quote.text, event.content)
        if exact:
            return Quote(event_id=event.id, text=exact)
    return None


def _resolve(name: str, known: set[str], world: TinyWorld | None) -> str | None:
    key = name.strip().casefold()
    for candidate in known:
        if candidate.casefold() == key:
            return candidate
    if world is not None:
        agent = world.find(name)
        if agent is not None and agent.name in known:
            return agent.name
    return None


def _unique(items: Iterable[str]) -> list[str]:
    out: list[str] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out
