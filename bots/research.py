"""The research commands: focus groups, summaries, polls, extraction, generation, enrichment,
storytelling and validation, run against a channel's world and shown as cards.

Whatever these show that a model wrote (stances, quotes, reasons, enriched text) passes the
channel's verification first, like any persona post; every result names the model that produced it
and says that the answers are simulated.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from adapters.base import Card, CardField, CommandInvocation, clip, literal
from bots.commands import Command, CommandError
from bots.exports import slug
from simulation.disclaimer import disclaimer
from simulation.enrichment import Enricher
from simulation.events import Event, EventKind
from simulation.extraction import ResultsExtractor, SchemaError, model_from_fields, model_from_json_schema
from simulation.factory import PersonaFactory
from simulation.focus_group import FocusGroup, FocusProgress, FocusReport
from simulation.llm.errors import BudgetExceededError, LLMError
from simulation.persona import PersonaError
from simulation.polls import ABSTAIN, Poll, render_chart, run_poll
from simulation.storytelling import StaleBeatError, Storyteller
from simulation.summary import MAX_MESSAGES, ConversationSummary, Summarizer, conversation
from simulation.validation import PersonaValidator

if TYPE_CHECKING:
    from bots.app import TroupeApp
    from bots.moderation import Reply
    from bots.session import ChannelSession

log = logging.getLogger(__name__)

#: Card colours: research results, warnings.
COLOUR = "#5865f2"
ENRICH_DEFAULT = "make it realistic, specific and detailed, as it would appear in real life"


class Research:
    """Handlers of the research commands (``_focus``, ``_poll`` ...), called by ``Moderation``."""

    def __init__(self, app: TroupeApp) -> None:
        self.app = app
        #: The tasks driving focus groups, with their sessions, until their report is posted: a stop
        #: or reset ends them.
        self._focus_tasks: dict[asyncio.Task, ChannelSession] = {}

    @property
    def model(self):  # type: ignore[no-untyped-def]
        return self.app.stack.model

    def _reply(self, text: str, **kwargs: Any) -> Reply:
        from bots.moderation import Reply

        return Reply(text, **kwargs)

    # -- focus groups -------------------------------------------------------------------------

    async def _focus(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        if session.focus is not None:
            return self._reply("A focus group is already running here; `probe QUESTION` adds to its next round.",
                               private=True, failed=True)
        if not session.world.agents:
            return self._reply("This world has no personas yet. Add some with `persona add NAME`.", private=True, failed=True)
        names = cmd.args.get("personas")
        try:
            group = FocusGroup(session.world, cmd.args["question"], rounds=cmd.args["rounds"], personas=names,
                               summarizer=Summarizer(self.model), moderator=inv.user.name,
                               step=session.step_only)
        except ValueError as error:
            raise CommandError(str(error)) from None
        self._begin_focus(session, group)
        who = ", ".join(literal(a.name) for a in group.personas)
        return self._reply(f"Focus group started ({group.rounds} round(s)) with {who}: “{group.question}”. "
                           "Each answers in turn; `probe QUESTION` asks something in the next round.")

    def _begin_focus(self, session: ChannelSession, group: FocusGroup) -> None:
        session.focus = session.last_focus = group
        task = self.app.spawn(self._run_focus(session, group))
        self._focus_tasks[task] = session
        task.add_done_callback(lambda done: self._focus_tasks.pop(done, None))

    async def _run_focus(self, session: ChannelSession, group: FocusGroup) -> None:
        """Drive the group, keeping one status line up to date, and post its report at the end."""
        adapter = session.adapter
        handle: str | None = None
        thinking: str | None = None

        async def progress(update: FocusProgress) -> None:
            nonlocal handle, thinking
            text = f"Focus group: {literal(update.text)}"
            handle = await adapter.progress(session.channel, text, handle=handle)
            thinking = update.persona if update.stage == "thinking" else None
            if thinking:
                await session._quietly(adapter.typing(session.channel, session.identity(thinking)))

        group.on_progress = progress
        failure: str | None = None
        try:
            report: FocusReport | None = await group.run()
        except asyncio.CancelledError:
            # A stop or reset ended it: that command says so and decides what the world does next.
            session.focus = None
            await session._quietly(adapter.progress(session.channel, "Focus group: cancelled", handle=handle))
            if thinking:
                await session._quietly(adapter.stopped_typing(session.channel, session.identity(thinking)))
            raise
        except BudgetExceededError:
            report = None  # the session already said the world is paused
        except LLMError as error:
            report, failure = None, f"The focus group stopped: {error}"
        except Exception:
            log.exception("focus group failed")
            report, failure = None, "The focus group stopped because of an internal error."
        session.focus = None
        session.kick()
        if failure is not None:
            await session._quietly(adapter.announce(session.channel, failure))
        if report is not None:
            card = await self._focus_card(session, report)
            await session._quietly(adapter.post_card(session.channel, card))

    async def cancel_focus(self, session: ChannelSession) -> bool:
        """End the focus group running in ``session`` (or posting its report) before it is stopped
        or reset.

        What its personas said before is posted now, so nothing of it reaches the channel after the
        command's answer. False when no focus group was running.
        """
        tasks = [task for task, of in self._focus_tasks.items() if of is session and not task.done()]
        if not tasks:
            return False
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)  # their end, without taking on their cancellation
        session.focus = None  # also when one was cancelled before it began
        await self.app.outbox.deliver(session.record.channel_key)
        return True

    async def _focus_card(self, session: ChannelSession, report: FocusReport) -> Card:
        said = [e for turn in report.turns for e in turn.events if e.kind is EventKind.ACTION and e.type == "TALK"]
        body, fields = await _summary_parts(session, report.summary, said, max_points=8)
        if report.probes:
            body += f"\nProbes: {'; '.join(report.probes)}"
        return Card(title=clip(f"Focus group: {report.question}", 240), text=body, fields=tuple(fields),
                    footer=f"{report.rounds} round(s), {len(report.turns)} turns. {report.disclaimer}", colour=COLOUR)

    async def _probe(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        if session.focus is None:
            last = session.last_focus
            if last is None:
                return self._reply("No focus group ran here; `focus \"QUESTION\"` starts one.", private=True, failed=True)
            # The group has finished: the probe is asked in one more round, of the same personas.
            present = [a.name for a in last.personas if session.world.find(a.name) is not None]
            if not present:
                return self._reply("The focus group's personas have left; `focus \"QUESTION\"` starts a new one.",
                                   private=True, failed=True)
            group = FocusGroup(session.world, cmd.args["text"], rounds=1, personas=present,
                               summarizer=Summarizer(self.model), moderator=inv.user.name, step=session.step_only)
            self._begin_focus(session, group)
            return self._reply(f"The focus group had finished: one more round asks {', '.join(map(literal, present))} that.")
        session.focus.probe(cmd.args["text"])
        return self._reply("Noted: the next round asks that (one more round, if this is the last).", private=True)

    # -- summaries and polls ------------------------------------------------------------------

    async def _summary(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        since = cmd.args.get("since")
        if since is not None and since >= session.world.event_count:
            return self._reply(f"There is nothing after event #{since}: this world's latest event is "
                               f"#{session.world.event_count}.", private=True, failed=True)
        world = session.world
        log = world.events
        # A long-lived world holds its recent events; older ones are read from storage when the
        # summary reaches back to them (from --since, or for want of enough recent messages).
        if world.events_first > (since or 0) and (since is not None or len(conversation(log)) < MAX_MESSAGES):
            log = await session.whole_log()
        summary = await Summarizer(self.model).summarize(world, since_event_id=since, events=log)
        floor, last = summary.since_event_id or 0, summary.last_event_id or 0
        said = [e for e in log if floor < e.id <= last and e.kind is EventKind.ACTION and e.type == "TALK"]
        body, fields = await _summary_parts(session, summary, said, max_points=10)
        card = Card(title=f"Summary of “{world.name}”", text=body, fields=tuple(fields),
                    footer=f"{_cap(_span(summary))}. {summary.disclaimer}", colour=COLOUR)
        return self._reply(card.as_text(), card=card)

    async def _poll(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        if not session.world.agents:
            return self._reply("This world has no personas to poll yet.", private=True, failed=True)
        try:
            poll = Poll(question=cmd.args["question"], options=cmd.args["options"])
        except ValidationError as error:
            raise CommandError(f"{_problem(error)}: `{cmd.spec.usage}`") from None
        asked = await run_poll(session.world, poll, self.model)
        # A vote and its reason are one answer: when verification withholds the reason, the vote is
        # not counted either (the tally would rest on an answer nobody may read, one that often says
        # the persona broke character); the card names the persona and says why instead.
        screen = _Screen(session)
        reasons = {a.persona: await screen.words(a.persona, a.reason) for a in asked.answers}
        result = asked.model_copy(update={"answers": [a for a in asked.answers if a.persona not in screen.withheld]})
        tally = result.tally()
        total = sum(tally.values()) or 1
        lines = []
        for option, votes in tally.items():
            voters = [a.persona for a in result.answers if (a.choice or ABSTAIN) == option]
            bar = "█" * round(10 * votes / total)
            lines.append(f"{option}: {votes} {bar}" + (f" ({', '.join(map(literal, voters))})" if voters else ""))
        fields = [CardField(name=f"{a.persona}: {a.choice or 'abstained'}", value=reasons[a.persona] or "")
                  for a in result.answers]
        fields += [CardField(name=f"{persona}: not counted", value=screen.say(persona, "vote and reason withheld"))
                   for persona in screen.withheld]
        winner = result.winner()
        head = f"Most chosen: {winner}." if winner else "No single option leads."
        if cmd.args.get("unquoted"):
            head = f"Read “{poll.question}” as the question (quotes around it make sure). {head}"
        card = Card(title=f"Poll: {poll.question}", text=head + "\n" + "\n".join(lines), fields=tuple(fields),
                    footer=result.disclaimer, colour=COLOUR, image=("poll.png", render_chart(result)))
        return self._reply(card.as_text(), card=card)

    # -- extraction -----------------------------------------------------------------------------

    async def _extract(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        if not session.world.agents:
            return self._reply("This world has no personas to extract from yet.", private=True, failed=True)
        schema = self._extraction_schema(inv, cmd)
        extracted = await ResultsExtractor(self.model).extract(session.world, schema, per_agent=True)
        # Each persona's record is its words: one that verification withholds is left out and named,
        # and the others are delivered.
        screen = _Screen(session)
        for persona, record in extracted.records.items():
            await screen.words(persona, json.dumps(record.model_dump(mode="json", by_alias=True), ensure_ascii=False))
        extraction = dataclasses.replace(
            extracted, records={k: v for k, v in extracted.records.items() if k not in screen.withheld})
        note = extraction.disclaimer
        if cmd.args["format"] == "csv":
            body = extraction.to_csv()  # the disclaimer is its last column
        else:
            body = extraction.to_json()  # carries the model's name and the disclaimer
        body = await session.vet_text(body)
        if body.startswith("(withheld"):
            return self._reply(f"The extraction was not shared: {body}", private=True, failed=True)
        failed = f" Could not extract for: {', '.join(extraction.failed)}." if extraction.failed else ""
        withheld = "".join(f" {literal(persona)}: {screen.say(persona, 'record withheld')}." for persona in screen.withheld)
        filename = f"extract-{slug(session.world.name)}.{cmd.args['format']}"
        return self._reply(f"Extracted {len(extraction.records)} persona record(s).{failed}{withheld} {note}",
                           file=(filename, body.encode()))

    def _extraction_schema(self, inv: CommandInvocation, cmd: Command) -> type[BaseModel]:
        """The model an extraction fills, from the fields named or the schema file given; a mistake in
        either is the moderator's to fix, so it is said as such (never "try again")."""
        if not cmd.args.get("schema"):
            try:
                return model_from_fields(cmd.args["fields"])
            except SchemaError as error:
                raise CommandError(f"{error}: name each field once, e.g. `extract stance reasons`") from None
        name = cmd.args["schema"]
        path = self.app.moderation.readable_file(inv, name)
        if not Path(path).is_file():
            raise CommandError(f"there is no file {name!r}; give the path of a JSON schema file")
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as error:
            raise CommandError(f"could not read {name}: {error.strerror or error}") from None
        except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError too
            raise CommandError(f"{name} is not valid JSON ({_first_line(error)}); a schema file holds a JSON "
                               "object with 'properties'") from None
        try:
            return model_from_json_schema(data)
        except SchemaError as error:
            raise CommandError(f"could not use {name} as a JSON schema: {error}") from None

    # -- personas ---------------------------------------------------------------------------------

    async def _generate(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        room = self.app.settings.bot.max_personas - len(session.world.agents)
        count = cmd.args["count"]
        if room <= 0:
            return self._reply("This world already has the most personas allowed (bot.max_personas).", private=True, failed=True)
        if count > room:
            return self._reply(f"This world has room for {room} more persona(s) (bot.max_personas).", private=True, failed=True)
        factory = PersonaFactory(self.model, context=session.world.situation or session.world.name)
        try:
            specs = await factory.generate(count, cmd.args["description"], sampling_plan=cmd.args.get("plan"),
                                           existing_names=[a.name for a in session.world.agents])
        except ValueError as error:  # nothing to generate from
            raise CommandError(f"{error}: `{cmd.spec.usage}`") from None
        added, refused = [], []
        for spec in specs:
            try:
                added.append(literal((await session.add_persona(spec)).spec.summary()))
            except (PersonaError, ValueError) as error:
                refused.append(str(error))
        lines = [f"Generated {len(added)} persona(s) ({self.app.model_label}):", *(f"• {s}" for s in added)]
        lines += [f"Not added: {r}" for r in refused]
        lines.append(disclaimer(self.app.stack.model.name).replace("answers", "personas"))
        return self._reply("\n".join(lines))

    async def _validate(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        agent = session.world.get(cmd.args["name"])
        try:
            result = await PersonaValidator(self.model).validate(agent, cmd.args["expectations"])
        except ValueError as error:  # no expectations to check against
            raise CommandError(f"{error}: `{cmd.spec.usage}`") from None
        fields = []
        for turn in result.transcript[:5]:
            answer = await session.vet_text(turn.answer, persona=agent.name)
            fields.append(CardField(name=clip(turn.question, 250), value=answer))
        verdict = "consistent" if result.passed else "not consistent"
        card = Card(title=f"Validation of {agent.name}: {result.score:.2f} ({verdict})",
                    text=await session.vet_text(result.justification), fields=tuple(fields),
                    footer=f"Expectations: {clip(cmd.args['expectations'], 200)}. {result.disclaimer}", colour=COLOUR)
        return self._reply(card.as_text(), card=card)

    # -- artifacts and story --------------------------------------------------------------------

    async def _enrich(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        text = await Enricher(self.model).enrich(cmd.args["content"], cmd.args.get("requirements") or ENRICH_DEFAULT)
        card = Card(title="Enriched content", text=await session.vet_text(text),
                    footer=f"Written by {self.app.model_by} for use in the simulation.", colour=COLOUR)
        return self._reply(card.as_text(), card=card)

    async def _story(self, inv: CommandInvocation, cmd: Command, session: ChannelSession) -> Reply:
        if not session.world.agents:
            return self._reply("This world has no personas for a story beat yet. Add some with `persona add NAME`.",
                               private=True, failed=True)
        teller = Storyteller(self.model, purpose=session.world.situation or f"a lively, realistic conversation in {session.world.name}")
        if cmd.args["inject"]:
            beat = session.story_beat or await teller.propose(session.world)
            session.story_beat = None
            try:
                await session.record_stimulus(lambda: teller.inject(session.world, beat))
            except StaleBeatError as error:
                raise CommandError(f"Not injected: {error}. `story` suggests a new beat.") from None
            if beat.kind == "scene":
                return self._reply(f"Injected a scene, shown to every persona: {beat.content}")
            to = f", addressed to {beat.target} (everyone here hears it)" if beat.target else ", to everyone"
            return self._reply(f"Injected{to}: {beat.content}")
        beat = await teller.propose(session.world)
        session.story_beat = beat
        fields = [CardField(name="Kind", value=beat.kind, inline=True),
                  CardField(name="For", value=literal(beat.target) if beat.target else "everyone", inline=True),
                  CardField(name="Why", value=await session.vet_text(beat.rationale))]
        card = Card(title="Suggested next beat", text=await session.vet_text(beat.content), fields=tuple(fields),
                    footer=f"`story inject` delivers it. Suggested by {self.app.model_by}.", colour=COLOUR)
        return self._reply(card.as_text(), card=card, private=True)


class _Screen:
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


async def _summary_parts(session: ChannelSession, summary: ConversationSummary, said: list[Event],
                         max_points: int) -> tuple[str, list[CardField]]:
    """The text (overview and key points) and persona fields of a summary card, shared by the
    summary and the focus group so both treat withheld words alike.

    A persona is withheld when its stance and quotes are, when they quote a message that was never
    posted, or when none of its messages in the summary was posted; key points that speak of a
    withheld persona, or that verification withholds, are left out and counted.
    """
    screen = _Screen(session, await session.unposted())
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


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _same_words(a: str, b: str) -> bool:
    """Whether two texts say the same words (case, spacing and punctuation aside)."""
    def words(text: str) -> list[str]:
        return re.findall(r"\w+", text.casefold())
    return words(a) == words(b)


def _problem(error: ValidationError) -> str:
    """The first thing wrong, in words, without pydantic's framing (error counts, types, links)."""
    return str(error.errors()[0].get("msg", "")).removeprefix("Value error, ") or "that is not valid"


def _span(summary: ConversationSummary) -> str:
    """The events a summary covers, and how to read what it left out."""
    if not summary.last_event_id:
        return "no events yet"
    span = f"events #{(summary.since_event_id or 0) + 1}–#{summary.last_event_id}"
    if summary.more_before:
        span += (f": the latest {summary.messages} messages; earlier ones are not in this summary "
                 "(`summary --since 0` summarises from the first)")
    if summary.more_after:
        span += (f": the first {summary.messages} messages from there; `summary --since {summary.last_event_id}` "
                 "goes on")
    return span
