"""``compare A B``: two branches of a channel's world side by side, persona by persona.

Each branch's talk since the two parted (or, with ``--question``, their answers to the same question,
put to both through the usual step, verification and posting) is summarised on its own: each
persona's stance in both and whether it changed, backed by quotes that are checked against that
branch's own events (a quote not found there is never shown as one). A text chart counts what each
persona said in each. Everything a persona wrote passes the channel's verification before the card
shows it, and the card says the answers are simulated.
"""

from __future__ import annotations

import asyncio
import re

from adapters.base import Card, CardField, literal
from bots.context import CommandContext, Handler
from bots.focus_groups import COLOUR
from bots.forks import MAIN_NAMES, Branches
from bots.reply import Reply
from bots.screening import CardScreen
from bots.session import ChannelSession
from simulation.disclaimer import disclaimer
from simulation.events import Event, EventKind
from simulation.summary import ConversationSummary, Summarizer

#: Width of the longest bar in the card's text chart.
BAR_WIDTH = 12


async def compare(ctx: CommandContext, *, first: str, second: str, question: str | None = None) -> Reply:
    sides = [_resolve(ctx, name) for name in (first, second)]
    missing = [name for name, side in zip((first, second), sides) if side is None]
    if missing:
        return Reply(_unknown(ctx, missing[0]), private=True, failed=True)
    a, b = (side for side in sides if side is not None)
    since = await _parted_at(ctx, a, b)
    if question is not None:
        asked = await asyncio.gather(a.hear(ctx.user, question), b.hear(ctx.user, question))
        await asyncio.gather(a.idle(), b.idle())
        starts = [event.id - 1 if event is not None else since for event in asked]
    else:
        starts = [since, since]
    logs = [await _log_since(side, start) for side, start in zip((a, b), starts)]
    model = ctx.services.stack.model
    summaries = [await Summarizer(model).summarize(side.world, since_event_id=start, events=log)
                 for side, start, log in zip((a, b), starts, logs)]
    names = [_label(side) for side in (a, b)]
    fields = await _persona_fields(a, b, names, summaries, logs)
    chart = _chart(names, logs, [p.name for p in a.world.agents] + [p.name for p in b.world.agents])
    asked_line = (f"Both were asked: “{question}”." if question is not None
                  else f"What each said since they parted (after event #{since}).")
    paused = [name for name, side in zip(names, (a, b)) if side.paused]
    if paused:
        asked_line += f" ({' and '.join(paused)} {'is' if len(paused) == 1 else 'are'} paused: nobody answers there.)"
    text = asked_line + ("\n" + chart if chart else "\nNo persona has spoken in either since.")
    footer = disclaimer(summaries[0].model_name if summaries else ctx.services.model_name)
    card = Card(title=f"Compare “{names[0]}” and “{names[1]}”", text=text, fields=tuple(fields),
                footer=footer, colour=COLOUR)
    return Reply(card.as_text(), card=card)


def _resolve(ctx: CommandContext, name: str) -> ChannelSession | None:
    """``main`` (or the world's own name) is the channel's world; any other name a branch of it."""
    branches: Branches = ctx.services.branches
    main = ctx.services.sessions.get(ctx.channel.key)
    if main is not None and (name.casefold() in MAIN_NAMES or name.casefold() == main.world.name.casefold()):
        return main
    return branches.named(ctx.channel.key, name)


def _unknown(ctx: CommandContext, name: str) -> str:
    known = ["main", *(s.world.name for s in ctx.services.branches.of_channel(ctx.channel.key))]
    return (f"There is nothing called “{literal(name)}” to compare here: name two of "
            f"{', '.join(literal(k) for k in known)} (main is the channel's world).")


def _label(session: ChannelSession) -> str:
    return session.world.name if session.record.parent_id is not None else "main"


async def _parted_at(ctx: CommandContext, a: ChannelSession, b: ChannelSession) -> int:
    """The last event both share: where the younger of their lines branched off the other."""
    records = {r.id: r for r in await ctx.services.storage.all_worlds()}

    def shared(session: ChannelSession) -> dict[str, int]:
        """Per world in ``session``'s line: how many of its events ``session`` shares."""
        line = {session.record.id: session.world.event_count}
        record, upto = session.record, session.world.event_count
        while record.parent_id is not None and record.parent_id in records:
            upto = min(upto, record.fork_event)
            record = records[record.parent_id]
            line[record.id] = upto
        return line

    line_a, line_b = shared(a), shared(b)
    common = [world for world in line_a if world in line_b]
    return min(line_a[common[0]], line_b[common[0]]) if common else 0


async def _log_since(session: ChannelSession, start: int) -> list[Event]:
    """The events of ``session``'s world after ``start`` (read from storage when not held)."""
    world = session.world
    log = world.events if world.events_first <= start else await session.whole_log()
    return [e for e in log if e.id > start]


def _said(log: list[Event], persona: str) -> list[Event]:
    return [e for e in log if e.kind is EventKind.ACTION and e.type == "TALK" and e.source == persona]


async def _persona_fields(a: ChannelSession, b: ChannelSession, names: list[str],
                          summaries: list[ConversationSummary], logs: list[list[Event]]) -> list[CardField]:
    """One field per persona: its stance in each branch (verified, quotes checked), and what changed."""
    screens = [CardScreen(a, await a.unposted()), CardScreen(b, await b.unposted())]
    personas = list(dict.fromkeys([p.name for p in a.world.agents] + [p.name for p in b.world.agents]))
    fields = []
    for persona in personas:
        shown: list[str | None] = []
        stances: list[str | None] = []
        for side, summary, log, screen in zip((a, b), summaries, logs, screens):
            position = summary.position_of(persona)
            own = [e.id for e in _said(log, persona)]
            if position is None or not own:
                stances.append(None)
                shown.append("said nothing since" if side.world.find(persona) is not None else "not in this branch")
                continue
            # Only quotes found in this branch's own events, in this persona's words, are shown as quotes.
            quotes = [q for q in position.quotes[:2] if _quoted(q.text, q.event_id, persona, log)]
            screen.withhold_unposted(persona, [q.event_id for q in quotes])
            if all(i in screen.unposted for i in own):
                screen.withhold_unposted(persona, own)
            said = " ".join(f"“{q.text}” (#{q.event_id})" for q in quotes)
            # A stance that only repeats its quote is said once, as the quote.
            stance = "" if any(_words(position.stance) == _words(q.text) for q in quotes) else position.stance
            words = await screen.words(persona, f"{stance} {said}".strip())
            stances.append(position.stance if words is not None else None)
            shown.append(words if words is not None else screen.say(persona, "stance withheld"))
        value = "\n".join(f"{name}: {text}" for name, text in zip(names, shown))
        value += f"\nChanged: {_change(stances, names)}"
        fields.append(CardField(name=persona, value=value))
    return fields


def _quoted(text: str, event_id: int, persona: str, log: list[Event]) -> bool:
    """``text`` is in the words ``persona`` said in event ``event_id`` of this log."""
    event = next((e for e in log if e.id == event_id), None)
    if event is None or event.source != persona or event.kind is not EventKind.ACTION:
        return False
    return _words(text) in _words(event.content)


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


def _change(stances: list[str | None], names: list[str]) -> str:
    first, second = stances
    if first is None and second is None:
        return "nothing to compare (no stance shown in either)"
    if first is None or second is None:
        return f"a stance in “{names[1] if first is None else names[0]}” only"
    if _words(first) == _words(second):
        return "no: the same stance in both"
    return "yes: the stances differ (read both above)"


def _chart(names: list[str], logs: list[list[Event]], personas: list[str]) -> str:
    """Messages each persona said in each branch, as a text bar chart (nothing when nobody spoke)."""
    counts = {name: {p: len(_said(log, p)) for p in dict.fromkeys(personas)} for name, log in zip(names, logs)}
    most = max((n for per in counts.values() for n in per.values()), default=0)
    if most == 0:
        return ""
    width = max(len(p) for p in personas)
    lines = ["Messages since, per persona:"]
    for persona in dict.fromkeys(personas):
        for name in names:
            n = counts[name][persona]
            lines.append(f"{persona:<{width}} {name:<{max(map(len, names))}} "
                         f"{'█' * round(BAR_WIDTH * n / most)}{'' if n else '·'} {n}")
    return "\n".join(lines)


HANDLERS: dict[str, Handler] = {"compare": compare}
