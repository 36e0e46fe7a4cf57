"""The research commands: focus groups, summaries, polls, extraction, generation, enrichment,
storytelling and validation, run against a channel's world and shown as cards.

Whatever these show that a model wrote (stances, quotes, reasons, enriched text) passes the
channel's verification first, like any persona post; every result names the model that produced it
and says that the answers are simulated.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from pydantic import BaseModel, ValidationError

from adapters.base import Card, CardField, clip, inert, literal, quoted
from bots.commands import CommandError
from bots.context import CommandContext, Handler
from bots.exports import slug
from bots.focus_groups import COLOUR
from bots.reply import Reply
from bots.screening import CardScreen, summary_parts
from simulation.disclaimer import disclaimer
from simulation.enrichment import Enricher
from simulation.events import EventKind
from simulation.extraction import ResultsExtractor, SchemaError, model_from_fields, model_from_json_schema
from simulation.factory import PersonaFactory, PersonaFactoryError
from simulation.files import FileReadError, read_text_file
from simulation.focus_group import FocusGroup
from simulation.persona import PersonaError
from simulation.polls import ABSTAIN, Poll, render_chart, run_poll
from simulation.storytelling import StaleBeatError, Storyteller
from simulation.summary import MAX_MESSAGES, ConversationSummary, Summarizer, conversation
from simulation.validation import PersonaValidator

log = logging.getLogger(__name__)

ENRICH_DEFAULT = "make it realistic, specific and detailed, as it would appear in real life"


# -- focus groups -----------------------------------------------------------------------------------


async def focus(ctx: CommandContext, *, question: str, rounds: int, personas: list[str] | None = None) -> Reply:
    session = ctx.session
    if session.focus is not None:
        return Reply("A focus group is already running here; `probe QUESTION` adds to its next round.",
                     private=True, failed=True)
    if not session.world.agents:
        return Reply("This world has no personas yet. Add some with `persona add NAME`.", private=True, failed=True)
    try:
        group = FocusGroup(session.world, question, rounds=rounds, personas=personas,
                           summarizer=Summarizer(ctx.services.stack.model), moderator=ctx.user.name,
                           step=session.step_only)
    except ValueError as error:
        raise CommandError(str(error)) from None
    ctx.services.focus_groups.begin(session, group)
    who = ", ".join(literal(a.name) for a in group.personas)
    return Reply(f"Focus group started ({group.rounds} round(s)) with {who}: “{literal(group.question)}”. "
                 "Each answers in turn; `probe QUESTION` asks something in the next round.")


async def probe(ctx: CommandContext, *, text: str) -> Reply:
    session = ctx.session
    if session.focus is None:
        last = session.last_focus
        if last is None:
            return Reply("No focus group ran here; `focus \"QUESTION\"` starts one.", private=True, failed=True)
        # The group has finished: the probe is asked in one more round, of the same personas.
        present = [a.name for a in last.personas if session.world.find(a.name) is not None]
        if not present:
            return Reply("The focus group's personas have left; `focus \"QUESTION\"` starts a new one.",
                         private=True, failed=True)
        group = FocusGroup(session.world, text, rounds=1, personas=present,
                           summarizer=Summarizer(ctx.services.stack.model), moderator=ctx.user.name,
                           step=session.step_only)
        ctx.services.focus_groups.begin(session, group)
        return Reply(f"The focus group had finished: one more round asks {', '.join(map(literal, present))} that.")
    session.focus.probe(text)
    return Reply("Noted: the next round asks that (one more round, if this is the last).", private=True)


# -- summaries and polls ----------------------------------------------------------------------------


async def summary(ctx: CommandContext, *, since: int | None) -> Reply:
    session = ctx.session
    if since is not None and since >= session.world.event_count:
        return Reply(f"There is nothing after event #{since}: this world's latest event is "
                     f"#{session.world.event_count}.", private=True, failed=True)
    world = session.world
    log = world.events
    # A long-lived world holds its recent events; older ones are read from storage when the
    # summary reaches back to them (from --since, or for want of enough recent messages).
    if world.events_first > (since or 0) and (since is not None or len(conversation(log)) < MAX_MESSAGES):
        log = await session.whole_log()
    result = await Summarizer(ctx.services.stack.model).summarize(world, since_event_id=since, events=log)
    floor, last = result.since_event_id or 0, result.last_event_id or 0
    said = [e for e in log if floor < e.id <= last and e.kind is EventKind.ACTION and e.type == "TALK"]
    body, fields = await summary_parts(session, result, said, max_points=10)
    card = Card(title=f"Summary of “{world.name}”", text=body, fields=tuple(fields),
                footer=f"{_cap(_span(result))}. {result.disclaimer}", colour=COLOUR)
    return Reply(card.as_text(), card=card)


async def poll(ctx: CommandContext, *, question: str, options: list[str], unquoted: bool = False) -> Reply:
    session = ctx.session
    if not session.world.agents:
        return Reply("This world has no personas to poll yet.", private=True, failed=True)
    try:
        asking = Poll(question=question, options=options)
    except ValidationError as error:
        raise CommandError(f"{_problem(error)}: `{ctx.spec.usage}`") from None
    asked = await run_poll(session.world, asking, ctx.services.stack.model)
    # A vote and its reason are one answer: when verification withholds the reason, the vote is
    # not counted either (the tally would rest on an answer nobody may read, one that often says
    # the persona broke character); the card names the persona and says why instead.
    screen = CardScreen(session)
    reasons = {a.persona: await screen.words(a.persona, a.reason) for a in asked.answers}
    result = asked.model_copy(update={"answers": [a for a in asked.answers if a.persona not in screen.withheld]})
    tally = result.tally()
    total = sum(tally.values()) or 1
    lines = []
    for option, votes in tally.items():
        voters = [a.persona for a in result.answers if (a.choice or ABSTAIN) == option]
        bar = "█" * round(10 * votes / total)
        lines.append(f"{literal(option)}: {votes} {bar}" + (f" ({', '.join(map(literal, voters))})" if voters else ""))
    fields = [CardField(name=f"{a.persona}: {a.choice or 'abstained'}", value=reasons[a.persona] or "")
              for a in result.answers]
    fields += [CardField(name=f"{persona}: not counted", value=screen.say(persona, "vote and reason withheld"))
               for persona in screen.withheld]
    winner = result.winner()
    head = f"Most chosen: {literal(winner)}." if winner else "No single option leads."
    if unquoted:
        head = f"Read “{literal(asking.question)}” as the question (quotes around it make sure). {head}"
    card = Card(title=f"Poll: {asking.question}", text=head + "\n" + "\n".join(lines), fields=tuple(fields),
                footer=result.disclaimer, colour=COLOUR, image=("poll.png", render_chart(result)))
    return Reply(card.as_text(), card=card)


# -- extraction -------------------------------------------------------------------------------------


async def extract(ctx: CommandContext, *, fields: list[str], schema: str | None, format: str) -> Reply:
    session = ctx.session
    if not session.world.agents:
        return Reply("This world has no personas to extract from yet.", private=True, failed=True)
    model = _extraction_schema(ctx, fields, schema)
    extracted = await ResultsExtractor(ctx.services.stack.model).extract(session.world, model, per_agent=True)
    # Each persona's record is its words: one that verification withholds is left out and named,
    # and the others are delivered.
    screen = CardScreen(session)
    for persona, record in extracted.records.items():
        await screen.words(persona, json.dumps(record.model_dump(mode="json", by_alias=True), ensure_ascii=False))
    extraction = dataclasses.replace(
        extracted, records={k: v for k, v in extracted.records.items() if k not in screen.withheld})
    note = extraction.disclaimer
    if format == "csv":
        body = extraction.to_csv()  # the disclaimer is its last column
    else:
        body = extraction.to_json()  # carries the model's name and the disclaimer
    body = await session.vet_text(body)
    if body.startswith("(withheld"):
        return Reply(f"The extraction was not shared: {body}", private=True, failed=True)
    failed = f" Could not extract for: {', '.join(extraction.failed)}." if extraction.failed else ""
    withheld = "".join(f" {literal(persona)}: {screen.say(persona, 'record withheld')}." for persona in screen.withheld)
    filename = f"extract-{slug(session.world.name)}.{format}"
    return Reply(f"Extracted {len(extraction.records)} persona record(s).{failed}{withheld} {note}",
                 file=(filename, body.encode()))


def _extraction_schema(ctx: CommandContext, fields: list[str], schema: str | None) -> type[BaseModel]:
    """The model an extraction fills, from the fields named or the schema file given; a mistake in
    either is the moderator's to fix, so it is said as such (never "try again")."""
    if not schema:
        try:
            return model_from_fields(fields)
        except SchemaError as error:
            raise CommandError(f"{error}: name each field once, e.g. `extract stance reasons`") from None
    path = ctx.readable_file(schema)
    try:
        # Only a regular file, and at most one byte past 1 MB whatever size it claims: a device
        # (/dev/zero), a FIFO or a /proc file would otherwise be read without end.
        data = json.loads(read_text_file(Path(path), limit=1_000_000, kind="a schema file"))
    except FileNotFoundError:
        raise CommandError(f"there is no file {schema!r}; give the path of a JSON schema file") from None
    except FileReadError as error:
        raise CommandError(f"{schema}: {error.problem}") from None
    except OSError as error:
        raise CommandError(f"could not read {schema}: {error.strerror or error}") from None
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError too
        raise CommandError(f"{schema} is not valid JSON ({_first_line(error)}); a schema file holds a JSON "
                           "object with 'properties'") from None
    try:
        return model_from_json_schema(data)
    except SchemaError as error:
        raise CommandError(f"could not use {schema} as a JSON schema: {error}") from None


# -- personas ---------------------------------------------------------------------------------------


async def generate(ctx: CommandContext, *, count: int, description: str, plan: str | None) -> Reply:
    session = ctx.session
    room = ctx.services.settings.max_personas - len(session.world.agents)
    if room <= 0:
        return Reply("This world already has the most personas allowed (bot.max_personas).", private=True, failed=True)
    if count > room:
        return Reply(f"This world has room for {room} more persona(s) (bot.max_personas).", private=True, failed=True)
    factory = PersonaFactory(ctx.services.stack.model, context=session.world.situation or session.world.name)
    shortfall: list[str] = []
    try:
        specs = await factory.generate(count, description, sampling_plan=plan,
                                       existing_names=[a.name for a in session.world.agents])
    except ValueError as error:  # nothing to generate from
        raise CommandError(f"{error}: `{ctx.spec.usage}`") from None
    except PersonaFactoryError as error:
        if not error.made:
            raise
        # The valid ones are kept: asking again would pay for them a second time.
        specs, shortfall = error.made, error.problems or [str(error)]
    added, refused = [], []
    for spec in specs:
        try:
            added.append(literal((await session.add_persona(spec)).spec.summary()))
        except (PersonaError, ValueError) as error:
            refused.append(str(error))
    lines = [f"Generated {len(added)} persona(s) ({ctx.services.model_label}):", *(f"• {s}" for s in added)]
    # A refusal quotes the generated fields (the model's words): none of them may link or mention.
    lines += [f"Not added: {inert(r)}" for r in refused]
    if shortfall:
        lines.append(f"{count - len(specs)} of the {count} asked for could not be made; the model got them wrong "
                     f"twice ({inert(clip(' | '.join(shortfall), 600))}). `generate` again adds more.")
    lines.append(disclaimer(ctx.services.stack.model.name).replace("answers", "personas"))
    return Reply("\n".join(lines))


async def validate(ctx: CommandContext, *, name: str, expectations: str) -> Reply:
    session = ctx.session
    agent = session.world.get(name)
    try:
        result = await PersonaValidator(ctx.services.stack.model).validate(agent, expectations)
    except ValueError as error:  # no expectations to check against
        raise CommandError(f"{error}: `{ctx.spec.usage}`") from None
    fields = []
    for turn in result.transcript[:5]:
        question = await session.vet_text(turn.question)
        answer = await session.vet_text(turn.answer, persona=agent.name)
        fields.append(CardField(name=clip(question, 250), value=answer))
    verdict = "consistent" if result.passed else "not consistent"
    card = Card(title=f"Validation of {agent.name}: {result.score:.2f} ({verdict})",
                text=await session.vet_text(result.justification), fields=tuple(fields),
                footer=f"Expectations: {literal(clip(expectations, 200))}. {result.disclaimer}", colour=COLOUR)
    return Reply(card.as_text(), card=card)


# -- artifacts and story ----------------------------------------------------------------------------


async def enrich(ctx: CommandContext, *, content: str, requirements: str | None) -> Reply:
    text = await Enricher(ctx.services.stack.model).enrich(content, requirements or ENRICH_DEFAULT)
    card = Card(title="Enriched content", text=await ctx.session.vet_text(text),
                footer=f"Written by {ctx.services.model_by} for use in the simulation.", colour=COLOUR)
    return Reply(card.as_text(), card=card)


async def story(ctx: CommandContext, *, inject: bool) -> Reply:
    session = ctx.session
    if not session.world.agents:
        return Reply("This world has no personas for a story beat yet. Add some with `persona add NAME`.",
                     private=True, failed=True)
    teller = Storyteller(ctx.services.stack.model,
                         purpose=session.world.situation or f"a lively, realistic conversation in {session.world.name}")
    if inject:
        beat = session.story_beat or await teller.propose(session.world)
        session.story_beat = None
        # The model wrote the beat, and the channel is told what it says: it passes verification
        # first, one it would withhold is not delivered either, and the personas hear what is shown.
        shown, withheld = await session.vet(beat.content)
        if withheld is not None:
            raise CommandError(f"Not injected: verification withheld the beat ({literal(withheld)}). "
                               "`story` suggests a new beat.")
        beat = beat.model_copy(update={"content": shown})
        try:
            await session.record_stimulus(lambda: teller.inject(session.world, beat))
        except StaleBeatError as error:
            raise CommandError(f"Not injected: {literal(str(error))}. `story` suggests a new beat.") from None
        if beat.kind == "scene":
            return Reply(f"Injected a scene, shown to every persona:\n{quoted(shown)}")
        to = f", addressed to {literal(beat.target)} (everyone here hears it)" if beat.target else ", to everyone"
        return Reply(f"Injected{to}:\n{quoted(shown)}")
    beat = await teller.propose(session.world)
    session.story_beat = beat
    fields = [CardField(name="Kind", value=beat.kind, inline=True),
              CardField(name="For", value=literal(beat.target) if beat.target else "everyone", inline=True),
              CardField(name="Why", value=await session.vet_text(beat.rationale))]
    card = Card(title="Suggested next beat", text=await session.vet_text(beat.content), fields=tuple(fields),
                footer=f"`story inject` delivers it. Suggested by {ctx.services.model_by}.", colour=COLOUR)
    return Reply(card.as_text(), card=card, private=True)


#: The research commands, by name.
HANDLERS: dict[str, Handler] = {
    "focus": focus,
    "probe": probe,
    "summary": summary,
    "poll": poll,
    "extract": extract,
    "generate": generate,
    "validate": validate,
    "enrich": enrich,
    "story": story,
}


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


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
