"""The personas' words a card shows (a summary, a poll, a focus group's report), vetted first.

Whatever a card shows that a model wrote passes the channel's verification like any persona post;
a persona with any words withheld shows nothing of its own on that card.
"""

from __future__ import annotations

import re

from adapters.base import CardField, literal
from bots.session import ChannelSession
from simulation.events import Event
from simulation.summary import ConversationSummary


class CardScreen:
    """Vets the personas' words a card shows and remembers whose verification withheld.

    A persona with any words withheld shows nothing of its own on that card (no stance, quote, reason
    or vote presented as if it had been posted): the card names it once, with why and what to do, the
    same way on every card.
    """

    def __init__(self, session: ChannelSession, unposted: dict[int, str] | None = None) -> None:
        self.session = session
        #: Messages of the world never posted (held or blocked), by event id, with why.
        self.unposted = unposted or {}
        #: Personas whose words are withheld, with why.
        self.withheld: dict[str, str] = {}

    async def words(self, persona: str, text: str) -> str | None:
        """``text`` as ``persona``'s words may be shown, or None when they are withheld."""
        if persona in self.withheld:
            return None
        shown, why = await self.session.vet(text, persona)
        if why is not None:
            self.withheld[persona] = why
            return None
        return shown

    def withhold_unposted(self, persona: str, event_ids: list[int]) -> None:
        """Withhold ``persona`` when any of ``event_ids`` (its messages the card draws on) was never posted."""
        why = next((self.unposted[i] for i in event_ids if i in self.unposted), None)
        if why is not None and persona not in self.withheld:
            self.withheld[persona] = why

    def say(self, persona: str, what: str = "answers withheld") -> str:
        """Why ``persona``'s words are missing and what to do about it, after ``what`` happened to them."""
        shown = literal(persona)
        return (f"{what} by verification ({self.withheld[persona]}). To hear from {shown}, remove the persona "
                f"(`persona remove {shown}`) and add it again with text verification lets through")

    def fields(self, what: str = "answers withheld") -> list[CardField]:
        return [CardField(name=persona, value=self.say(persona, what)) for persona in self.withheld]

    def names(self, text: str) -> list[str]:
        """The withheld personas ``text`` mentions, by full name or first name."""
        return [p for p in self.withheld if re.search(rf"(?<!\w)(?:{re.escape(p)}|{re.escape(p.split()[0])})(?!\w)", text)]


async def summary_parts(session: ChannelSession, summary: ConversationSummary, said: list[Event],
                        max_points: int) -> tuple[str, list[CardField]]:
    """The text (overview and key points) and persona fields of a summary card, shared by the
    summary and the focus group so both treat withheld words alike.

    A persona is withheld when its stance and quotes are, when they quote a message that was never
    posted, or when none of its messages in the summary was posted; key points that speak of a
    withheld persona, or that verification withholds, are left out and counted.
    """
    screen = CardScreen(session, await session.unposted())
    positions = {}
    for position in summary.positions:
        quotes = position.quotes[:2]
        screen.withhold_unposted(position.persona, [q.event_id for q in quotes])
        own = [e.id for e in said if e.source == position.persona]
        if own and all(i in screen.unposted for i in own):
            screen.withhold_unposted(position.persona, own)
        shown = " ".join(f"“{q.text}” (#{q.event_id})" for q in quotes)
        # A stance that only repeats its quote is said once, as the quote.
        stance = "" if any(_same_words(position.stance, q.text) for q in quotes) else position.stance
        positions[position.persona] = await screen.words(position.persona, f"{stance} {shown}".strip())
    points, left_out, reasons = [], 0, []
    for point in summary.key_points[:max_points]:
        shown, why = (None, None) if screen.names(point) else await session.vet(point)
        if shown is None or why is not None:
            left_out += 1
            reasons += [why] if why and why not in reasons else []
            continue
        points.append(shown)
    overview, why = await session.vet(summary.overview)
    body = overview if why is None else f"(The overview was withheld by verification: {why}.)"
    body += "".join(f"\n• {p}" for p in points)
    if left_out:
        because = f"verification withheld {'it' if left_out == 1 else 'them'} ({'; '.join(reasons)})" if reasons \
            else f"{'it speaks' if left_out == 1 else 'they speak'} for answers withheld below"
        body += f"\n({left_out} key point{'s' if left_out != 1 else ''} left out: {because}.)"
    fields = [CardField(name=name, value=value) for name, value in positions.items() if value is not None]
    return body, fields + screen.fields()


def _same_words(a: str, b: str) -> bool:
    """Whether two texts say the same words (case, spacing and punctuation aside)."""
    def words(text: str) -> list[str]:
        return re.findall(r"\w+", text.casefold())
    return words(a) == words(b)
